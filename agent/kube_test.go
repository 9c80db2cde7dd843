package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/election"
	"github.com/masterd/masterd/integration/labhost"
	"github.com/masterd/masterd/units"
	"github.com/prometheus/client_golang/prometheus"
)

// The leader-only unit's kill must fit the role's release slack with
// headroom for the D-Bus round trips around it.
func TestLeaderUnitKillFitsTheReleaseSlackWithHeadroom(t *testing.T) {
	slack := election.DefaultUnitTiming().ReleaseSlack
	if slack != election.UnitSlack.Release {
		t.Fatalf("default unit timing's release slack %s, want UnitSlack's %s", slack, election.UnitSlack.Release)
	}
	kill := unitsConfig().LeaderKillWait
	if headroom := slack - kill; headroom < 500*time.Millisecond {
		t.Fatalf("leader kill wait %s leaves %s of the %s slack, want >= 500 ms", kill, headroom, slack)
	}
	if err := unitsConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// leaderUnitInLab boots a lab host with real systemd, installs the unit
// text as name and returns the leader-only role handler for it.
func leaderUnitInLab(t *testing.T, ctx context.Context, suffix, name, unitText string) (*leaderUnit, *labhost.Host) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("boots systemd in a lab namespace: needs root")
	}
	h, err := labhost.Boot(ctx, labhost.Options{Name: fmt.Sprintf("agkt-%d-%s", os.Getpid(), suffix)})
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
	if err := h.WriteFile("/etc/systemd/system/"+name, []byte(unitText), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	cfg := unitsConfig()
	cfg.Socket = labhost.PrivateSocketInLab
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sup, err := units.New(cfg, prometheus.NewRegistry(), quiet, units.WithRoot(fmt.Sprintf("/proc/%d/root", h.PID1())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Close() })
	if err := sup.Register(units.Unit{Name: name, LeaderOnly: true}); err != nil {
		t.Fatal(err)
	}
	kc := &kubeComponent{n: &node{log: quiet, reg: prometheus.NewRegistry()}, sup: sup}
	return &leaderUnit{c: kc, unit: func() string { return name }}, h
}

// acquireAndWait takes the role for term 1 and waits until the unit's start
// ended and its two sleeps run (after the shell set its SIGTERM trap). It
// returns the term's cancel, which the election calls before release.
func acquireAndWait(t *testing.T, ctx context.Context, l *leaderUnit, h *labhost.Host) context.CancelFunc {
	t.Helper()
	return acquireAndWaitTerm(t, ctx, l, h, 1)
}

func acquireAndWaitTerm(t *testing.T, ctx context.Context, l *leaderUnit, h *labhost.Host, term uint64) context.CancelFunc {
	t.Helper()
	tctx, cancel := context.WithCancel(ctx)
	l.acquire(tctx, term)
	l.mu.Lock()
	started := l.starting
	l.mu.Unlock()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatalf("the unit's start did not end: %v", ctx.Err())
	}
	for {
		pids, err := l.c.sup.Processes(ctx, l.unit())
		out, _ := h.Exec(ctx, "pgrep", "-c", "-x", "sleep")
		if err == nil && len(pids) >= 2 && strings.TrimSpace(string(out)) == "2" {
			return cancel
		}
		select {
		case <-ctx.Done():
			t.Fatalf("unit's processes did not start: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func assertDead(t *testing.T, ctx context.Context, l *leaderUnit, h *labhost.Host) {
	t.Helper()
	if pids, err := l.c.sup.Processes(ctx, l.unit()); err != nil || len(pids) != 0 {
		t.Errorf("processes in the unit's cgroup after release: %v (%v), want none", pids, err)
	}
	if out, _ := h.Exec(ctx, "pgrep", "-x", "sleep"); strings.TrimSpace(string(out)) != "" {
		t.Errorf("sleep processes survive the release: %s", out)
	}
}

// A leader-only unit with Restart=always whose processes, a child too,
// ignore SIGTERM (and whose own stop timeout is systemd's 90 s): release
// kills its cgroup at once, verifies it empty and returns nil inside the
// role's release slack; systemd does not restart it; and the next term
// starts it again (twice over).
func TestLeaderUnitIgnoringSIGTERMIsKilledWithinTheSlackAndStartsAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l, h := leaderUnitInLab(t, ctx, "term", "agkt-stubborn.service",
		"[Service]\nRestart=always\nRestartSec=100ms\nTimeoutStopSec=90s\nExecStart=/bin/sh -c 'trap \"\" TERM; sleep infinity & sleep infinity'\n")
	slack := election.DefaultUnitTiming().ReleaseSlack
	for term := uint64(1); term <= 2; term++ {
		lost := acquireAndWaitTerm(t, ctx, l, h, term)
		lost()
		rctx, rcancel := context.WithTimeout(ctx, slack)
		t0 := time.Now()
		err := l.release(rctx, term)
		took := time.Since(t0)
		rcancel()
		t.Logf("term %d: release of a SIGTERM-ignoring unit took %s (kill wait %s, slack %s)", term, took, leaderKillWait, slack)
		if err != nil {
			t.Fatalf("term %d: release: %v", term, err)
		}
		if took > slack {
			t.Errorf("term %d: release took %s, over the %s slack", term, took, slack)
		}
		assertDead(t, ctx, l, h)
		time.Sleep(500 * time.Millisecond) // RestartSec is 100 ms
		assertDead(t, ctx, l, h)
		if out, _ := h.Systemctl(ctx, "is-active", l.unit()); strings.TrimSpace(string(out)) != "inactive" {
			t.Errorf("term %d: unit is %q 500 ms after release, want inactive", term, strings.TrimSpace(string(out)))
		}
	}
}

// An installed unit with KillMode=process: systemd's own stop would leave
// a child that ignores SIGTERM in the cgroup, but the release kills the
// group through cgroup.kill, whatever KillMode says, and returns nil with
// nothing left alive.
func TestLeaderUnitWithKillModeProcessLeavesNoProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, h := leaderUnitInLab(t, ctx, "leak", "agkt-leaky.service",
		"[Service]\nKillMode=process\nExecStart=/bin/sh -c '(trap \"\" TERM; exec sleep infinity) & exec sleep infinity'\n")
	acquireAndWait(t, ctx, l, h)()
	rctx, rcancel := context.WithTimeout(ctx, election.DefaultUnitTiming().ReleaseSlack)
	defer rcancel()
	if err := l.release(rctx, 1); err != nil {
		t.Fatalf("release: %v", err)
	}
	assertDead(t, ctx, l, h)
}

// A release whose deadline has passed before it begins (a loss handled
// late): Stop fails with the context, and the escalation, on a deadline of
// its own, still kills the unit, verifies its group empty and returns an
// error saying so (the driver then sends no Release).
func TestLeaderUnitReleasePastItsDeadlineStillKillsTheUnit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, h := leaderUnitInLab(t, ctx, "late", "agkt-late.service",
		"[Service]\nTimeoutStopSec=90s\nExecStart=/bin/sh -c 'trap \"\" TERM; sleep infinity & sleep infinity'\n")
	acquireAndWait(t, ctx, l, h)()
	rctx, rcancel := context.WithDeadline(ctx, time.Now().Add(-time.Millisecond))
	defer rcancel()
	t0 := time.Now()
	err := l.release(rctx, 1)
	t.Logf("release past its deadline took %s: %v", time.Since(t0), err)
	if err == nil || !strings.Contains(err.Error(), "verified empty") {
		t.Fatalf("release: %v, want an error with a verified escalation", err)
	}
	assertDead(t, ctx, l, h)
}
