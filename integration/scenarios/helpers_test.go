package scenarios

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/lab"
)

// Roles whose holders the scenarios check (the kube ones only with kube).
var kubeRoles = []string{"scheduler", "controller-manager"}

// scenarioLab wraps the shared lab with test helpers.
type scenarioLab struct {
	*lab.Lab
	t *testing.T
}

func (s *scenarioLab) roles() []string {
	if s.KubeEnabled() {
		return append([]string{"vip"}, kubeRoles...)
	}
	return []string{"vip"}
}

// figure logs a measured figure in a form `grep figure:` collects.
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("figure: %s: %s", t.Name(), fmt.Sprintf(format, args...))
	if p := os.Getenv("SCENARIO_FIGURES"); p != "" {
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "%s\t%s\n", t.Name(), fmt.Sprintf(format, args...))
			f.Close()
		}
	}
}

// options returns the lab options for the scenarios, or skips.
func options(t *testing.T) lab.Options {
	t.Helper()
	if testing.Short() {
		t.Skip("scenarios boot a three-master lab (minutes); skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("scenarios boot systemd in network namespaces and need root")
	}
	o := lab.DefaultOptions()
	o.Prefix = fmt.Sprintf("scen%d", os.Getpid()%1000000)
	if d := os.Getenv("MASTERD_DEB"); d != "" {
		o.Deb = d
	}
	if o.Deb == "" {
		t.Skip("no dist/masterd_*.deb: run `make package` (or set MASTERD_DEB=path)")
	}
	o.KubeBinDir = lab.FindKubeBinDir()
	if os.Getenv("MASTERD_LAB_KUBE") == "none" {
		o.KubeBinDir = ""
		t.Log("MASTERD_LAB_KUBE=none: Kubernetes scenarios skip, the rest run with kubernetes.mode: none")
	} else if o.KubeBinDir == "" {
		t.Log("no kube binaries (run `make kube`, or set KUBE_BIN_DIR): Kubernetes scenarios skip, the rest run with kubernetes.mode: none")
	}
	o.Progress = logWriter{t}
	// A debugging aid: a drop-in for masterd.service (not for CI).
	if d := os.Getenv("MASTERD_LAB_DROPIN"); d != "" {
		o.UnitDropIn = d
		t.Logf("masterd.service drop-in from MASTERD_LAB_DROPIN:\n%s", d)
	}
	return o
}

// upLab boots a lab with o, takes it down with the test, dumps the hosts'
// state if the test fails and waits up to ready for the cluster to be ready.
func upLab(t *testing.T, ctx context.Context, o lab.Options, ready time.Duration) *scenarioLab {
	t.Helper()
	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	s := &scenarioLab{Lab: l, t: t}
	s.dumpOnFailure(t)
	s.waitReady(t, ctx, ready)
	return s
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (s *scenarioLab) needKube(t *testing.T) {
	t.Helper()
	if !s.KubeEnabled() {
		t.Skip("needs the kube binaries: run `make kube` (or set KUBE_BIN_DIR)")
	}
}

// dumpOnFailure logs every master's recent journal when t failed.
func (s *scenarioLab) dumpOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, m := range s.Masters() {
			t.Logf("--- %s: journalctl -u masterd\n%s", m.Name, m.Journal(ctx, 60))
		}
	})
}

// whole brings the lab back to every master running and ready: links up,
// partitions healed, dead hosts rebooted, masterd started.
func (s *scenarioLab) whole(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, m := range s.Masters() {
		if err := s.RestoreLink(ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := s.Heal(ctx, m); err != nil {
			t.Fatal(err)
		}
		select {
		case <-m.Host().Exited():
			if err := s.Reboot(ctx, m); err != nil {
				t.Fatal(err)
			}
		default:
		}
		if out, _ := m.Exec(ctx, "systemctl", "is-active", "masterd"); strings.TrimSpace(string(out)) != "active" {
			_, _ = m.Exec(ctx, "systemctl", "reset-failed", "masterd")
			if err := m.StartMasterd(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.waitReady(t, ctx, 5*time.Minute)
}

func (s *scenarioLab) waitReady(t *testing.T, ctx context.Context, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// vipHolder returns the one master holding the VIP.
func (s *scenarioLab) vipHolder(t *testing.T) *lab.Master {
	t.Helper()
	hs, err := s.VIPHolders()
	if err != nil || len(hs) != 1 {
		t.Fatalf("VIP holders = %v (%v), want exactly one", hs, err)
	}
	return s.Master(hs[0])
}

// vipHolderAndAnother returns the VIP holder and the first other master.
func (s *scenarioLab) vipHolderAndAnother(t *testing.T) (holder, other *lab.Master) {
	t.Helper()
	holder = s.vipHolder(t)
	for _, m := range s.Masters() {
		if m != holder {
			return holder, m
		}
	}
	t.Fatal("no master besides the VIP holder")
	return nil, nil
}

// waitVIPOn waits until the VIP is on exactly one master other than not
// (ignoring not itself, whose namespace may keep it after a crash) and
// returns that master and the time it took from since.
func (s *scenarioLab) waitVIPOff(t *testing.T, not *lab.Master, since time.Time, ignoreNot bool, d time.Duration) (string, time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		hs, err := s.VIPHolders()
		if err != nil {
			t.Fatal(err)
		}
		var others []string
		sawNot := false
		for _, h := range hs {
			if h == not.Name {
				sawNot = true
			} else {
				others = append(others, h)
			}
		}
		if len(others) == 1 && (ignoreNot || !sawNot) {
			return others[0], time.Since(since)
		}
		time.Sleep(5 * time.Millisecond)
	}
	hs, _ := s.VIPHolders()
	t.Fatalf("VIP did not move off %s within %v: holders %v", not.Name, d, hs)
	return "", 0
}

// waitKubectl retries kubectl until it succeeds and returns the time from
// since.
func (s *scenarioLab) waitKubectl(t *testing.T, ctx context.Context, since time.Time, d time.Duration, args ...string) time.Duration {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = s.Kubectl(cctx, args...)
		cancel()
		if err == nil {
			return time.Since(since)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("kubectl %v through the VIP still failing after %v: %v", args, d, err)
	return 0
}

func (s *scenarioLab) kubectl(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := s.Kubectl(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// writeManifest writes a manifest into the lab's directory for kubectl -f.
func (s *scenarioLab) writeManifest(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(s.Dir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitRoleOff waits until role has exactly one holder and it is not not.
func (s *scenarioLab) waitRoleOff(t *testing.T, ctx context.Context, role string, not *lab.Master, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	var hs []string
	for time.Now().Before(deadline) {
		hs = s.Holders(ctx, role)
		if len(hs) == 1 && hs[0] != not.Name {
			return hs
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("role %s did not move off %s within %v: holders %v", role, not.Name, d, hs)
	return nil
}

// roleSampler reads every master's status in a loop and records, per role,
// the largest number of masters that claimed it in one round.
type roleSampler struct {
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	rounds  int
	maxHold map[string]int
	dual    []string
}

func (s *scenarioLab) sampleRoles(ctx context.Context) *roleSampler {
	rs := &roleSampler{stop: make(chan struct{}), done: make(chan struct{}), maxHold: map[string]int{}}
	go func() {
		defer close(rs.done)
		for {
			sts, _ := s.Statuses(ctx)
			rs.mu.Lock()
			rs.rounds++
			for _, role := range s.roles() {
				var hs []string
				for name, st := range sts {
					if st.Roles[role].Leader {
						hs = append(hs, name)
					}
				}
				if len(hs) > rs.maxHold[role] {
					rs.maxHold[role] = len(hs)
				}
				if len(hs) > 1 {
					rs.dual = append(rs.dual, fmt.Sprintf("%s held by %v", role, hs))
				}
			}
			rs.mu.Unlock()
			select {
			case <-rs.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return rs
}

func (rs *roleSampler) Stop() (rounds int, dual []string) {
	close(rs.stop)
	<-rs.done
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.rounds, rs.dual
}

// kubectlLoop runs kubectl args through the VIP back to back until stopped,
// counting successes and keeping the failures.
type kubectlLoop struct {
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	ok       int
	failures []string
}

func (s *scenarioLab) loopKubectl(ctx context.Context, args ...string) *kubectlLoop {
	k := &kubectlLoop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		for {
			select {
			case <-k.stop:
				return
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			start := time.Now()
			_, err := s.Kubectl(cctx, args...)
			cancel()
			k.mu.Lock()
			if err != nil {
				k.failures = append(k.failures, fmt.Sprintf("%s (+%.3fs): %v", start.Format("15:04:05.000"), time.Since(start).Seconds(), err))
			} else {
				k.ok++
			}
			k.mu.Unlock()
		}
	}()
	return k
}

func (k *kubectlLoop) Stop() (ok int, failures []string) {
	close(k.stop)
	<-k.done
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ok, k.failures
}

func runCmd(ctx context.Context, argv ...string) ([]byte, error) {
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}
