package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/lab"
)

// wipeTrials returns the number of trials of
// TestWipeWhileHolderHalfPartitioned: $MASTERD_WIPE_TRIALS, else 4. Four
// trials cover each combination once (all of /var/lib/masterd or the
// election state only, on the new holder or on the other master), at about
// 20 s a trial; `make integration` runs the 20 trials issue 21 asks for
// (about 7 minutes), which `make test`'s 60-minute budget cannot carry.
func wipeTrials(t *testing.T) int {
	v := os.Getenv("MASTERD_WIPE_TRIALS")
	if v == "" {
		return 4
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("MASTERD_WIPE_TRIALS=%q: want a positive number of trials", v)
	}
	return n
}

// Timings of one trial.
const (
	// wipeFailoverWait bounds the wait for the VIP to leave the
	// half-partitioned holder (about 1 s with the default profile).
	wipeFailoverWait = 20 * time.Second
	// wipeElectionWait bounds the wait for the election of a master whose
	// election state alone was wiped to start again (masterd starts its
	// etcd member first: a few seconds without Kubernetes).
	wipeElectionWait = 1 * time.Minute
	// wipeFullWait bounds the wait for the election of a master whose
	// whole /var/lib/masterd was wiped to start during the cut. It does not
	// start: its etcd member must rejoin first and cannot while the holder
	// is unheard (see TestWipeWhileHolderHalfPartitioned). The cut is kept
	// until its election runs or for wipeFullWait from its start (longer
	// than one round of its etcd join probes, 2 s), so the trial shows that
	// it waits (and does nothing else) while H is cut. 5 s gave the same
	// result in every full-wipe trial of a 20-trial run, 2 s longer.
	wipeFullWait = 3 * time.Second
	// wipeHold is how long the cut stays once the wiped master's election
	// runs again: its quiet period of one lease, 0.8 s, then its attempt to
	// learn its terms while the holder's answers do not reach it.
	wipeHold = 2 * time.Second
	// wipeSlowReady: when the cluster takes longer to be ready after the
	// heal (usually 1.4–13 s; once 57 s after a full wipe), the trial logs
	// every master's journal.
	wipeSlowReady = 20 * time.Second
	// wipeSettle is observed after the cluster is ready again, before the
	// observers stop.
	wipeSettle = 1 * time.Second
)

// wipeResult is one trial's figures.
type wipeResult struct {
	trial       int
	holder      string // VIP holder when the cut began
	newHolder   string // VIP holder after the failover, before the wipe
	wiped       string
	wipedHeld   bool   // the wiped master held the VIP when it was stopped
	what        string // "all of /var/lib/masterd" or "election state only"
	failover    time.Duration
	stopTook    time.Duration
	electionAt  time.Duration // from the start of the wiped masterd to its election running during the cut (0: not during the cut)
	cutAfter    time.Duration // how long the cut stayed after the wiped masterd was started
	healToReady time.Duration
	after       string // VIP holder at the end
	took        time.Duration
	mon         lab.MonitorReport
	arpRounds   int
	arpDual     int
	arpNone     int
	ping        lab.PingReport
	drops       int
	during      string // the election's view of the vip role at the end of the hold
}

// TestWipeWhileHolderHalfPartitioned (issue 21, "Done when"): a master is
// wiped and restarted while the VIP holder is partially partitioned — the
// others cannot hear the holder, the holder still hears them — in wipeTrials
// trials, and no sample shows two VIP holders on the wire (distinct MACs
// answering one ARP request from the client, every 20 ms) or in `ip addr`
// (the VIP in two master namespaces, every 10 ms).
//
// The lab runs with kubernetes.mode: none. What the test is about — the
// elections, the VIP, the wiped election state or data directory — does not
// involve Kubernetes, and with it a trial took 40–81 s (20 trials in 22 min
// on two cores): `systemctl stop masterd` on W took 17–31 s (W's
// kube-apiserver hung on its etcd connection to H, whose answers are cut,
// until its 20 s stop grace ended in SIGKILL) and W's etcd member and
// kube-apiserver took 11–24 s to start again. That run passed too: 121211
// ip addr samples and 46626 ARP rounds, none with two holders.
//
// A trial: find the VIP holder H; drop on the bridge every frame from H's
// port to the other masters' ports (lab.CutOneWay); wait for the VIP to move
// to one of them; pick W among the two others (trial by trial: the new
// holder, then the other one); stop masterd on W, wipe its state, start it
// again; keep the cut (see below); heal; wait until the cluster is ready
// (every master ready, one VIP holder); observe wipeSettle more and check
// the samples.
//
// What is wiped alternates in pairs of trials:
//
//   - all of /var/lib/masterd (an operator re-imaging the disk: election
//     state, etcd data, PKI). masterd starts its components in order and its
//     etcd member can rejoin (as a learner) only once an etcd quorum answers:
//     with H unheard and W's old member gone, the survivors have no quorum,
//     so W's election cannot start before the heal — W is wiped and started
//     while H is half-partitioned, but its quiet period and term learning
//     run after the heal. The cut is kept until W's election runs or for
//     wipeFullWait after W's masterd was started (the figures say which;
//     so far always the latter), then healed: the etcd rejoin, the quiet
//     period and the term learning follow with H heard again.
//   - the election state only (/var/lib/masterd/election): W's etcd member
//     keeps its data and, with the third master, its quorum, so W's election
//     starts during the cut — quiet for one lease, then learning its terms
//     while H's answers do not reach it. The cut is kept until W's election
//     runs (after its etcd member started), then for wipeHold.
//
// Measured on a 2-core machine without Kubernetes (three runs: 437 s with
// wipeFullWait 5 s, then 484 s and 384 s with 3 s; the lab up in 11–22 s):
// trials of 13–31 s, one of 69 s. The sleeps are about 4 s of a trial.
// `systemctl stop masterd` on W takes 0.3–3.4 s, or 7–9.4 s when W's etcd member
// is the leader: before stopping it transfers the leadership, etcd picked H
// as the transferee (seen in the journals of two such trials; probably
// because its stream to H, opened before the cut, still counts as connected)
// and the transfer timed out after 7 s. W's election runs 2.2–5.1 s after
// its start (election state wiped); the cluster is ready 1.4–13 s after the
// heal (once 57 s, after a full wipe of the new holder: the trial then logs
// the journals).
func TestWipeWhileHolderHalfPartitioned(t *testing.T) {
	o := options(t)
	o.Prefix = fmt.Sprintf("scwipe%d", os.Getpid()%1000000)
	// kubernetes.mode: none (see above), whatever kube binaries are present.
	o.KubeBinDir = ""
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	s := upLab(t, ctx, o, 5*time.Minute)
	figure(t, "lab up and ready in %.1fs (kube: %v)", time.Since(start).Seconds(), s.KubeEnabled())

	var results []wipeResult
	trials := wipeTrials(t)
	for trial := 1; trial <= trials; trial++ {
		r := wipeTrial(t, ctx, s, trial)
		results = append(results, r)
		if t.Failed() {
			break
		}
	}

	var samples, dual, arpRounds, arpDual, arpNone int
	var longest time.Duration
	for _, r := range results {
		samples += r.mon.Samples
		dual += r.mon.Dual
		arpRounds += r.arpRounds
		arpDual += r.arpDual
		arpNone += r.arpNone
		longest = max(longest, r.ping.LongestGap)
	}
	figure(t, "%d trials in %.1fs: ip addr %d samples, %d with two holders; ARP %d rounds, %d with two MACs, %d unanswered; longest client ping gap %.3fs",
		len(results), time.Since(start).Seconds(), samples, dual, arpRounds, arpDual, arpNone, longest.Seconds())
}

func wipeTrial(t *testing.T, ctx context.Context, s *scenarioLab, trial int) wipeResult {
	t.Helper()
	r := wipeResult{trial: trial}
	begin := time.Now()
	full := (trial-1)/2%2 == 0
	r.what = "election state only"
	if full {
		r.what = "all of /var/lib/masterd"
	}
	h := s.vipHolder(t)
	r.holder = h.Name
	var others []*lab.Master
	for _, m := range s.Masters() {
		if m != h {
			others = append(others, m)
		}
	}

	mon, err := s.MonitorVIP(10 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	am, err := s.MonitorARP(20*time.Millisecond, 10*time.Millisecond)
	if err != nil {
		mon.Stop()
		t.Fatal(err)
	}
	p, err := s.StartPinger(10 * time.Millisecond)
	if err != nil {
		mon.Stop()
		am.Stop()
		t.Fatal(err)
	}
	stopped := false
	stopObservers := func() {
		if stopped {
			return
		}
		stopped = true
		r.ping = p.Stop()
		var aerr error
		r.arpRounds, r.arpDual, r.arpNone, aerr = am.Stop()
		if aerr != nil {
			t.Errorf("trial %d: ARP monitor: %v", trial, aerr)
		}
		r.mon = mon.Stop()
		if r.mon.Err != nil {
			t.Errorf("trial %d: ip addr monitor: %v", trial, r.mon.Err)
		}
	}
	// Whatever happens, heal the cut and stop the observers before the lab
	// goes down.
	defer func() {
		_ = s.HealOneWay(context.Background())
		stopObservers()
	}()
	time.Sleep(300 * time.Millisecond)

	t0 := time.Now()
	if err := s.CutOneWay(ctx, h, others...); err != nil {
		t.Fatal(err)
	}
	// The cut is one way: H hears the others, they do not hear H.
	for _, m := range others {
		if ok, err := s.CanReach(h, m, 200*time.Millisecond); err != nil || ok {
			t.Fatalf("trial %d: after the cut a datagram from %s reached %s (%v)", trial, h.Name, m.Name, err)
		}
		if ok, err := s.CanReach(m, h, 2*time.Second); err != nil || !ok {
			t.Fatalf("trial %d: after the cut no datagram from %s reached %s (%v)", trial, m.Name, h.Name, err)
		}
	}
	r.newHolder, r.failover = s.waitVIPOff(t, h, t0, false, wipeFailoverWait)

	// W: the new holder in odd trials, the other master in even ones.
	w := s.Master(r.newHolder)
	if trial%2 == 0 {
		for _, m := range others {
			if m != w {
				w = m
				break
			}
		}
	}
	r.wiped, r.wipedHeld = w.Name, w.Name == r.newHolder

	ts := time.Now()
	if err := w.StopMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	r.stopTook = time.Since(ts)
	dir := "/var/lib/masterd/election"
	rm := "rm -rf /var/lib/masterd/election"
	if full {
		dir = "/var/lib/masterd"
		rm = "rm -rf /var/lib/masterd/* /var/lib/masterd/.[!.]*"
	}
	if _, err := w.Exec(ctx, "sh", "-c", rm); err != nil {
		t.Fatal(err)
	}
	if out, _ := w.Exec(ctx, "sh", "-c", "ls -A "+dir+" 2>/dev/null | wc -l"); strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("trial %d: %s of %s not empty after the wipe: %s entries", trial, dir, w.Name, strings.TrimSpace(string(out)))
	}
	started := time.Now()
	if err := w.StartMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	// Hold the cut until W's election runs again: its quiet period and its
	// term learning then happen while H is unheard. After a full wipe it
	// cannot run before the heal (W's etcd member must rejoin, and the
	// survivors have no quorum without H): the cut is kept for at most
	// wipeFullWait, and held wipeHold more only if the election ran.
	wait := wipeElectionWait
	if full {
		wait = wipeFullWait
	}
	if d, ok := s.waitElectionRunning(ctx, w, wait); ok {
		r.electionAt = d
		time.Sleep(wipeHold)
	} else if !full {
		t.Fatalf("trial %d: %s's election did not run within %v of its start", trial, w.Name, wait)
	}
	r.cutAfter = time.Since(started)
	r.during = s.vipViews(ctx)
	if r.drops, err = s.OneWayDrops(ctx); err != nil {
		t.Error(err)
	}

	if err := s.HealOneWay(ctx); err != nil {
		t.Fatal(err)
	}
	r.healToReady = s.waitReady(t, ctx, 5*time.Minute)
	if r.healToReady > wipeSlowReady {
		// Not a failure, but worth a look: what the masters did meanwhile.
		for _, m := range s.Masters() {
			t.Logf("trial %d: ready only %.1fs after the heal; %s: journalctl -u masterd\n%s", trial, r.healToReady.Seconds(), m.Name, m.Journal(ctx, 60))
		}
	}
	time.Sleep(wipeSettle)
	stopObservers()

	if r.mon.Dual != 0 {
		t.Errorf("trial %d: two VIP holders in `ip addr` in %d of %d samples: %v", trial, r.mon.Dual, r.mon.Samples, r.mon)
	}
	if r.arpDual != 0 {
		t.Errorf("trial %d: two MACs answered ARP for the VIP in %d of %d rounds", trial, r.arpDual, r.arpRounds)
	}
	macs, _ := s.MACs()
	hs, _ := s.VIPHolders()
	got, err := s.ARPHolders(300 * time.Millisecond)
	if err != nil || len(hs) != 1 || len(got) != 1 || got[0] != macs[hs[0]] {
		t.Errorf("trial %d: after the heal the VIP is on %v and ARP answers come from %v (%v)", trial, hs, got, err)
	}
	if len(hs) == 1 {
		r.after = hs[0]
	}
	if !full {
		// The wiped election state was written again.
		if out, err := w.Exec(ctx, "sh", "-c", "ls /var/lib/masterd/election"); err != nil || !strings.Contains(string(out), "election-state.json") {
			t.Errorf("trial %d: %s has no election state after it rejoined: %q %v", trial, w.Name, out, err)
		}
	}
	r.took = time.Since(begin)
	figure(t, "trial %d: holder %s cut one way (%d frames dropped), VIP -> %s in %.3fs; wiped %s (%s; %s) — stop took %.1fs, election running again %s, cut kept %.1fs after the start; vip role at the end of the cut: %s; healed, ready %.1fs later, VIP on %s; ip addr %d samples, %d dual, %d none; ARP %d rounds, %d with two MACs, %d unanswered; client ping longest gap %.3fs, outages %v; trial took %.1fs",
		trial, r.holder, r.drops, r.newHolder, r.failover.Seconds(), r.wiped, heldWord(r.wipedHeld), r.what, r.stopTook.Seconds(),
		electionWord(r.electionAt), r.cutAfter.Seconds(), r.during, r.healToReady.Seconds(), r.after, r.mon.Samples, r.mon.Dual, r.mon.None,
		r.arpRounds, r.arpDual, r.arpNone, r.ping.LongestGap.Seconds(), r.ping.Outages, r.took.Seconds())
	t.Logf("trial %d: ip addr transitions: %v", trial, r.mon)
	return r
}

func electionWord(d time.Duration) string {
	if d == 0 {
		return "only after the heal (its etcd member rejoins first)"
	}
	return fmt.Sprintf("%.1fs after its start, during the cut", d.Seconds())
}

// waitElectionRunning waits up to d until m's status has an election
// section with the vip role and returns how long that took, and whether it
// happened.
func (s *scenarioLab) waitElectionRunning(ctx context.Context, m *lab.Master, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < d {
		cctx, cancel := context.WithTimeout(ctx, min(time.Second, max(d-time.Since(start), time.Millisecond)))
		st, err := m.Status(cctx)
		cancel()
		if err == nil {
			var el struct{ Roles map[string]json.RawMessage }
			if raw, ok := st.Sections["election"]; ok && json.Unmarshal(raw, &el) == nil && el.Roles["vip"] != nil {
				return time.Since(start), true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start), false
}

func heldWord(held bool) string {
	if held {
		return "the new holder"
	}
	return "not the holder"
}

// vipViews summarises every master's election view of the vip role
// (state, term, promised to, learning), or why it has none.
func (s *scenarioLab) vipViews(ctx context.Context) string {
	var parts []string
	for _, m := range s.Masters() {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := m.Status(cctx)
		cancel()
		if err != nil {
			parts = append(parts, m.Name+": no status")
			continue
		}
		var el struct {
			Roles map[string]struct {
				Holder   string
				Term     uint64
				State    string
				Learning bool
			}
		}
		raw, ok := st.Sections["election"]
		if !ok || json.Unmarshal(raw, &el) != nil {
			parts = append(parts, m.Name+": no election section")
			continue
		}
		v, ok := el.Roles["vip"]
		if !ok {
			parts = append(parts, m.Name+": no vip role")
			continue
		}
		p := fmt.Sprintf("%s: %s term %d", m.Name, v.State, v.Term)
		if v.Holder != "" {
			p += " promised to " + v.Holder
		}
		if v.Learning {
			p += " learning"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}
