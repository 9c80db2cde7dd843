package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Status is the part of a master's `masterd status --json` the lab reads.
// Field names match case-insensitively, as encoding/json does.
type Status struct {
	Node       string                     `json:"node"`
	Ready      bool                       `json:"ready"`
	Components map[string]string          `json:"components"`
	Sections   map[string]json.RawMessage `json:"sections"`
	// Roles is the election section's view of each role, when present.
	Roles map[string]RoleStatus `json:"-"`
	// Raw is the whole document.
	Raw []byte `json:"-"`
}

// RoleStatus is one role in a master's election section.
type RoleStatus struct {
	Holder string
	Term   uint64
	Leader bool
	Quorum bool
	State  string
}

// Status runs `masterd status --json` inside the master.
func (m *Master) Status(ctx context.Context) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := m.Exec(ctx, "masterd", "status", "--json")
	if err != nil {
		return Status{}, err
	}
	st := Status{Raw: out}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("lab: %s: decode status: %w", m.Name, err)
	}
	if raw, ok := st.Sections["election"]; ok {
		var el struct{ Roles map[string]RoleStatus }
		if err := json.Unmarshal(raw, &el); err == nil {
			st.Roles = el.Roles
		}
	}
	return st, nil
}

// Holders returns the masters that say they hold role (from each master's
// own status; unreachable masters are left out), sorted.
func (l *Lab) Holders(ctx context.Context, role string) []string {
	var mu sync.Mutex
	var out []string
	var wg sync.WaitGroup
	for _, m := range l.masters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := m.Status(ctx)
			if err == nil && st.Roles[role].Leader {
				mu.Lock()
				out = append(out, m.Name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Strings(out)
	return out
}

// Statuses returns every reachable master's status by name; the error joins
// the unreachable ones'.
func (l *Lab) Statuses(ctx context.Context) (map[string]Status, error) {
	var mu sync.Mutex
	out := map[string]Status{}
	var errs []error
	var wg sync.WaitGroup
	for _, m := range l.masters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := m.Status(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			out[m.Name] = st
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// vipProbe reads the VIP's presence on eth0 of every master namespace through
// netlink handles opened once.
type vipProbe struct {
	l *Lab
	// masters are the lab's masters when the probe was opened (AddMaster
	// and RetireMaster change the lab's list: a probe opened before sees
	// the masters of then).
	masters []*Master
	handles []*netlink.Handle
}

func (l *Lab) newVIPProbe() (*vipProbe, error) {
	p := &vipProbe{l: l, masters: l.Masters()}
	for _, m := range p.masters {
		ns, err := netns.GetFromName(m.Name)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("lab: netns %s: %w", m.Name, err)
		}
		h, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			p.close()
			return nil, fmt.Errorf("lab: netlink in %s: %w", m.Name, err)
		}
		p.handles = append(p.handles, h)
	}
	return p, nil
}

func (p *vipProbe) close() {
	for _, h := range p.handles {
		h.Close()
	}
}

func (p *vipProbe) holders() ([]string, error) {
	var out []string
	for i, h := range p.handles {
		addrs, err := h.AddrList(nil, unix.AF_INET)
		if err != nil {
			return nil, fmt.Errorf("lab: addresses of %s: %w", p.masters[i].Name, err)
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip == p.l.vip {
				out = append(out, p.masters[i].Name)
				break
			}
		}
	}
	return out, nil
}

// VIPHolders returns the masters whose namespace has the VIP on an interface
// right now (what `ip addr` shows in each).
func (l *Lab) VIPHolders() ([]string, error) {
	p, err := l.newVIPProbe()
	if err != nil {
		return nil, err
	}
	defer p.close()
	return p.holders()
}

// Monitor samples VIPHolders in the background at a fixed interval.
type Monitor struct {
	stop chan struct{}
	done chan struct{}

	mu          sync.Mutex
	samples     int
	dual        int
	none        int
	err         error
	transitions []Transition
	last        string
	ignore      map[string]bool
}

// Ignore leaves the named master out of the following samples (a crashed
// host whose link is cut keeps the address in its namespace but is not on
// the wire).
func (mon *Monitor) Ignore(name string) {
	mon.mu.Lock()
	defer mon.mu.Unlock()
	mon.ignore[name] = true
}

// Transition is a change of VIP holder seen by a Monitor ("" = nobody,
// "a+b" = both).
type Transition struct {
	At     time.Time
	Holder string
}

// MonitorVIP starts sampling the VIP's holders in every master namespace every
// interval (10 ms in the scenarios) until Stop.
func (l *Lab) MonitorVIP(interval time.Duration) (*Monitor, error) {
	p, err := l.newVIPProbe()
	if err != nil {
		return nil, err
	}
	mon := &Monitor{stop: make(chan struct{}), done: make(chan struct{}), last: "?", ignore: map[string]bool{}}
	go func() {
		defer close(mon.done)
		defer p.close()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			hs, err := p.holders()
			now := time.Now()
			mon.mu.Lock()
			if err != nil {
				mon.err = err
			} else {
				var kept []string
				for _, h := range hs {
					if !mon.ignore[h] {
						kept = append(kept, h)
					}
				}
				hs = kept
				mon.samples++
				switch len(hs) {
				case 0:
					mon.none++
				case 1:
				default:
					mon.dual++
				}
				if h := strings.Join(hs, "+"); h != mon.last {
					mon.last = h
					mon.transitions = append(mon.transitions, Transition{At: now, Holder: h})
				}
			}
			mon.mu.Unlock()
			select {
			case <-mon.stop:
				return
			case <-t.C:
			}
		}
	}()
	return mon, nil
}

// MonitorReport sums up a Monitor's samples.
type MonitorReport struct {
	Samples int
	// Dual counts samples in which two or more namespaces held the VIP.
	Dual int
	// None counts samples in which nobody held it.
	None        int
	Transitions []Transition
	Err         error
}

// Report returns the samples so far (the monitor keeps running).
func (mon *Monitor) Report() MonitorReport {
	mon.mu.Lock()
	defer mon.mu.Unlock()
	return MonitorReport{Samples: mon.samples, Dual: mon.dual, None: mon.none,
		Transitions: append([]Transition(nil), mon.transitions...), Err: mon.err}
}

// Stop ends sampling and returns the report.
func (mon *Monitor) Stop() MonitorReport {
	select {
	case <-mon.stop:
	default:
		close(mon.stop)
	}
	<-mon.done
	return mon.Report()
}

func (r MonitorReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d samples, %d with two holders, %d with none", r.Samples, r.Dual, r.None)
	var t0 time.Time
	for i, t := range r.Transitions {
		if i == 0 {
			t0 = t.At
		}
		h := t.Holder
		if h == "" {
			h = "(nobody)"
		}
		fmt.Fprintf(&b, "; +%.3fs %s", t.At.Sub(t0).Seconds(), h)
	}
	if r.Err != nil {
		fmt.Fprintf(&b, "; error: %v", r.Err)
	}
	return b.String()
}

// ensureAdminConf copies admin.conf from the first master that has it into
// the lab's state directory, with its server pointing at the VIP.
func (l *Lab) ensureAdminConf() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.adminCfg != "" {
		return l.adminCfg, nil
	}
	var errs []error
	for _, m := range l.masters {
		h := m.Host()
		if h == nil {
			continue
		}
		b, err := os.ReadFile(h.Path("/var/lib/masterd/pki/admin.conf"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b = serverRE.ReplaceAll(b, []byte("${1}https://"+netip.AddrPortFrom(l.vip, 6443).String()))
		p := filepath.Join(l.dir, "admin.conf")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return "", err
		}
		l.adminCfg = p
		return p, nil
	}
	return "", fmt.Errorf("lab: no master has admin.conf yet: %w", errors.Join(errs...))
}

// AdminKubeconfig returns the path of the lab's admin kubeconfig, whose
// server is the VIP (written once from a master's admin.conf).
func (l *Lab) AdminKubeconfig() (string, error) { return l.ensureAdminConf() }

var serverRE = regexp.MustCompile(`(?m)^(\s*server:\s*)https://\S+`)

// KubectlCommand returns the command line that runs kubectl from the client
// namespace against the VIP (for humans to paste).
func (l *Lab) KubectlCommand() string {
	return fmt.Sprintf("ip netns exec %s %s --kubeconfig %s", l.clientNS,
		filepath.Join(l.opts.KubeBinDir, "kubectl"), filepath.Join(l.dir, "admin.conf"))
}

// Kubectl runs kubectl in the client namespace with admin.conf pointing at
// the VIP, and returns its combined output.
func (l *Lab) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	if l.opts.KubeBinDir == "" {
		return nil, errors.New("lab: kubectl: no kube binaries in this lab")
	}
	cfg, err := l.ensureAdminConf()
	if err != nil {
		return nil, err
	}
	argv := append([]string{"netns", "exec", l.clientNS, filepath.Join(l.opts.KubeBinDir, "kubectl"),
		"--kubeconfig", cfg, "--request-timeout=10s"}, args...)
	cmd := exec.CommandContext(ctx, "ip", argv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("lab: kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// ClientExec runs argv in the client namespace.
func (l *Lab) ClientExec(ctx context.Context, argv ...string) ([]byte, error) {
	return run(ctx, append([]string{"ip", "netns", "exec", l.clientNS}, argv...)...)
}

// WaitReady waits until every master reports ready, exactly one namespace
// holds the VIP and, with kube binaries, `kubectl get --raw /readyz` through
// the VIP answers ok. The error describes the last observation.
func (l *Lab) WaitReady(ctx context.Context) error {
	var last string
	for {
		last = l.readiness(ctx)
		if last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: not ready: %s: %w", last, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// readiness returns "" when ready, else what is missing.
func (l *Lab) readiness(ctx context.Context) string {
	sts, err := l.Statuses(ctx)
	if err != nil {
		return err.Error()
	}
	var notReady []string
	for _, m := range l.masters {
		st := sts[m.Name]
		if !st.Ready {
			var bad []string
			for c, s := range st.Components {
				if s != "ready" && s != "running" && s != "ok" {
					bad = append(bad, c+"="+s)
				}
			}
			sort.Strings(bad)
			notReady = append(notReady, m.Name+" not ready ("+strings.Join(bad, " ")+")")
		}
	}
	if len(notReady) > 0 {
		return strings.Join(notReady, "; ")
	}
	hs, err := l.VIPHolders()
	if err != nil {
		return err.Error()
	}
	if len(hs) != 1 {
		return fmt.Sprintf("VIP holders %v", hs)
	}
	if l.opts.KubeBinDir != "" {
		out, err := l.Kubectl(ctx, "get", "--raw", "/readyz")
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			return fmt.Sprintf("kubectl get --raw /readyz via the VIP: %v", err)
		}
	}
	return ""
}
