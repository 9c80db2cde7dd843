package units

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/labhost"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var quiet = testLogger()

func testLogger() *slog.Logger {
	if os.Getenv("UNITS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func bootLab(t *testing.T, ctx context.Context, suffix string) *labhost.Host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("units lab tests boot systemd in namespaces and need root")
	}
	h, err := labhost.Boot(ctx, labhost.Options{Name: fmt.Sprintf("unitst-%d-%s", os.Getpid(), suffix)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	if _, err := h.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	return h
}

func labRoot(h *labhost.Host) string { return fmt.Sprintf("/proc/%d/root", h.PID1()) }

func newSup(t *testing.T, h *labhost.Host, mut func(*Config)) (*Supervisor, *prometheus.Registry) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Socket = labhost.PrivateSocketInLab
	cfg.StartTimeout = 20 * time.Second
	cfg.ResyncInterval = 500 * time.Millisecond
	if mut != nil {
		mut(&cfg)
	}
	reg := prometheus.NewRegistry()
	s, err := New(cfg, reg, quiet, WithRoot(labRoot(h)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, reg
}

func shUnit(name, script string) Unit {
	return Unit{Name: name, Definition: &Definition{
		Description:  "units test " + name,
		ExecStart:    []string{"/bin/sh", "-c", script},
		RestartDelay: 100 * time.Millisecond,
	}}
}

func mainPID(t *testing.T, ctx context.Context, h *labhost.Host, unit string) string {
	t.Helper()
	out, err := h.Systemctl(ctx, "show", "-P", "MainPID", unit)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestManagedUnitStartsStopsRestartsWithTerm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "ssr")
	s, reg := newSup(t, h, nil)
	u := shUnit("unitst-svc.service", `echo "term=$MASTERD_TERM" > /run/unitst-term; exec sleep infinity`)
	if err := s.Register(u); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, u.Name, 7); err != nil {
		t.Fatal(err)
	}
	if out, _ := h.Systemctl(ctx, "is-active", u.Name); strings.TrimSpace(string(out)) != "active" {
		t.Fatalf("after Start the unit is %q", out)
	}
	if b, _ := os.ReadFile(h.Path("/run/unitst-term")); string(b) != "term=7\n" {
		t.Errorf("unit saw %q, want term=7", b)
	}
	if got := testutil.ToFloat64(s.m.active.WithLabelValues(u.Name)); got != 1 {
		t.Errorf("masterd_unit_active = %v after Start, want 1", got)
	}
	if n := testutil.CollectAndCount(s.m.startDuration); n != 1 {
		t.Errorf("start duration series = %d, want 1", n)
	}
	if err := s.Healthy(ctx, u.Name); err != nil {
		t.Errorf("Healthy after Start: %v", err)
	}
	pid1 := mainPID(t, ctx, h, u.Name)

	if err := s.Restart(ctx, u.Name, 8); err != nil {
		t.Fatal(err)
	}
	if pid2 := mainPID(t, ctx, h, u.Name); pid2 == pid1 || pid2 == "0" {
		t.Errorf("MainPID %s after Restart, was %s: not a new process", pid2, pid1)
	}
	if b, _ := os.ReadFile(h.Path("/run/unitst-term")); string(b) != "term=8\n" {
		t.Errorf("after Restart the unit saw %q, want term=8", b)
	}

	if err := s.Stop(ctx, u.Name); err != nil {
		t.Fatal(err)
	}
	if out, _ := h.Systemctl(ctx, "is-active", u.Name); strings.TrimSpace(string(out)) != "inactive" {
		t.Errorf("after Stop the unit is %q, want inactive", strings.TrimSpace(string(out)))
	}
	if got := testutil.ToFloat64(s.m.active.WithLabelValues(u.Name)); got != 0 {
		t.Errorf("masterd_unit_active = %v after Stop, want 0", got)
	}
	if err := s.Healthy(ctx, u.Name); err == nil {
		t.Errorf("Healthy after Stop returned nil")
	}
	st, _ := s.Status(u.Name)
	if st.Failures != 0 {
		t.Errorf("failures = %d after requested stops, want 0", st.Failures)
	}
	if n, err := testutil.GatherAndCount(reg, "masterd_unit_active", "masterd_unit_restarts_total", "masterd_unit_start_duration_seconds"); err != nil || n != 3 {
		t.Errorf("gathered %d series (%v), want 3", n, err)
	}
}

func TestKilledProcessIsCountedAsFailureAndRestartedBySystemd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "fail")
	s, _ := newSup(t, h, nil)
	u := shUnit("unitst-crash.service", `exec sleep infinity`)
	if err := s.Register(u); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, u.Name, 1); err != nil {
		t.Fatal(err)
	}
	pid := mainPID(t, ctx, h, u.Name)
	if _, err := h.Exec(ctx, "kill", "-KILL", pid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "restart counted", func() bool {
		st, _ := s.Status(u.Name)
		return st.Restarts >= 1 && st.ActiveState == "active"
	})
	st, _ := s.Status(u.Name)
	if st.Failures != 1 {
		t.Errorf("failures = %d, want 1", st.Failures)
	}
	if got := testutil.ToFloat64(s.m.restarts.WithLabelValues(u.Name)); got != 1 {
		t.Errorf("masterd_unit_restarts_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.m.failures.WithLabelValues(u.Name)); got != 1 {
		t.Errorf("masterd_unit_failures_total = %v, want 1", got)
	}
	if pid2 := mainPID(t, ctx, h, u.Name); pid2 == pid || pid2 == "0" {
		t.Errorf("MainPID %s after the kill, was %s", pid2, pid)
	}
}

func TestStartFailsWhenTheProbeNeverPasses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "tmo")
	s, _ := newSup(t, h, func(c *Config) { c.StartTimeout = time.Second })
	u := shUnit("unitst-slow.service", `exec sleep infinity`)
	u.Health = ProbeFunc(func(context.Context) error { return fmt.Errorf("port 9999 closed") })
	if err := s.Register(u); err != nil {
		t.Fatal(err)
	}
	err := s.Start(ctx, u.Name, 1)
	if err == nil {
		t.Fatal("Start succeeded with a probe that never passes")
	}
	for _, want := range []string{"not healthy within 1s", "port 9999 closed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if n := testutil.CollectAndCount(s.m.startDuration); n != 0 {
		t.Errorf("a failed start was observed in the start duration histogram")
	}
}

func TestRejectedFlagSurfacesTheComponentsJournalMessage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "flag")
	s, _ := newSup(t, h, nil)
	u := shUnit("unitst-badflag.service", `echo "Error: unknown flag: --no-such-flag" >&2; exit 1`)
	if err := s.Register(u); err != nil {
		t.Fatal(err)
	}
	err := s.Start(ctx, u.Name, 1)
	if err == nil {
		t.Fatal("Start succeeded for a process that exits 1")
	}
	t.Logf("start error: %v", err)
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("start error spans several lines")
	}
	if !strings.Contains(err.Error(), "unknown flag: --no-such-flag") {
		t.Errorf("error does not quote the journal: %v", err)
	}
	if !strings.Contains(err.Error(), "status 1") && !strings.Contains(err.Error(), "status=1/FAILURE") {
		t.Errorf("error does not give the exit status: %v", err)
	}
	if err := s.Stop(ctx, u.Name); err != nil {
		t.Errorf("stop after failed start: %v", err)
	}
}

func TestSupervisorReconnectsAfterDaemonReexec(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "rexec")
	s, _ := newSup(t, h, nil)
	u := shUnit("unitst-rx.service", `exec sleep infinity`)
	if err := s.Register(u); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, u.Name, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Systemctl(ctx, "daemon-reexec"); err != nil {
		t.Fatal(err)
	}
	// The old connection is gone; Stop and Start must work on a new one.
	if err := s.Stop(ctx, u.Name); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, u.Name, 2); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.m.reconnects); got < 1 {
		t.Errorf("masterd_unit_systemd_reconnects_total = %v, want >= 1", got)
	}
	// Signals flow on the new connection: a crash is still seen.
	if _, err := h.Exec(ctx, "kill", "-KILL", mainPID(t, ctx, h, u.Name)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "failure seen after reexec", func() bool {
		st, _ := s.Status(u.Name)
		return st.Failures >= 1
	})
}

// An installed leader-only unit (existing-units mode) whose own stop
// timeout is 90 s and whose processes, a child too, ignore SIGTERM: Stop
// kills them at once, without a grace and without systemd's timeout, and
// leaves the unit inactive (not failed).
func TestLeaderOnlyUnitIgnoringSIGTERMIsKilledWithoutSystemdsStopTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "kill")
	s, _ := newSup(t, h, nil)
	unitText := "[Service]\nTimeoutStopSec=90s\nExecStart=/bin/sh -c 'trap \"\" TERM; sleep infinity & sleep infinity'\n"
	if err := h.WriteFile("/etc/systemd/system/unitst-stubborn.service", []byte(unitText), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	u := Unit{Name: "unitst-stubborn.service", LeaderOnly: true}
	if err := s.Register(u); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, u.Name, 0); err != nil {
		t.Fatal(err)
	}
	// Active comes right after the fork: wait until the shell has set its
	// trap and both sleeps run, so SIGTERM is really ignored.
	waitFor(t, ctx, "both sleeps", func() bool {
		out, _ := h.Exec(ctx, "pgrep", "-c", "-x", "sleep")
		return strings.TrimSpace(string(out)) == "2"
	})
	t0 := time.Now()
	if err := s.Stop(ctx, u.Name); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	t.Logf("leader-only stop of a SIGTERM-ignoring unit took %s (kill wait %s, unit's TimeoutStopSec 90s)", took, s.cfg.LeaderKillWait)
	if took > s.cfg.LeaderKillWait+500*time.Millisecond {
		t.Errorf("stop took %s, more than the kill wait %s and 500 ms of D-Bus calls", took, s.cfg.LeaderKillWait)
	}
	if out, _ := h.Systemctl(ctx, "is-active", u.Name); strings.TrimSpace(string(out)) != "inactive" {
		t.Errorf("unit is %q after Stop, want inactive", strings.TrimSpace(string(out)))
	}
	if out, _ := h.Exec(ctx, "pgrep", "-x", "sleep"); strings.TrimSpace(string(out)) != "" {
		t.Errorf("sleep processes survive the stop: %s", out)
	}
}

func TestSystemdPassesGeneratedArgumentsThroughUnchanged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "argv")
	s, _ := newSup(t, h, nil)
	args := []string{"a b", "$HOME", "${X}", "100%", "%n", `"q"`, `back\slash`, "it's", "--flag=x;y"}
	u := Unit{Name: "unitst-argv.service", Definition: &Definition{
		ExecStart:   append([]string{"/bin/sh", "-c", `for a in "$@"; do printf '%s\n' "$a"; done > /run/unitst-argv; printf '%s\n' "$E" > /run/unitst-env; exec sleep infinity`, "sh"}, args...),
		Environment: map[string]string{"E": "$x %n \"q\""},
	}}
	if err := s.Register(u); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, u.Name, 3); err != nil {
		t.Fatal(err)
	}
	var got []byte
	waitFor(t, ctx, "argv file", func() bool {
		got, _ = os.ReadFile(h.Path("/run/unitst-env"))
		return len(got) > 0
	})
	argv, _ := os.ReadFile(h.Path("/run/unitst-argv"))
	if want := strings.Join(args, "\n") + "\n"; string(argv) != want {
		t.Errorf("process got argv\n%s\nwant\n%s", argv, want)
	}
	if want := "$x %n \"q\"\n"; string(got) != want {
		t.Errorf("process got E=%q, want %q", got, want)
	}
}

func TestStopOvertakesAStartStillWaitingForHealth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "ovt")
	s, _ := newSup(t, h, func(c *Config) { c.StartTimeout = 5 * time.Minute })
	probing := make(chan struct{}, 1)
	u := shUnit("unitst-never.service", `exec sleep infinity`)
	u.LeaderOnly = true
	u.Health = ProbeFunc(func(context.Context) error {
		select {
		case probing <- struct{}{}:
		default:
		}
		return fmt.Errorf("not yet")
	})
	if err := s.Register(u); err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- s.Start(ctx, u.Name, 4) }()
	<-probing // the role is lost while the unit is still starting
	if err := s.Stop(ctx, u.Name); err != nil {
		t.Fatal(err)
	}
	err := <-started
	if err == nil || !strings.Contains(err.Error(), "stopped while starting") {
		t.Errorf("overtaken Start returned %v, want an error saying it was stopped", err)
	}
	if out, _ := h.Systemctl(ctx, "is-active", u.Name); strings.TrimSpace(string(out)) != "inactive" {
		t.Errorf("unit is %q after Stop, want inactive", strings.TrimSpace(string(out)))
	}
	// The next Start is not affected by the earlier abort.
	u.Health = nil
	if err := s.Register(u); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, u.Name, 5); err != nil {
		t.Errorf("Start after an overtaken Start: %v", err)
	}
}
