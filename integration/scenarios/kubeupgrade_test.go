package scenarios

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/lab"
)

// mixedBinDir makes a directory of symlinks: the previous minor's control
// plane, the current kubectl, kubelet and the rest. It lives beside the
// caches (a lab host has its own /tmp).
func mixedBinDir(t *testing.T, prev, cur string) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(filepath.Dir(prev)), "upgrade-from-"+filepath.Base(filepath.Dir(prev)), fmt.Sprint(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	entries, err := os.ReadDir(cur)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src := filepath.Join(cur, e.Name())
		for _, b := range lab.ControlPlaneBinaries {
			if e.Name() == b {
				src = filepath.Join(prev, b)
			}
		}
		if err := os.Symlink(src, filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Rolling Kubernetes upgrade from the previous minor (v1.36.3) to v1.37.2,
// both built from the module proxy, on three real systemd hosts, as the
// README's procedure says: on one master at a time the three control-plane
// binaries are replaced and masterd restarted, the VIP holder last, each
// step once the cluster is ready and settled again. A client writes and
// reads a ConfigMap through the VIP every 100 ms. The version skew policy
// must refuse kube-scheduler and kube-controller-manager v1.37.2 on an
// upgraded master while any apiserver is v1.36 (status names the refusal,
// the roles stay with a master still on v1.36), and allow them once every
// apiserver runs v1.37.2. Checks: every role held after each step; the
// client's failed requests only within a step's restart; no round with two
// holders of a role; every master on v1.37.2 at the end with nothing
// refused, `masterd upgrade plan` unblocked, and a Deployment's Pods made
// and bound by the upgraded controller-manager and scheduler.
func TestRollingKubeUpgradeFromThePreviousMinor(t *testing.T) {
	o := options(t)
	if o.KubeBinDir == "" {
		t.Skip("needs the kube binaries: run `make kube` (or set KUBE_BIN_DIR)")
	}
	prev, cur := lab.FindPrevKubeBinDir(), o.KubeBinDir
	if prev == "" {
		t.Skip("the previous Kubernetes minor is not built: run `make kube-prev` (or set KUBE_PREV_BIN_DIR)")
	}
	o.KubeBinDir = mixedBinDir(t, prev, cur)
	o.Prefix = fmt.Sprintf("kup%d", os.Getpid()%100000)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	start := time.Now()
	s := upLab(t, ctx, o, 8*time.Minute)
	s.waitRolesHeld(t, ctx, 2*time.Minute)
	figure(t, "lab on v1.36.3 ready in %.1fs", time.Since(start).Seconds())
	kubeVersions := func(m *lab.Master) string {
		st, err := m.Status(ctx)
		if err != nil {
			t.Fatalf("%s: status: %v", m.Name, err)
		}
		return compactJSON(st.Raw)
	}
	for _, m := range s.Masters() {
		if v := kubeVersions(m); !strings.Contains(v, `"kube-apiserver":"v1.36.3"`) {
			t.Fatalf("%s does not run kube-apiserver v1.36.3 before the upgrade:\n%s", m.Name, v)
		}
	}

	c := startVIPClient(t, s)
	gaps := s.watchRoleGaps(ctx)
	order := append([]*lab.Master(nil), s.Masters()...)
	holder := s.vipHolder(t)
	sort.SliceStable(order, func(i, j int) bool { return order[i] != holder && order[j] == holder })
	type window struct{ from, to time.Time }
	var windows []window
	for i, m := range order {
		for _, b := range lab.ControlPlaneBinaries {
			if err := m.UseKubeBinary(ctx, b, filepath.Join(cur, b)); err != nil {
				t.Fatal(err)
			}
		}
		t0 := time.Now()
		if out, err := m.Exec(ctx, "systemctl", "restart", "masterd"); err != nil {
			t.Fatalf("%s: restart masterd: %v: %s", m.Name, err, out)
		}
		restarted := time.Since(t0)
		back := s.waitReady(t, ctx, 5*time.Minute)
		settled := s.waitSettled(t, ctx, 2*time.Minute)
		s.waitRolesHeld(t, ctx, 2*time.Minute)
		windows = append(windows, window{t0, time.Now().Add(2 * time.Second)})
		upgraded, rest := order[:i+1], order[i+1:]
		for _, u := range upgraded {
			v := kubeVersions(u)
			if len(rest) == 0 {
				if strings.Contains(v, `"refused"`) {
					t.Errorf("step %d: %s still refuses something with every apiserver on v1.37.2:\n%s", i+1, u.Name, v)
				}
				continue
			}
			for _, comp := range []string{"kube-scheduler", "kube-controller-manager"} {
				if !strings.Contains(v, `"refused":"`+comp+` v1.37.2 on `+u.Name) {
					t.Errorf("step %d: %s v1.37.2 on %s is not refused while %s runs kube-apiserver v1.36.3:\n%s", i+1, comp, u.Name, rest[0].Name, v)
				}
			}
		}
		if len(rest) > 0 {
			for _, role := range kubeRoles {
				hs := s.Holders(ctx, role)
				if len(hs) != 1 || !inMasters(hs[0], rest) {
					t.Errorf("step %d: role %s held by %v, want a master still on v1.36 (%v)", i+1, role, hs, names(rest))
				}
			}
		}
		figure(t, "step %d: %s on v1.37.2 (restart %.1fs), cluster ready %.1fs later, settled %.1fs after that", i+1, m.Name, restarted.Seconds(), back.Seconds(), settled.Seconds())
	}
	time.Sleep(2 * time.Second)
	ok, failures := c.Stop()
	roleGaps, dual, changes := gaps.Stop()
	t.Logf("role holders:\n%s", strings.Join(changes, "\n"))
	if len(dual) > 0 {
		t.Errorf("rounds with two holders of a role: %v", dual)
	}
	for _, role := range electionRoles {
		g := roleGaps[role]
		figure(t, "role %s: stretches with no holder: %d, longest %.3fs", role, g.count, g.longest.Seconds())
	}
	var outside []string
	for _, f := range failures {
		at, err := time.ParseInLocation("15:04:05.000", f[:12], time.Local)
		in := false
		for _, w := range windows {
			day := time.Date(w.from.Year(), w.from.Month(), w.from.Day(), at.Hour(), at.Minute(), at.Second(), at.Nanosecond(), time.Local)
			if err == nil && !day.Before(w.from) && !day.After(w.to) {
				in = true
			}
		}
		if !in {
			outside = append(outside, f)
		}
	}
	figure(t, "client through the VIP every 100 ms: %d requests ok, %d failed (all within a step's restart: %v)", ok, len(failures), len(outside) == 0)
	if len(failures) > 0 {
		t.Logf("failed requests:\n%s", strings.Join(failures, "\n"))
	}
	if len(outside) > 0 {
		t.Errorf("%d failed requests outside the upgrade steps: %v", len(outside), outside)
	}
	if ok < 100 {
		t.Errorf("only %d requests succeeded", ok)
	}
	for _, m := range s.Masters() {
		v := kubeVersions(m)
		for _, b := range lab.ControlPlaneBinaries {
			if !strings.Contains(v, `"`+b+`":"v1.37.2"`) {
				t.Errorf("%s: %s not v1.37.2 after the upgrade:\n%s", m.Name, b, v)
			}
		}
	}
	out, err := order[0].Exec(ctx, "masterd", "upgrade", "plan")
	t.Logf("masterd upgrade plan after the upgrade:\n%s", out)
	if err != nil || !strings.Contains(string(out), "blocked by: nothing") {
		t.Errorf("plan after the upgrade: %v", err)
	}
	// The upgraded controller-manager and scheduler work: a Deployment
	// gets its ReplicaSet and Pods, bound to a Node.
	controllerManagerAndScheduler(t, ctx, s)
	figure(t, "total wall time %.1fs", time.Since(start).Seconds())
}

func inMasters(name string, ms []*lab.Master) bool {
	for _, m := range ms {
		if m.Name == name {
			return true
		}
	}
	return false
}

func names(ms []*lab.Master) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}
