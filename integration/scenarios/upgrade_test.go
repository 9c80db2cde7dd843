package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/lab"
)

// upgradeFrom is the commit whose package the rolling upgrade starts from:
// the last commit of main before the session that made masterd's upgrades
// (issue 24), so the upgrade crosses everything that session changed
// (the election's wire-version handling, the published versions records).
const upgradeFrom = "8e9a5615b88a4dc77b866ac009242c205f0ba7eb"

// Rolling masterd upgrade on real systemd hosts: three masters run the
// package of upgradeFrom (built by the test in a git worktree, cached under
// $MASTERD_CACHE/masterd-debs), then each is upgraded in turn with dpkg -i
// of the current package, the VIP holder last (what `masterd upgrade plan`
// prints). The package's postinst try-restarts masterd, whose graceful stop
// hands its roles over. Meanwhile the VIP is sampled every 10 ms, every
// master's roles every ~100 ms, and a client writes through etcd every
// 20 ms. Checks: no sample with two VIP holders, no round with two holders
// of a role, every role held except during handovers (the longest gap per
// role is a figure), every acknowledged write readable, and the mixed
// cluster (old and new masterd) ready after each step. Kube-less by
// default (kubernetes.mode: none: the roles are the VIP's);
// MASTERD_UPGRADE_KUBE=1 runs it with the kube binaries and their roles.
func TestRollingMasterdUpgradeFromAnEarlierCommit(t *testing.T) {
	o := options(t)
	if os.Getenv("MASTERD_UPGRADE_KUBE") != "1" {
		o.KubeBinDir = ""
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	newDeb := o.Deb
	cache := lab.CacheDir()
	if cache == "" {
		t.Fatal("no cache directory: set MASTERD_CACHE")
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tb := time.Now()
	oldDeb, err := lab.BuildDebAt(ctx, wd, upgradeFrom, filepath.Join(cache, "masterd-debs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("old package %s (%.1fs), new package %s", oldDeb, time.Since(tb).Seconds(), newDeb)
	o.Deb = oldDeb
	o.Prefix = fmt.Sprintf("upg%d", os.Getpid()%1000000)
	s := upLab(t, ctx, o, 5*time.Minute)

	oldRev := s.revisions(t, ctx)
	for name, rev := range oldRev {
		if !strings.HasPrefix(upgradeFrom, rev) && !strings.HasPrefix(rev, upgradeFrom[:7]) {
			t.Fatalf("%s runs revision %q before the upgrade, want %s", name, rev, upgradeFrom)
		}
	}

	// Every role held before the first step (the leader-only roles are
	// taken a lease after the lab's start, which is no handover).
	s.waitRolesHeld(t, ctx, 2*time.Minute)
	upgradeStart := time.Now()
	mon, err := s.MonitorVIP(10 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	gaps := s.watchRoleGaps(ctx)
	cli := etcdFromClient(t, s.Lab, s.Masters()[0], s.Masters()...)
	w := startWriter(cli)
	time.Sleep(time.Second)

	// The VIP holder last: upgrading it is the one handover of the VIP
	// (others first keep it where it is).
	order := append([]*lab.Master(nil), s.Masters()...) // the lab's own slice stays as it is
	holder := s.vipHolder(t)
	sort.SliceStable(order, func(i, j int) bool { return order[i] != holder && order[j] == holder })
	for i, m := range order {
		t0 := time.Now()
		if err := m.InstallDeb(ctx, newDeb); err != nil {
			t.Fatal(err)
		}
		installed := time.Since(t0)
		back := s.waitReady(t, ctx, 5*time.Minute)
		// The procedure (README, upgrades): the next master only once this
		// one's election has settled (out of its restart quiet period, a
		// longest lease: it may vote again) and every role is held.
		// Without the wait, the next handover finds a quorum of voters
		// still quiet and a leader-only role waits out a lease.
		settled := s.waitSettled(t, ctx, 2*time.Minute)
		s.waitRolesHeld(t, ctx, 2*time.Minute)
		rev := s.revisions(t, ctx)
		if rev[m.Name] == oldRev[m.Name] {
			t.Fatalf("%s still runs revision %s after dpkg -i of the new package", m.Name, rev[m.Name])
		}
		figure(t, "step %d: %s upgraded (dpkg -i with the restart %.1fs), cluster ready %.1fs later, every election settled %.1fs after that; revisions %v", i+1, m.Name, installed.Seconds(), back.Seconds(), settled.Seconds(), rev)
		if i == 0 {
			// The new binary plans the rest from the mixed cluster: the
			// old masters publish nothing (noted), nothing blocks, and
			// the VIP holder comes last.
			out, err := m.Exec(ctx, "masterd", "upgrade", "plan")
			t.Logf("masterd upgrade plan on %s (mixed cluster):\n%s", m.Name, out)
			if err != nil {
				t.Errorf("masterd upgrade plan on %s: %v", m.Name, err)
			}
			for _, want := range []string{m.Name + "  ", rev[m.Name][:7], "note: " + holder.Name + ": publishes no versions", "blocked by: nothing"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("plan on the mixed cluster lacks %q", want)
				}
			}
			if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); !slicesContainsPrefix(lines, "  3. "+holder.Name) {
				t.Errorf("plan does not put the VIP holder %s last", holder.Name)
			}
		}
	}
	// Every role held again before the samplers stop, so the last
	// handover's gap is measured to its end.
	s.waitRolesHeld(t, ctx, 2*time.Minute)
	time.Sleep(time.Second)
	acked, maxWriteGap := w.Stop()
	rep := mon.Stop()
	roleGaps, dualRounds, changes := gaps.Stop()
	t.Logf("role holders (from every master's status, ~100 ms rounds):\n%s", strings.Join(changes, "\n"))

	if rep.Err != nil {
		t.Errorf("VIP monitor: %v", rep.Err)
	}
	if rep.Dual > 0 {
		t.Errorf("%d samples with two VIP holders: %s", rep.Dual, rep)
	}
	if len(dualRounds) > 0 {
		t.Errorf("rounds with two holders of a role: %v", dualRounds)
	}
	figure(t, "VIP monitor: %s; longest time with no holder on the wire %.3fs", rep, longestNone(rep).Seconds())
	for _, role := range electionRoles {
		g := roleGaps[role]
		figure(t, "role %s: status rounds with no holder: %d stretches, longest %.3fs (resolution: one round of every master's status)", role, g.count, g.longest.Seconds())
	}
	// The handovers from the journals: each "role lost" of a term is
	// followed by the next term's "role acquired" on another master.
	journals := map[string]string{}
	for _, m := range s.Masters() {
		journals[m.Name] = m.JournalSince(ctx, upgradeStart)
	}
	hand, problems := handovers(journals)
	for _, p := range problems {
		t.Error(p)
	}
	for _, role := range electionRoles {
		h := hand[role]
		figure(t, "role %s: %d handovers, longest from role lost to the next holder's role acquired %.3fs (%s)", role, len(h), longestGap(h).Seconds(), strings.Join(h.String(), "; "))
		// One handover per upgraded holder at most.
		if len(h) > len(order) {
			t.Errorf("role %s changed holder %d times in %d upgrades", role, len(h), len(order))
		}
	}
	var missing []string
	for _, k := range acked {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := cli.Get(rctx, k)
		rcancel()
		if err != nil || len(resp.Kvs) == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d acknowledged writes not readable: %v", len(missing), missing[:min(len(missing), 10)])
	}
	if len(acked) == 0 {
		t.Error("no write acknowledged during the upgrade")
	}
	figure(t, "%d etcd writes acknowledged (all readable), longest time between two acknowledgements %.3fs", len(acked), maxWriteGap.Seconds())

	// Upgraded: every master publishes, nothing blocks; a stopped masterd
	// blocks the next upgrade (exit 1, named), and no longer once back.
	first, last := order[0], order[len(order)-1]
	out, err := first.Exec(ctx, "masterd", "upgrade", "plan")
	t.Logf("masterd upgrade plan after the upgrade:\n%s", out)
	if err != nil || strings.Contains(string(out), "note:") || !strings.Contains(string(out), "blocked by: nothing") {
		t.Errorf("plan after the upgrade: %v", err)
	}
	if err := last.StopMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	out, err = first.Exec(ctx, "masterd", "upgrade", "plan")
	t.Logf("masterd upgrade plan with %s stopped:\n%s", last.Name, out)
	if err == nil || !strings.Contains(string(out), last.Name+": masterd is stopped") {
		t.Errorf("plan with %s stopped did not block on it (err %v)", last.Name, err)
	}
	if err := last.StartMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, ctx, 5*time.Minute)
	figure(t, "total wall time %.1fs (old package build or cache included)", time.Since(start).Seconds())
}

// handover is one change of a role's holder seen in the journals.
type handover struct {
	from, to string
	lost     time.Time // the old holder's "role lost"
	acquired time.Time // the new holder's "role acquired"
}

type handoverList []handover

func (l handoverList) String() []string {
	var out []string
	for _, h := range l {
		out = append(out, fmt.Sprintf("%s→%s %.3fs", h.from, h.to, h.acquired.Sub(h.lost).Seconds()))
	}
	return out
}

func longestGap(l handoverList) time.Duration {
	var d time.Duration
	for _, h := range l {
		d = max(d, h.acquired.Sub(h.lost))
	}
	return d
}

var roleEventRE = regexp.MustCompile(`time=(\S+) level=\S+ msg="role (acquired|lost)" component=election role=(\S+) term=(\d+)`)

// handovers pairs every "role lost" with the next "role acquired" of the
// role, across the masters' journals (one machine clock), and reports a
// loss no acquisition follows and an acquisition while another master
// still held the role.
func handovers(journals map[string]string) (map[string]handoverList, []string) {
	type event struct {
		at     time.Time
		master string
		lost   bool
	}
	byRole := map[string][]event{}
	for name, j := range journals {
		for _, m := range roleEventRE.FindAllStringSubmatch(j, -1) {
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				continue
			}
			byRole[m[3]] = append(byRole[m[3]], event{at: at, master: name, lost: m[2] == "lost"})
		}
	}
	out := map[string]handoverList{}
	var problems []string
	for role, evs := range byRole {
		sort.Slice(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
		holder := ""
		var lost *event
		for i := range evs {
			e := evs[i]
			switch {
			case e.lost:
				if e.master == holder {
					holder = ""
				}
				lost = &evs[i]
			case holder != "" && holder != e.master:
				problems = append(problems, fmt.Sprintf("role %s acquired by %s at %s while %s held it", role, e.master, e.at.Format("15:04:05.000"), holder))
			default:
				if lost != nil {
					out[role] = append(out[role], handover{from: lost.master, to: e.master, lost: lost.at, acquired: e.at})
					lost = nil
				}
				holder = e.master
			}
		}
		if lost != nil {
			problems = append(problems, fmt.Sprintf("role %s lost by %s at %s and not acquired again", role, lost.master, lost.at.Format("15:04:05.000")))
		}
	}
	return out, problems
}

func slicesContainsPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// electionRoles are the roles every master's election runs, with or
// without the kube units (kube-less, the leader-only roles are held with
// nothing to run).
var electionRoles = append([]string{"vip"}, kubeRoles...)

// longestNone is the longest stretch the monitor saw the VIP on no master.
func longestNone(r lab.MonitorReport) time.Duration {
	var longest time.Duration
	for i, tr := range r.Transitions {
		if tr.Holder == "" && i+1 < len(r.Transitions) {
			longest = max(longest, r.Transitions[i+1].At.Sub(tr.At))
		}
	}
	return longest
}

// waitSettled waits until every master's election says settled (adopted
// its membership a longest lease ago and learned its terms) and returns
// how long it took.
func (s *scenarioLab) waitSettled(t *testing.T, ctx context.Context, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		sts, err := s.Statuses(ctx)
		var not []string
		for _, m := range s.Masters() {
			var el struct {
				Settled bool `json:"settled"`
			}
			if raw, ok := sts[m.Name].Sections["election"]; !ok || json.Unmarshal(raw, &el) != nil || !el.Settled {
				not = append(not, m.Name)
			}
		}
		if err == nil && len(not) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("elections not settled within %v: %v (%v)", d, not, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitRolesHeld waits until every election role has exactly one holder.
func (s *scenarioLab) waitRolesHeld(t *testing.T, ctx context.Context, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var missing []string
		for _, role := range electionRoles {
			if hs := s.Holders(ctx, role); len(hs) != 1 {
				missing = append(missing, fmt.Sprintf("%s held by %v", role, hs))
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("roles not held by one master each within %v: %v", d, missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// revisions returns each master's running masterd revision (from status).
func (s *scenarioLab) revisions(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	sts, err := s.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for name, st := range sts {
		var b struct {
			Build struct{ Revision string } `json:"build"`
		}
		if err := json.Unmarshal(st.Raw, &b); err != nil {
			t.Fatalf("%s: status: %v", name, err)
		}
		out[name] = b.Build.Revision
	}
	return out
}

// roleGaps follows, per role, the rounds in which no master claimed it.
type roleGaps struct {
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	gaps  map[string]*gapStat
	since map[string]time.Time // start of the current gap
	dual  []string
	last  map[string]string // role → holders at the last change
	log   []string          // every change of a role's holders
}

type gapStat struct {
	longest time.Duration
	count   int
}

func (s *scenarioLab) watchRoleGaps(ctx context.Context) *roleGaps {
	g := &roleGaps{stop: make(chan struct{}), done: make(chan struct{}), gaps: map[string]*gapStat{}, since: map[string]time.Time{}, last: map[string]string{}}
	for _, role := range electionRoles {
		g.gaps[role] = &gapStat{}
	}
	go func() {
		defer close(g.done)
		for {
			// A master that is restarting answers no status: its roles
			// count as not held by it, which is what a client sees.
			sts, _ := s.Statuses(ctx)
			now := time.Now()
			g.mu.Lock()
			for _, role := range electionRoles {
				var hs []string
				for name, st := range sts {
					if st.Roles[role].Leader {
						hs = append(hs, name)
					}
				}
				sort.Strings(hs)
				if h := strings.Join(hs, "+"); h != g.last[role] {
					g.last[role] = h
					g.log = append(g.log, fmt.Sprintf("%s %s: %q", now.Format("15:04:05.000"), role, h))
				}
				if len(hs) > 1 {
					g.dual = append(g.dual, fmt.Sprintf("%s held by %v at %s", role, hs, now.Format("15:04:05.000")))
				}
				st := g.gaps[role]
				switch t0, open := g.since[role]; {
				case len(hs) == 0 && !open:
					g.since[role] = now
				case len(hs) > 0 && open:
					st.count++
					st.longest = max(st.longest, now.Sub(t0))
					delete(g.since, role)
				}
			}
			g.mu.Unlock()
			select {
			case <-g.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return g
}

// Stop ends the sampling; a gap still open counts up to now. It returns
// the gaps per role, the rounds with two holders and every change of
// holders.
func (g *roleGaps) Stop() (map[string]gapStat, []string, []string) {
	close(g.stop)
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]gapStat{}
	for role, st := range g.gaps {
		if t0, open := g.since[role]; open {
			st.count++
			st.longest = max(st.longest, time.Since(t0))
		}
		out[role] = *st
	}
	return out, g.dual, g.log
}

// The version skew policy on real hosts with the kube binaries, a newer
// release simulated by wrapper scripts whose --version says so (masterd
// reads it as it reads any binary; they run the real v1.37.2 otherwise):
//
//   - on the scheduler's holder H, kube-scheduler and
//     kube-controller-manager report v1.38.0 and masterd restarts: both
//     roles are handed over, H refuses both components (a log line naming
//     the versions and the master of the oldest apiserver,
//     masterd_kube_skew_refused, the units' "refused" in its status), and
//     when the new holder stops, the roles go to the third master, not H;
//     `masterd upgrade plan` is blocked by the violation;
//   - on another master, kube-apiserver reports v1.39.0 (two minors from
//     the others): masterd there does not start it, says why and is not
//     ready; with the real binary back it starts it and is ready.
func TestSkewPolicyRefusesNewerBinariesOnRealHosts(t *testing.T) {
	o := options(t)
	if o.KubeBinDir == "" {
		t.Skip("needs the kube binaries: run `make kube` (or set KUBE_BIN_DIR)")
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	o.Prefix = fmt.Sprintf("skew%d", os.Getpid()%1000000)
	s := upLab(t, ctx, o, 10*time.Minute)
	s.waitRolesHeld(t, ctx, 2*time.Minute)

	h := s.Master(s.waitOneHolder(t, ctx, "scheduler"))
	for _, bin := range []string{"kube-scheduler", "kube-controller-manager"} {
		if err := h.FakeKubeVersion(ctx, bin, "v1.38.0"); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	if _, err := h.Exec(ctx, "systemctl", "restart", "masterd"); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, ctx, 5*time.Minute)
	s.waitRolesHeld(t, ctx, 2*time.Minute)
	journal := h.JournalSince(ctx, t0)
	for _, comp := range []string{"kube-scheduler", "kube-controller-manager"} {
		if !strings.Contains(journal, "version skew policy refuses to run "+comp+" here") ||
			!strings.Contains(journal, comp+" v1.38.0 on "+h.Name+": newer than the oldest kube-apiserver, v1.37.2 on ") {
			t.Errorf("%s's journal does not refuse %s naming the versions:\n%s", h.Name, comp, lastLines(journal, 40))
		}
		if v := skewMetric(t, ctx, h, comp); v != 1 {
			t.Errorf("%s: masterd_kube_skew_refused{component=%q} = %v, want 1", h.Name, comp, v)
		}
	}
	st, err := h.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(compactJSON(st.Raw), `"refused":"kube-scheduler v1.38.0 on `+h.Name) {
		t.Errorf("%s's status does not show the refusal:\n%s", h.Name, st.Raw)
	}
	holders := map[string]string{}
	for _, role := range kubeRoles {
		hs := s.Holders(ctx, role)
		if len(hs) != 1 || hs[0] == h.Name {
			t.Fatalf("role %s held by %v after %s restarted with a refused component", role, hs, h.Name)
		}
		holders[role] = hs[0]
	}
	// The holder stops: the roles go to the third master, never to H.
	g := s.Master(holders["scheduler"])
	if err := g.StopMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	for _, role := range kubeRoles {
		hs := s.waitRoleOff(t, ctx, role, g, 2*time.Minute)
		if hs[0] == h.Name {
			t.Errorf("role %s went to %s, whose %s the policy refuses", role, h.Name, role)
		}
	}
	out, err := h.Exec(ctx, "masterd", "upgrade", "plan")
	t.Logf("masterd upgrade plan on %s with %s stopped:\n%s", h.Name, g.Name, out)
	if err == nil || !strings.Contains(string(out), "version skew: kube-scheduler v1.38.0 on "+h.Name) {
		t.Errorf("plan is not blocked by %s's scheduler (err %v)", h.Name, err)
	}
	if err := g.StartMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, ctx, 5*time.Minute)

	// An apiserver two minors newer than the others is not started.
	var a *lab.Master
	for _, m := range s.Masters() {
		if m != h {
			a = m
			break
		}
	}
	if err := a.FakeKubeVersion(ctx, "kube-apiserver", "v1.39.0"); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if _, err := a.Exec(ctx, "systemctl", "restart", "--no-block", "masterd"); err != nil {
		t.Fatal(err)
	}
	var why string
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if v, err := a.Status(ctx); err == nil && strings.Contains(compactJSON(v.Raw), `"refused":"kube-apiserver v1.39.0 on `+a.Name) {
			why = string(v.Raw)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if why == "" {
		t.Fatalf("%s's status never showed the apiserver refused:\n%s", a.Name, lastLines(a.JournalSince(ctx, t1), 40))
	}
	// Not ready (/readyz names the refusal; /status's ready only says
	// every component started).
	if out, err := a.Exec(ctx, "curl", "-sS", "--max-time", "5", "http://127.0.0.1:9990/readyz"); err != nil || !strings.Contains(string(out), "kube-apiserver v1.39.0 on "+a.Name) || !strings.Contains(string(out), "readyz check failed") {
		t.Errorf("%s's /readyz with its apiserver refused: %v\n%s", a.Name, err, out)
	}
	// Not running either: the status may show the decision before the kube
	// component has stopped an apiserver the previous run left behind (its
	// stop grace is 20 s).
	var state string
	for stop := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		out, _ := a.Exec(ctx, "systemctl", "is-active", "kube-apiserver")
		if state = strings.TrimSpace(string(out)); state == "inactive" || state == "failed" || time.Now().After(stop) {
			break
		}
	}
	if state != "inactive" && state != "failed" {
		t.Errorf("%s runs kube-apiserver (%s a minute after its refusal showed) although the policy refuses it", a.Name, state)
	}
	if j := a.JournalSince(ctx, t1); !strings.Contains(j, "version skew policy refuses to run kube-apiserver here") ||
		!strings.Contains(j, "more than one minor away from kube-apiserver v1.37.2 on ") {
		t.Errorf("%s's journal does not say why:\n%s", a.Name, lastLines(j, 40))
	}
	if v := skewMetric(t, ctx, a, "kube-apiserver"); v != 1 {
		t.Errorf("%s: masterd_kube_skew_refused{component=\"kube-apiserver\"} = %v, want 1", a.Name, v)
	}
	// The real binary back: it starts and the cluster is whole.
	if err := a.RestoreKubeBinary(ctx, "kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "systemctl", "restart", "masterd"); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, ctx, 5*time.Minute)
	figure(t, "total wall time %.1fs", time.Since(start).Seconds())
}

// compactJSON is b without insignificant space (masterd status --json
// indents).
func compactJSON(b []byte) string {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return string(b)
	}
	return out.String()
}

// skewMetric reads masterd_kube_skew_refused{component} from m's /metrics.
func skewMetric(t *testing.T, ctx context.Context, m *lab.Master, comp string) float64 {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := m.Exec(cctx, "curl", "-sSf", "--max-time", "5", "http://127.0.0.1:9990/metrics")
	if err != nil {
		t.Fatalf("%s: GET /metrics: %v", m.Name, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(l, `masterd_kube_skew_refused{component="`+comp+`"} `); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return -1
}
