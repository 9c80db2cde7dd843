package scenarios

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
// controller-manager roles by each fault kind once — graceful stop of the
// holder's masterd, SIGKILL of it, a partition of the holder, a crash of
// the holder — and checks from the outside that no two instances of a
// component ever act at once: the Lease's holderIdentity (polled through
// another master's apiserver) goes from the old instance to the new one
// and never back, and the new instance logs "successfully acquired lease"
// only after the old instance's unit was dead (systemd's journal on the
// old master; the lab's hosts share one clock). The roles run with their
// default timing (election.DefaultUnitTiming, 3.5s/1.5s/0.3s: a lapsed
// holder kills its unit's control group at once), the components' own
// --leader-elect with kube's 15s/10s/2s (checked on the holders' units).
// It reports the takeover times: fault → the new instance acquired, →
// a new Pod bound (scheduler), → a scaled Deployment's new pod created
// (controller-manager). Run alone with:
//
//	go test -count=1 -timeout 30m -v -run TestTakeoverOfLeaderOnlyComponents ./integration/scenarios/
//
// MASTERD_TAKEOVER_TRIALS=N repeats each fault N times (a benchmark run,
// not for `make test`); SCENARIO_FIGURES=file collects the figures. With
// MASTERD_DEB pointing at an older package, the same test measures it.
func TestTakeoverOfLeaderOnlyComponents(t *testing.T) {
	o := options(t)
	o.Prefix = fmt.Sprintf("sctk%d", os.Getpid()%1000000)
	if o.KubeBinDir == "" {
		t.Skip("needs the kube binaries: run `make kube` (or set KUBE_BIN_DIR)")
	}
	trials := 1
	if v := os.Getenv("MASTERD_TAKEOVER_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			t.Fatalf("MASTERD_TAKEOVER_TRIALS=%q: want a count 1-100", v)
		}
		trials = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(25*trials)*time.Minute)
	defer cancel()
	s := upLab(t, ctx, o, 8*time.Minute)
	s.checkComponentLeaseFlags(t, ctx)
	w := s.setUpWorkload(t, ctx)

	crash := func(ctx context.Context, m *lab.Master) error { return s.Crash(ctx, m) }
	partition := func(ctx context.Context, m *lab.Master) error { return s.Partition(ctx, m) }
	for _, tr := range []struct {
		name  string
		role  string
		fault func(ctx context.Context, m *lab.Master) error
		// gone: the fault kills every process of the host at once (its
		// journal goes with it): the old instance is dead when it returns.
		gone bool
	}{
		{"graceful stop of the scheduler holder", "scheduler", stopMasterd, false},
		{"SIGKILL of the controller-manager holder's masterd", "controller-manager", killMasterd, false},
		{"partition of the scheduler holder", "scheduler", partition, false},
		{"crash of the controller-manager holder", "controller-manager", crash, true},
	} {
		for i := 1; i <= trials; i++ {
			name := tr.name
			if trials > 1 {
				name += fmt.Sprintf(" trial %d", i)
			}
			t.Run(name, func(t *testing.T) {
				s.dumpOnFailure(t)
				s.whole(t, ctx)
				takeoverTrial(t, ctx, s, w, tr.role, tr.fault, tr.gone)
			})
		}
	}
}

// checkComponentLeaseFlags checks that each leader-only unit, on its
// role's holder, runs with kube's own --leader-elect timing (15s/10s/2s),
// not the role's: the role's renew deadline (1.5 s) inside kube-scheduler
// on a loaded apiserver made it give up its Lease and exit.
func (s *scenarioLab) checkComponentLeaseFlags(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, c := range components {
		m := s.Master(s.waitOneHolder(t, ctx, c.role))
		out, err := m.Exec(ctx, "systemctl", "cat", c.unit)
		if err != nil {
			t.Fatalf("%s: systemctl cat %s: %v: %s", m.Name, c.unit, err, out)
		}
		for _, f := range []string{"--leader-elect=true", "--leader-elect-lease-duration=15s", "--leader-elect-renew-deadline=10s", "--leader-elect-retry-period=2s"} {
			if !strings.Contains(string(out), f) {
				t.Errorf("%s: %s lacks %s:\n%s", m.Name, c.unit, f, out)
			}
		}
	}
}

func stopMasterd(ctx context.Context, m *lab.Master) error { return m.StopMasterd(ctx) }
func killMasterd(ctx context.Context, m *lab.Master) error { return m.KillMasterd(ctx) }

// workload is what the trials ask of the components
// (lab.SchedulingWorkload): new pods for the kubelet-less Node and more
// replicas of the Deployment.
type workload struct {
	dir  string
	pods int // pods created so far (their names)
	reps int // the Deployment's replicas
}

const takeoverDeployment = "takeover-probe"

func (s *scenarioLab) setUpWorkload(t *testing.T, ctx context.Context) *workload {
	t.Helper()
	w := &workload{dir: t.TempDir()}
	wl := lab.NewSchedulingWorkload("takeover-node", takeoverDeployment, "a Node object for the takeover test", time.Now())
	for name, body := range map[string]string{"node.json": wl.Node, "deployment.json": wl.Deployment} {
		p := filepath.Join(w.dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := s.Kubectl(ctx, "create", "-f", p); err != nil {
			t.Fatalf("create %s: %v: %s", name, err, out)
		}
	}
	if out, err := s.Kubectl(ctx, "patch", "node", "takeover-node", "--subresource=status", "--type=merge", "-p", wl.NodeStatus); err != nil {
		t.Fatalf("node status: %v: %s", err, out)
	}
	return w
}

// probe prepares the component's work and returns ask, which asks for it
// right after the fault, and done, which returns when it was done: a new
// Pod bound (scheduler) or the Deployment's new pod created
// (controller-manager). Both are seen through a kubectl watch on another
// master's apiserver started before the fault, timestamped as its lines
// arrive: polling with a kubectl per read lagged by up to 12 s on the
// loaded machine (a start of kubectl costs seconds there).
func (w *workload) probe(t *testing.T, ctx context.Context, s *scenarioLab, via *lab.Master, others []*lab.Master, role string) (ask func() time.Time, done func() (created, at time.Time, err error)) {
	t.Helper()
	server := "https://" + via.Addr.String() + ":6443"
	// The request after the fault goes to any master but the victim, each
	// tried in turn for up to 90 s: a master's apiserver may refuse writes
	// for tens of seconds while etcd recovers from the fault on this loaded
	// machine, where kubectl alone takes 2-3 s to start.
	kubectl := func(args ...string) (string, error) {
		var errs []error
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			for _, m := range others {
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				out, err := s.Kubectl(cctx, append([]string{"--server", "https://" + m.Addr.String() + ":6443"}, args...)...)
				cancel()
				if err == nil || strings.Contains(string(out), "AlreadyExists") {
					return strings.TrimSpace(string(out)), nil
				}
				errs = append(errs, err)
			}
		}
		return "", errors.Join(errs...)
	}
	var watchArgs []string
	var seen func(line string) bool
	switch role {
	case "scheduler":
		w.pods++
		name := fmt.Sprintf("takeover-pod-%d", w.pods)
		pod := `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "` + name + `", "namespace": "default", "labels": {"takeover-pod": "` + name + `"}},
 "spec": {"tolerations": [{"operator": "Exists"}], "containers": [{"name": "c", "image": "registry.invalid/pause"}]}}`
		p := filepath.Join(w.dir, name+".json")
		if err := os.WriteFile(p, []byte(pod), 0o644); err != nil {
			t.Fatal(err)
		}
		watchArgs = []string{"-n", "default", "get", "pods", "-l", "takeover-pod=" + name, "--watch", "-o", "jsonpath={.metadata.name} node={.spec.nodeName}{\"\\n\"}"}
		seen = func(line string) bool { return strings.HasPrefix(line, name+" node=") && line != name+" node=" }
		ask = func() time.Time {
			if out, err := kubectl("create", "-f", p); err != nil {
				t.Errorf("create pod: %v: %s", err, out)
			}
			return time.Now()
		}
	default:
		w.reps++
		want := w.reps
		names := map[string]bool{}
		watchArgs = []string{"-n", "default", "get", "pods", "-l", "app=" + takeoverDeployment, "--watch", "-o", "name"}
		seen = func(line string) bool {
			names[line] = true
			return len(names) >= want
		}
		ask = func() time.Time {
			if out, err := kubectl("-n", "default", "scale", "deployment", takeoverDeployment, "--replicas="+strconv.Itoa(want)); err != nil {
				t.Errorf("scale: %v: %s", err, out)
			}
			return time.Now()
		}
	}
	argv := append(strings.Fields(s.KubectlCommand()), append([]string{"--server", server}, watchArgs...)...)
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	res := make(chan time.Time, 1)
	var firstMu sync.Mutex
	var first time.Time // the first line about the new pod (scheduler: created, not yet bound)
	var stderr strings.Builder
	watched := make(chan struct{})
	// kubectl --watch ends quietly when the apiserver closes the watch
	// (its etcd lost a member, a partition): watch again until the
	// deadline; the new watch lists the current state first.
	go func() {
		defer close(watched)
		for wctx.Err() == nil {
			cmd := exec.CommandContext(wctx, argv[0], argv[1:]...)
			out, err := cmd.StdoutPipe()
			if err == nil {
				cmd.Stderr = &stderr
				err = cmd.Start()
			}
			if err != nil {
				fmt.Fprintf(&stderr, "start kubectl: %v; ", err)
				sleepCtx(wctx, 500*time.Millisecond)
				continue
			}
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if role == "scheduler" && strings.HasPrefix(line, "takeover-pod-") {
					firstMu.Lock()
					if first.IsZero() {
						first = time.Now()
					}
					firstMu.Unlock()
				}
				if seen(line) {
					res <- time.Now()
					cancel()
					_ = cmd.Wait()
					return
				}
			}
			_ = cmd.Wait()
			sleepCtx(wctx, 200*time.Millisecond)
		}
	}()
	// The watch has listed what exists before the fault.
	time.Sleep(3 * time.Second)
	done = func() (created, at time.Time, err error) {
		select {
		case at = <-res:
		case <-wctx.Done():
		}
		cancel()
		<-watched
		if at.IsZero() {
			select {
			case at = <-res: // sent right before the goroutine cancelled wctx
			default:
			}
		}
		if at.IsZero() {
			return time.Time{}, time.Time{}, fmt.Errorf("not seen within the watch's 3 minutes (kubectl: %s)", strings.TrimSpace(stderr.String()))
		}
		firstMu.Lock()
		defer firstMu.Unlock()
		return first, at, nil
	}
	return ask, done
}

func takeoverTrial(t *testing.T, ctx context.Context, s *scenarioLab, w *workload, role string, fault func(context.Context, *lab.Master) error, gone bool) {
	hs := s.waitOneHolder(t, ctx, role)
	victim := s.Master(hs)
	observer, others := s.observerFor(t, ctx, victim)
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
	// The work each watched component must do after the fault, watched
	// from before it and asked for right after it.
	type work struct {
		created, at time.Time
		err         error
	}
	works := map[string]chan work{}
	asks := map[string]func() time.Time{}
	askedAt := map[string]time.Time{}
	var askMu sync.Mutex
	for _, c := range watched {
		ask, done := w.probe(t, ctx, s, observer, others, c.role)
		asks[c.lease] = ask
		ch := make(chan work, 1)
		works[c.lease] = ch
		go func() {
			created, at, err := done()
			ch <- work{created, at, err}
		}()
	}
	time.Sleep(time.Second)
	t0 := time.Now()
	if err := fault(ctx, victim); err != nil {
		t.Fatalf("fault on %s: %v", victim.Name, err)
	}
	goneAt := time.Now()
	var asked sync.WaitGroup
	defer asked.Wait()
	for lease, ask := range asks {
		asked.Go(func() {
			at := ask()
			askMu.Lock()
			askedAt[lease] = at
			askMu.Unlock()
		})
	}
	for _, c := range watched {
		p := polls[c.lease]
		// The new instance may run on the victim again (masterd restarted
		// there after a SIGKILL and won the role back): a new instance is
		// a new identity (hostname_uuid).
		// Every identity that held the Lease before the fault counts as
		// old: under load a component may restart on the victim (a new
		// identity) between the first read and the fault.
		newRec, old := p.waitNewHolder(t, t0, oldID[c.lease], 90*time.Second)
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
			} else if seenNew && old[r.holder] {
				t.Errorf("%s: holderIdentity went back to an old instance %q after %q held it", c.lease, r.holder, newRec.holder)
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
		wk := <-works[c.lease]
		if wk.err != nil {
			t.Errorf("%s: the work asked of it after the fault: %v", c.lease, wk.err)
		}
		asked.Wait()
		t.Logf("%s: the new holder's timeline:\n%s", c.lease, timeline(ctx, newM, c.unit, t0))
		// The request itself may take seconds after a fault (kubectl's
		// start on the loaded machine, an apiserver waiting for etcd):
		// the figure says when it returned and, for a pod, when the watch
		// saw it created.
		created := "n/a"
		if !wk.created.IsZero() {
			created = fmt.Sprintf("%.3fs", wk.created.Sub(t0).Seconds())
		}
		figure(t, "%s: old instance on %s dead %.3fs after the fault, new instance on %s acquired %.3fs after it (%.3fs after the old one died); %s %.3fs after the fault (request returned %.3fs, pod seen created %s); Lease acquireTime %.3fs after the fault; holderIdentity seen: %s",
			c.lease, victim.Name, dead.Sub(t0).Seconds(), newHost, acquired.Sub(t0).Seconds(), acquired.Sub(dead).Seconds(),
			workName(c.role), wk.at.Sub(t0).Seconds(), askedAt[c.lease].Sub(t0).Seconds(), created, newRec.acquire.Sub(t0).Seconds(), strings.Join(trail, " → "))
	}
	if len(watched) == 0 {
		t.Fatalf("%s holds none of the leader-only roles (role %s holders %v)", victim.Name, role, s.Holders(ctx, role))
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func workName(role string) string {
	if role == "scheduler" {
		return "new Pod bound"
	}
	return "scaled Deployment's new pod created"
}

// observerFor picks the master, other than victim, whose apiserver
// answers /readyz first (it watches the Lease and the workload through the
// fault), and returns it with every master but the victim.
func (s *scenarioLab) observerFor(t *testing.T, ctx context.Context, victim *lab.Master) (*lab.Master, []*lab.Master) {
	t.Helper()
	var others []*lab.Master
	for _, m := range s.Masters() {
		if m != victim {
			others = append(others, m)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		best, bestD := (*lab.Master)(nil), time.Duration(0)
		for _, m := range others {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			t0 := time.Now()
			_, err := s.Kubectl(cctx, "--server", "https://"+m.Addr.String()+":6443", "get", "--raw", "/readyz")
			cancel()
			if d := time.Since(t0); err == nil && (best == nil || d < bestD) {
				best, bestD = m, d
			}
		}
		if best != nil {
			return best, others
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("no apiserver but %s's answers /readyz", victim.Name)
	return nil, nil
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

// waitNewHolder waits for a record seen after t0 held by an instance other
// than first (the victim's instance read before the fault) and every
// holder of a record seen before t0 (and not free), and returns it with
// the set of those earlier holders. (On the loaded machine a kubectl read
// may take seconds: the poller may have no record before the fault.)
func (p *leasePoller) waitNewHolder(t *testing.T, t0 time.Time, first string, d time.Duration) (leaseRecord, map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	old := map[string]bool{first: true}
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, r := range p.recs {
			if r.at.Before(t0) {
				old[r.holder] = true
			} else if r.holder != "" && !old[r.holder] {
				p.mu.Unlock()
				return r, old
			}
		}
		p.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no instance other than %v took the Lease within %v of the fault", old, d)
	return leaseRecord{}, nil
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
