package skew

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Component names, as the binaries are called.
const (
	APIServer         = "kube-apiserver"
	Scheduler         = "kube-scheduler"
	ControllerManager = "kube-controller-manager"
)

// Version is a Kubernetes release version, "v1.37.2" (a pre-release
// suffix, "v1.38.0-rc.1", is kept in Raw and ignored by the policy).
type Version struct {
	Major, Minor, Patch int
	Raw                 string
}

// Parse reads "vMAJOR.MINOR.PATCH[-suffix]".
func Parse(s string) (Version, error) {
	v := Version{Raw: s}
	rest, ok := strings.CutPrefix(s, "v")
	if !ok {
		return v, fmt.Errorf("skew: version %q: want vMAJOR.MINOR.PATCH", s)
	}
	if i := strings.IndexAny(rest, "-+"); i >= 0 {
		rest = rest[:i]
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("skew: version %q: want vMAJOR.MINOR.PATCH", s)
	}
	nums := make([]int, 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p == "" || (len(p) > 1 && p[0] == '0') {
			return v, fmt.Errorf("skew: version %q: %q is not a number", s, p)
		}
		nums[i] = n
	}
	v.Major, v.Minor, v.Patch = nums[0], nums[1], nums[2]
	return v, nil
}

func (v Version) String() string { return v.Raw }

// minorsAfter is how many minors v is after w (negative: before); the
// majors must be equal.
func (v Version) minorsAfter(w Version) int { return v.Minor - w.Minor }

// Master is what one master runs, by component name ("" where unknown).
type Master struct {
	Name string
	// Versions of the kube binaries by component name.
	Versions map[string]string
	// APIServerDown: this master runs no apiserver now (refused, or its
	// masterd stopped): other components are not compared with it.
	APIServerDown bool
}

// Refusal says why a component may not run on a master.
type Refusal struct {
	Master    string
	Component string
	Version   string
	Reason    string
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("%s %s on %s: %s", r.Component, r.Version, r.Master, r.Reason)
}

// apiserver is one running apiserver's parsed version.
type apiserver struct {
	master string
	v      Version
}

// apiservers returns the parsed versions of the apiservers that run, by
// master name order, and the masters whose published version does not
// parse.
func apiservers(masters []Master, skip string) ([]apiserver, []string) {
	var out []apiserver
	var bad []string
	for _, m := range masters {
		if m.Name == skip || m.APIServerDown || m.Versions[APIServer] == "" {
			continue
		}
		v, err := Parse(m.Versions[APIServer])
		if err != nil {
			bad = append(bad, m.Name)
			continue
		}
		out = append(out, apiserver{m.Name, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].master < out[j].master })
	return out, bad
}

// CheckAPIServer decides whether master self may start its apiserver of
// version: nil, or a *Refusal naming every other running apiserver more than
// one minor away (or of another major). masters is the whole cluster; self's
// own entry in it is ignored.
func CheckAPIServer(self, version string, masters []Master) error {
	v, err := Parse(version)
	if err != nil {
		return &Refusal{Master: self, Component: APIServer, Version: version, Reason: err.Error()}
	}
	others, _ := apiservers(masters, self)
	var far []string
	for _, o := range others {
		if o.v.Major != v.Major || abs(v.minorsAfter(o.v)) > 1 {
			far = append(far, fmt.Sprintf("%s %s on %s", APIServer, o.v, o.master))
		}
	}
	if len(far) == 0 {
		return nil
	}
	return &Refusal{Master: self, Component: APIServer, Version: version,
		Reason: "more than one minor away from " + strings.Join(far, ", ") + " (apiservers must be within one minor of each other)"}
}

// CheckLeaderComponent decides whether master self may run component
// (kube-scheduler or kube-controller-manager) of version: it must not be
// newer than the oldest running apiserver, nor more than one minor older
// than the newest. Every running apiserver counts, self's included.
func CheckLeaderComponent(self, component, version string, masters []Master) error {
	v, err := Parse(version)
	if err != nil {
		return &Refusal{Master: self, Component: component, Version: version, Reason: err.Error()}
	}
	all, _ := apiservers(masters, "")
	if len(all) == 0 {
		return nil
	}
	oldest, newest := all[0], all[0]
	for _, a := range all[1:] {
		if a.v.Major < oldest.v.Major || a.v.Major == oldest.v.Major && a.v.Minor < oldest.v.Minor {
			oldest = a
		}
		if a.v.Major > newest.v.Major || a.v.Major == newest.v.Major && a.v.Minor > newest.v.Minor {
			newest = a
		}
	}
	switch {
	case v.Major != oldest.v.Major || v.Major != newest.v.Major:
		return &Refusal{Master: self, Component: component, Version: version,
			Reason: fmt.Sprintf("another major than %s %s on %s", APIServer, oldest.v, oldest.master)}
	case v.minorsAfter(oldest.v) > 0:
		return &Refusal{Master: self, Component: component, Version: version,
			Reason: fmt.Sprintf("newer than the oldest %s, %s on %s (it must not be newer than any apiserver)", APIServer, oldest.v, oldest.master)}
	case newest.v.minorsAfter(v) > 1:
		return &Refusal{Master: self, Component: component, Version: version,
			Reason: fmt.Sprintf("more than one minor older than the newest %s, %s on %s", APIServer, newest.v, newest.master)}
	}
	return nil
}

// Check returns every refusal of the cluster as it stands: each running
// apiserver against the others, and each master's scheduler and
// controller-manager against the running apiservers. Unknown versions are
// skipped; a version that does not parse is a refusal of its own.
func Check(masters []Master) []Refusal {
	var out []Refusal
	add := func(err error) {
		if r, ok := err.(*Refusal); ok {
			out = append(out, *r)
		}
	}
	sorted := append([]Master(nil), masters...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, m := range sorted {
		if v := m.Versions[APIServer]; v != "" && !m.APIServerDown {
			add(CheckAPIServer(m.Name, v, sorted))
		}
		for _, c := range []string{Scheduler, ControllerManager} {
			if v := m.Versions[c]; v != "" {
				add(CheckLeaderComponent(m.Name, c, v, sorted))
			}
		}
	}
	return out
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
