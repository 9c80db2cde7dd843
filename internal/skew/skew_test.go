package skew

import (
	"strings"
	"testing"
)

func m(name, api, sched, cm string) Master {
	return Master{Name: name, Versions: map[string]string{APIServer: api, Scheduler: sched, ControllerManager: cm}}
}

func down(x Master) Master { x.APIServerDown = true; return x }

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in                  string
		major, minor, patch int
		bad                 bool
	}{
		{in: "v1.37.2", major: 1, minor: 37, patch: 2},
		{in: "v1.38.0-rc.1", major: 1, minor: 38},
		{in: "v1.38.0+k3s1", major: 1, minor: 38},
		{in: "1.37.2", bad: true},
		{in: "v1.37", bad: true},
		{in: "v1.x.2", bad: true},
		{in: "v1.037.2", bad: true},
		{in: "v1..2", bad: true},
		{in: "", bad: true},
	} {
		v, err := Parse(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("Parse(%q) = %+v, want an error", tc.in, v)
			}
			continue
		}
		if err != nil || v.Major != tc.major || v.Minor != tc.minor || v.Patch != tc.patch {
			t.Errorf("Parse(%q) = %+v, %v", tc.in, v, err)
		}
	}
}

func TestCheckAPIServer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version string
		masters []Master
		refused string // substring of the refusal; "" = allowed
	}{
		{"the same version everywhere starts", "v1.37.2", []Master{m("a", "v1.37.2", "", ""), m("b", "v1.37.2", "", "")}, ""},
		{"one minor newer than the others starts", "v1.38.0", []Master{m("b", "v1.37.2", "", ""), m("c", "v1.37.1", "", "")}, ""},
		{"one minor older than the others starts", "v1.36.5", []Master{m("b", "v1.37.2", "", ""), m("c", "v1.37.1", "", "")}, ""},
		{"two minors newer than one other is refused, naming it", "v1.39.0", []Master{m("b", "v1.38.0", "", ""), m("c", "v1.37.2", "", "")}, "kube-apiserver v1.37.2 on c"},
		{"two minors older than one other is refused", "v1.35.0", []Master{m("b", "v1.37.2", "", "")}, "more than one minor away from kube-apiserver v1.37.2 on b"},
		{"another major is refused", "v2.37.2", []Master{m("b", "v1.37.2", "", "")}, "on b"},
		{"a master that runs no apiserver is not compared with", "v1.39.0", []Master{m("b", "v1.38.0", "", ""), down(m("c", "v1.37.2", "", ""))}, ""},
		{"an unknown version constrains nothing", "v1.39.0", []Master{m("b", "", "", "")}, ""},
		{"its own entry is ignored", "v1.39.0", []Master{m("self", "v1.37.2", "", "")}, ""},
		{"alone, any version starts", "v1.39.0", nil, ""},
		{"a version that does not parse is refused", "1.37", []Master{m("b", "v1.37.2", "", "")}, "want vMAJOR.MINOR.PATCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckAPIServer("self", tc.version, tc.masters)
			check(t, err, tc.refused)
		})
	}
}

func TestCheckLeaderComponent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version string
		masters []Master
		refused string
	}{
		{"the apiservers' version runs", "v1.37.2", []Master{m("self", "v1.37.2", "", ""), m("b", "v1.37.2", "", "")}, ""},
		{"a newer patch than the apiservers runs", "v1.37.9", []Master{m("self", "v1.37.9", "", ""), m("b", "v1.37.2", "", "")}, ""},
		{"one minor newer than the oldest apiserver is refused, naming it", "v1.38.0", []Master{m("self", "v1.38.0", "", ""), m("b", "v1.37.2", "", "")}, "newer than the oldest kube-apiserver, v1.37.2 on b"},
		{"newer than the oldest apiserver of three is refused", "v1.38.0", []Master{m("a", "v1.38.0", "", ""), m("b", "v1.38.1", "", ""), m("c", "v1.37.2", "", "")}, "v1.37.2 on c"},
		{"once every apiserver runs the new minor it runs", "v1.38.0", []Master{m("a", "v1.38.0", "", ""), m("b", "v1.38.1", "", ""), m("c", "v1.38.0", "", "")}, ""},
		{"one minor older than the newest apiserver runs", "v1.37.2", []Master{m("a", "v1.38.0", "", ""), m("self", "v1.37.2", "", "")}, ""},
		{"two minors older than the newest apiserver is refused", "v1.36.0", []Master{m("a", "v1.38.0", "", ""), m("b", "v1.38.0", "", "")}, "more than one minor older than the newest kube-apiserver, v1.38.0 on a"},
		{"an apiserver that does not run does not count", "v1.38.0", []Master{m("self", "v1.38.0", "", ""), down(m("b", "v1.37.2", "", ""))}, ""},
		{"no known apiserver: nothing to compare with", "v1.38.0", []Master{m("b", "", "", "")}, ""},
		{"another major is refused", "v2.0.0", []Master{m("b", "v1.37.2", "", "")}, "another major"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckLeaderComponent("self", Scheduler, tc.version, tc.masters)
			check(t, err, tc.refused)
			if err != nil && !strings.HasPrefix(err.Error(), "kube-scheduler "+tc.version+" on self: ") {
				t.Errorf("refusal %q does not start with the component, its version and the master", err)
			}
		})
	}
}

func TestCheckListsEveryRefusalOfTheCluster(t *testing.T) {
	// A rolling upgrade 1.37 → 1.38 half done: a has the new binaries.
	masters := []Master{m("c", "v1.37.2", "v1.37.2", "v1.37.2"), m("a", "v1.38.0", "v1.38.0", "v1.38.0"), m("b", "v1.37.2", "v1.37.2", "v1.37.2")}
	got := Check(masters)
	var s []string
	for _, r := range got {
		s = append(s, r.Master+" "+r.Component)
	}
	want := "a kube-scheduler,a kube-controller-manager"
	if strings.Join(s, ",") != want {
		t.Fatalf("Check = %v, want %s", s, want)
	}
	// Every apiserver upgraded: nothing refused.
	for i := range masters {
		for c := range masters[i].Versions {
			masters[i].Versions[c] = "v1.38.0"
		}
	}
	if got := Check(masters); len(got) != 0 {
		t.Fatalf("Check after the upgrade = %v, want none", got)
	}
	// Apiservers two minors apart: both sides are reported.
	got = Check([]Master{m("a", "v1.36.0", "", ""), m("b", "v1.38.0", "", "")})
	if len(got) != 2 || got[0].Master != "a" || got[1].Master != "b" {
		t.Fatalf("Check of 1.36 and 1.38 = %v, want both apiservers", got)
	}
}

func check(t *testing.T, err error, refused string) {
	t.Helper()
	if refused == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("allowed, want a refusal containing %q", refused)
	}
	if _, ok := err.(*Refusal); !ok {
		t.Fatalf("error %T, want *Refusal", err)
	}
	if !strings.Contains(err.Error(), refused) {
		t.Fatalf("refusal %q does not contain %q", err, refused)
	}
}
