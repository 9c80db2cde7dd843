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

// The leader-only unit stop must fit the role's release slack with
// headroom for the D-Bus round trips around it.
func TestLeaderUnitStopFitsTheReleaseSlackWithHeadroom(t *testing.T) {
	slack := election.DefaultUnitTiming().ReleaseSlack
	stop := unitsConfig().LeaderStopTimeout()
	if headroom := slack - stop; headroom < 500*time.Millisecond {
		t.Fatalf("leader stop %s (grace %s + kill wait %s) leaves %s of the %s slack, want >= 500 ms",
			stop, unitsConfig().LeaderStopGrace, unitsConfig().KillWait, headroom, slack)
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

// acquireAndWait takes the role and waits until the unit's two sleeps run
// (after the shell set its SIGTERM trap).
func acquireAndWait(t *testing.T, ctx context.Context, l *leaderUnit, h *labhost.Host) {
	t.Helper()
	l.acquire(ctx, 1)
	for {
		pids, err := l.c.sup.Processes(ctx, l.unit())
		out, _ := h.Exec(ctx, "pgrep", "-c", "-x", "sleep")
		if err == nil && len(pids) >= 2 && strings.TrimSpace(string(out)) == "2" {
			time.Sleep(100 * time.Millisecond) // the traps are set before the sleeps exec
			return
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

// A leader-only unit whose processes ignore SIGTERM (and whose own stop
// timeout is systemd's 90 s): release kills its cgroup after the grace,
// verifies it empty and returns nil, inside the role's 4 s slack.
func TestLeaderUnitIgnoringSIGTERMIsDeadWhenReleaseReturnsWithinTheSlack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, h := leaderUnitInLab(t, ctx, "term", "agkt-stubborn.service",
		"[Service]\nTimeoutStopSec=90s\nExecStart=/bin/sh -c 'trap \"\" TERM; sleep infinity & sleep infinity'\n")
	acquireAndWait(t, ctx, l, h)
	slack := election.DefaultUnitTiming().ReleaseSlack
	rctx, rcancel := context.WithTimeout(ctx, slack)
	defer rcancel()
	t0 := time.Now()
	err := l.release(rctx, 1)
	took := time.Since(t0)
	t.Logf("release of a SIGTERM-ignoring unit took %s (grace %s, kill wait %s, slack %s)", took, leaderStopGrace, unitKillWait, slack)
	if err != nil {
		t.Fatalf("release: %v", err)
	}
	if took < leaderStopGrace {
		t.Errorf("release took %s, less than the grace: SIGTERM was not ignored", took)
	}
	if took > slack {
		t.Errorf("release took %s, over the %s slack", took, slack)
	}
	assertDead(t, ctx, l, h)
}

// An installed unit with KillMode=process: the stop leaves a child that
// ignores SIGTERM in the cgroup while systemd calls the unit inactive. The
// release's read-back finds it, escalates (SIGKILL to the cgroup) and
// returns an error (no Release is sent), with nothing left alive.
func TestLeaderUnitReleaseThatLeavesAProcessEscalatesAndFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, h := leaderUnitInLab(t, ctx, "leak", "agkt-leaky.service",
		"[Service]\nKillMode=process\nExecStart=/bin/sh -c '(trap \"\" TERM; exec sleep infinity) & exec sleep infinity'\n")
	acquireAndWait(t, ctx, l, h)
	rctx, rcancel := context.WithTimeout(ctx, election.DefaultUnitTiming().ReleaseSlack)
	defer rcancel()
	err := l.release(rctx, 1)
	t.Logf("release error: %v", err)
	if err == nil || !strings.Contains(err.Error(), "processes left") || !strings.Contains(err.Error(), "verified empty") {
		t.Fatalf("release: %v, want an error naming the process left and a verified escalation", err)
	}
	assertDead(t, ctx, l, h)
}

// A release whose deadline ends before the grace does (a loss handled
// late): Stop gives up with the context, and the escalation, on a
// deadline of its own, still kills the unit.
func TestLeaderUnitReleasePastItsDeadlineStillKillsTheUnit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, h := leaderUnitInLab(t, ctx, "late", "agkt-late.service",
		"[Service]\nTimeoutStopSec=90s\nExecStart=/bin/sh -c 'trap \"\" TERM; sleep infinity & sleep infinity'\n")
	acquireAndWait(t, ctx, l, h)
	rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer rcancel()
	t0 := time.Now()
	err := l.release(rctx, 1)
	t.Logf("release with a 300 ms deadline took %s: %v", time.Since(t0), err)
	if err == nil || !strings.Contains(err.Error(), "verified empty") {
		t.Fatalf("release: %v, want an error with a verified escalation", err)
	}
	assertDead(t, ctx, l, h)
}
