package scenarios

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/lab"
)

// A leader-only component and the names the test watches it by.
type component struct {
	role  string // masterd's role
	unit  string // its systemd unit on the holder
	lease string // its coordination.k8s.io Lease in kube-system
}

var components = []component{
	{"scheduler", "kube-scheduler.service", "kube-scheduler"},
	{"controller-manager", "kube-controller-manager.service", "kube-controller-manager"},
}

// TestTakeoverOfLeaderOnlyComponents moves the scheduler and
// controller-manager roles by a graceful stop and by SIGKILL of the
// holder's masterd, and checks from the outside that no two instances of a
// component ever act at once: the Lease's holderIdentity (polled through
// another master's apiserver) goes from the old instance to the new one
// and never back, and the new instance logs "successfully acquired lease"
// only after the old instance's unit was dead (systemd's
// InactiveEnterTimestamp on the old master; the lab's hosts share one
// clock). It reports the takeover time, fault → the new holder's
// acquireTime. Run alone with:
//
//	go test -count=1 -timeout 30m -v -run TestTakeoverOfLeaderOnlyComponents ./integration/scenarios/
//
// With MASTERD_DEB pointing at a package built before the Lease hand-over,
// the same test measures the "before" figures.
func TestTakeoverOfLeaderOnlyComponents(t *testing.T) {
	o := options(t)
	o.Prefix = fmt.Sprintf("sctk%d", os.Getpid()%1000000)
	if o.KubeBinDir == "" {
		t.Skip("needs the kube binaries: run `make kube` (or set KUBE_BIN_DIR)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	s := upLab(t, ctx, o, 8*time.Minute)

	crash := func(ctx context.Context, m *lab.Master) error { return s.Crash(ctx, m) }
	for _, tr := range []struct {
		name  string
		role  string
		fault func(ctx context.Context, m *lab.Master) error
		// gone: the fault kills every process of the host at once (its
		// journal goes with it): the old instance is dead when it returns.
		gone bool
	}{
		{"graceful stop of the scheduler holder", "scheduler", stopMasterd, false},
		{"SIGKILL of the scheduler holder's masterd", "scheduler", killMasterd, false},
		{"crash of the scheduler holder", "scheduler", crash, true},
		{"crash of the controller-manager holder", "controller-manager", crash, true},
		{"SIGKILL of the controller-manager holder's masterd", "controller-manager", killMasterd, false},
	} {
		t.Run(tr.name, func(t *testing.T) {
			s.dumpOnFailure(t)
			s.whole(t, ctx)
			takeoverTrial(t, ctx, s, tr.role, tr.fault, tr.gone)
		})
	}
}

func stopMasterd(ctx context.Context, m *lab.Master) error { return m.StopMasterd(ctx) }
func killMasterd(ctx context.Context, m *lab.Master) error { return m.KillMasterd(ctx) }

func takeoverTrial(t *testing.T, ctx context.Context, s *scenarioLab, role string, fault func(context.Context, *lab.Master) error, gone bool) {
	hs := s.waitOneHolder(t, ctx, role)
	victim := s.Master(hs)
	var observer *lab.Master
	for _, m := range s.Masters() {
		if m != victim {
			observer = m
			break
		}
	}
	// The components whose role the victim holds, each running and
	// holding its Lease before the fault.
	var watched []component
	for _, c := range components {
		if h := s.Holders(ctx, c.role); len(h) == 1 && h[0] == victim.Name {
			watched = append(watched, c)
		}
	}
	polls := map[string]*leasePoller{}
	oldID := map[string]string{}
	for _, c := range watched {
		oldID[c.lease] = s.waitLeaseHost(t, ctx, observer, c.lease, victim.Name)
		polls[c.lease] = s.pollLease(ctx, observer, c.lease)
	}
	time.Sleep(time.Second)
	t0 := time.Now()
	if err := fault(ctx, victim); err != nil {
		t.Fatalf("fault on %s: %v", victim.Name, err)
	}
	goneAt := time.Now()
	for _, c := range watched {
		p := polls[c.lease]
		// The new instance may run on the victim again (masterd restarted
		// there after a SIGKILL and won the role back): a new instance is
		// a new identity (hostname_uuid).
		newRec := p.waitHolderNot(t, oldID[c.lease], 90*time.Second)
		time.Sleep(2 * time.Second) // transitions after the takeover, if any
		recs := p.Stop()
		newHost := leaseHost(newRec.holder)
		newM := s.Master(newHost)
		if newM == nil {
			t.Fatalf("%s: Lease held by %q, not a master", c.lease, newRec.holder)
		}
		// Never back to the old instance once the new one holds.
		seenNew := false
		var trail []string
		for _, r := range recs {
			trail = append(trail, fmt.Sprintf("%.3fs %q", r.at.Sub(t0).Seconds(), r.holder))
			if r.holder == newRec.holder {
				seenNew = true
			} else if seenNew && r.holder == oldID[c.lease] {
				t.Errorf("%s: holderIdentity went back to the old instance %q after %q held it", c.lease, r.holder, newRec.holder)
			}
		}
		t.Logf("%s: holderIdentity seen: %s", c.lease, strings.Join(trail, " → "))
		dead := goneAt
		if !gone {
			dead = unitDeadAt(t, ctx, victim, c.unit, t0)
		}
		acquired := acquiredAt(t, ctx, newM, c.unit, c.lease, t0)
		if !acquired.After(dead) {
			t.Errorf("%s: the new instance on %s acquired the Lease at %s, %v before the old instance's unit on %s was dead (%s): two instances acted at once",
				c.lease, newHost, acquired.Format(time.RFC3339Nano), dead.Sub(acquired), victim.Name, dead.Format(time.RFC3339Nano))
		}
		t.Logf("%s: the new holder's timeline:\n%s", c.lease, timeline(ctx, newM, c.unit, t0))
		figure(t, "%s: old instance on %s dead %.3fs after the fault, new instance on %s acquired %.3fs after it (%.3fs after the old one died); Lease acquireTime %.3fs after the fault; holderIdentity seen: %s",
			c.lease, victim.Name, dead.Sub(t0).Seconds(), newHost, acquired.Sub(t0).Seconds(), acquired.Sub(dead).Seconds(), newRec.acquire.Sub(t0).Seconds(), strings.Join(trail, " → "))
	}
	if len(watched) == 0 {
		t.Fatalf("%s holds none of the leader-only roles (role %s holders %v)", victim.Name, role, s.Holders(ctx, role))
	}
}

// waitOneHolder waits until role has exactly one holder and returns it.
func (s *scenarioLab) waitOneHolder(t *testing.T, ctx context.Context, role string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var hs []string
	for time.Now().Before(deadline) {
		if hs = s.Holders(ctx, role); len(hs) == 1 {
			return hs[0]
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("role %s: holders %v, want one", role, hs)
	return ""
}

// leaseRecord is one observed state of a Lease.
type leaseRecord struct {
	at      time.Time
	holder  string
	acquire time.Time
}

// leaseHost is the host part of a client-go identity (hostname_uuid).
func leaseHost(id string) string {
	if i := strings.LastIndexByte(id, '_'); i > 0 {
		return id[:i]
	}
	return id
}

func (s *scenarioLab) readLease(ctx context.Context, via *lab.Master, name string) (leaseRecord, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := s.Kubectl(cctx, "--server", "https://"+via.Addr.String()+":6443", "-n", "kube-system", "get", "lease", name,
		"-o", "jsonpath={.spec.holderIdentity} {.spec.acquireTime}")
	if err != nil {
		return leaseRecord{}, err
	}
	r := leaseRecord{at: time.Now()}
	f := strings.Fields(string(out))
	if len(f) == 2 {
		r.holder = f[0]
		r.acquire, _ = time.Parse(time.RFC3339Nano, f[1])
	} else if len(f) == 1 && strings.Contains(f[0], "T") {
		r.acquire, _ = time.Parse(time.RFC3339Nano, f[0])
	}
	return r, nil
}

// waitLeaseHost waits until an instance on host holds the Lease and
// returns its identity.
func (s *scenarioLab) waitLeaseHost(t *testing.T, ctx context.Context, via *lab.Master, name, host string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var r leaseRecord
	var err error
	for time.Now().Before(deadline) {
		if r, err = s.readLease(ctx, via, name); err == nil && leaseHost(r.holder) == host {
			return r.holder
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("Lease %s: holder %q (%v), want %s's instance", name, r.holder, err, host)
	return ""
}

// leasePoller reads a Lease back to back and keeps every change.
type leasePoller struct {
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	recs []leaseRecord
}

func (s *scenarioLab) pollLease(ctx context.Context, via *lab.Master, name string) *leasePoller {
	p := &leasePoller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			if r, err := s.readLease(ctx, via, name); err == nil {
				p.mu.Lock()
				if n := len(p.recs); n == 0 || p.recs[n-1].holder != r.holder {
					p.recs = append(p.recs, r)
				}
				p.mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return p
}

// waitHolderNot waits for a record held by another instance than old (and
// not free) and returns the first such record.
func (p *leasePoller) waitHolderNot(t *testing.T, old string, d time.Duration) leaseRecord {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, r := range p.recs {
			if r.holder != "" && r.holder != old {
				p.mu.Unlock()
				return r
			}
		}
		p.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no instance other than %s took the Lease within %v", old, d)
	return leaseRecord{}
}

func (p *leasePoller) Stop() []leaseRecord {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]leaseRecord(nil), p.recs...)
}

// unitDeadAt is when systemd on m reported unit gone after since: the last
// of its lines about the unit ("Deactivated successfully", "Failed with
// result", "Stopped"), logged once every process of its control group is
// gone. masterd removes a stopped unit's definition, so its properties
// (InactiveEnterTimestamp) are not there to read.
func unitDeadAt(t *testing.T, ctx context.Context, m *lab.Master, unit string, since time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := m.Exec(ctx, "journalctl", "--no-pager", "_PID=1", "-o", "short-unix", "--since", "@"+strconv.FormatInt(since.Unix()-1, 10))
		var at time.Time
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.Contains(line, unit) || !(strings.Contains(line, "Deactivated successfully") || strings.Contains(line, "Failed with result") || strings.Contains(line, "Stopped ")) {
				continue
			}
			ts, _, _ := strings.Cut(line, " ")
			if a := parseUnix(ts); a.After(since) && a.After(at) {
				at = a
			}
		}
		if !at.IsZero() {
			return at
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: systemd never reported %s gone after the fault:\n%s", m.Name, unit, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func parseUnix(s string) time.Time {
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}
	}
	ns := int64(0)
	if frac != "" {
		frac = (frac + "000000000")[:9]
		ns, _ = strconv.ParseInt(frac, 10, 64)
	}
	return time.Unix(n, ns)
}

// acquiredAt is when the instance of unit on m logged that it acquired
// lease, the first time after since (journal timestamps, microseconds).
func acquiredAt(t *testing.T, ctx context.Context, m *lab.Master, unit, lease string, since time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := m.Exec(ctx, "journalctl", "--no-pager", "-u", unit, "-o", "short-unix", "--since", "@"+strconv.FormatInt(since.Unix()-1, 10))
		for _, line := range strings.Split(string(out), "\n") {
			// klog's text changed over releases: "successfully acquired
			// lease kube-system/x" (before 1.33), "Successfully acquired
			// lease" lock="kube-system/x" (since).
			if !strings.Contains(strings.ToLower(line), "successfully acquired lease") || !strings.Contains(line, "kube-system/"+lease) {
				continue
			}
			ts, _, _ := strings.Cut(line, " ")
			if at := parseUnix(ts); at.After(since) {
				return at
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no \"successfully acquired lease\" of kube-system/%s in %s's journal after the fault:\n%s", m.Name, lease, unit, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// timeline is what masterd and systemd on m logged about the role and its
// unit since t0, with seconds from t0: where a takeover spends its time.
func timeline(ctx context.Context, m *lab.Master, unit string, t0 time.Time) string {
	since := "@" + strconv.FormatInt(t0.Unix()-1, 10)
	// Matches on two fields would be ANDed: two reads, merged in time order.
	units, _ := m.Exec(ctx, "journalctl", "--no-pager", "-u", "masterd", "-u", unit, "-o", "short-unix", "--since", since)
	pid1, _ := m.Exec(ctx, "journalctl", "--no-pager", "_PID=1", "-o", "short-unix", "--since", since)
	lines := append(strings.Split(string(units), "\n"), strings.Split(string(pid1), "\n")...)
	sort.SliceStable(lines, func(i, j int) bool {
		a, _, _ := strings.Cut(lines[i], " ")
		b, _, _ := strings.Cut(lines[j], " ")
		return parseUnix(a).Before(parseUnix(b))
	})
	var b strings.Builder
	for _, line := range lines {
		l := strings.ToLower(line)
		if !strings.Contains(l, "role acquired") && !strings.Contains(l, "lease") && !strings.Contains(l, "leader unit") &&
			!strings.Contains(l, "reloading") && !(strings.Contains(line, unit) && strings.Contains(line, "systemd[1]")) {
			continue
		}
		ts, rest, _ := strings.Cut(line, " ")
		at := parseUnix(ts)
		if at.Before(t0) {
			continue
		}
		if len(rest) > 240 {
			rest = rest[:240]
		}
		fmt.Fprintf(&b, "  %+.3fs %s\n", at.Sub(t0).Seconds(), rest)
	}
	return b.String()
}
