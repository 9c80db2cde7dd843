package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	cache := os.Getenv("MASTERD_CACHE")
	if cache == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(h, ".cache", "masterd")
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
		rev := s.revisions(t, ctx)
		if rev[m.Name] == oldRev[m.Name] {
			t.Fatalf("%s still runs revision %s after dpkg -i of the new package", m.Name, rev[m.Name])
		}
		figure(t, "step %d: %s upgraded (dpkg -i with the restart %.1fs), cluster ready %.1fs later; revisions %v", i+1, m.Name, installed.Seconds(), back.Seconds(), rev)
		if i == 0 {
			// The new binary plans the rest from the mixed cluster.
			out, err := m.Exec(ctx, "masterd", "upgrade", "plan")
			t.Logf("masterd upgrade plan on %s (mixed cluster):\n%s", m.Name, out)
			if err != nil {
				t.Errorf("masterd upgrade plan on %s: %v", m.Name, err)
			}
		}
	}
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
		figure(t, "role %s: longest time held by nobody %.3fs, %d gaps", role, g.longest.Seconds(), g.count)
		// Three handovers at most move a role (one per upgraded holder);
		// a graceful one takes well under a lease, so a gap of a whole
		// failover means a role was lost rather than handed over.
		if g.count > len(order) {
			t.Errorf("role %s went unheld %d times in %d upgrades", role, g.count, len(order))
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
	figure(t, "total wall time %.1fs (old package build or cache included)", time.Since(start).Seconds())
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
