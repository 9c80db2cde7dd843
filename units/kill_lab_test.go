package units

import (
	"context"
	"strings"
	"testing"
	"time"
)

// An installed unit with KillMode=process: Stop kills only the main
// process, systemd calls the unit inactive, and a child that ignores
// SIGTERM lives on in the cgroup. Processes sees it (the unit's state does
// not), and Kill empties the cgroup.
func TestKillEmptiesACgroupThatStopLeftProcessesIn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "kpr")
	s, _ := newSup(t, h, func(c *Config) { c.LeaderStopGrace = 200 * time.Millisecond; c.KillWait = 1500 * time.Millisecond })
	unitText := "[Service]\nKillMode=process\nExecStart=/bin/sh -c '(trap \"\" TERM; exec sleep infinity) & exec sleep infinity'\n"
	if err := h.WriteFile("/etc/systemd/system/unitst-leaky.service", []byte(unitText), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	u := Unit{Name: "unitst-leaky.service", LeaderOnly: true}
	if err := s.Register(u); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, u.Name, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "both sleeps", func() bool {
		pids, err := s.Processes(ctx, u.Name)
		return err == nil && len(pids) == 2
	})
	if err := s.Stop(ctx, u.Name); err != nil {
		t.Fatal(err)
	}
	if out, _ := h.Systemctl(ctx, "is-active", u.Name); strings.TrimSpace(string(out)) != "inactive" {
		t.Fatalf("unit is %q after Stop, want inactive", strings.TrimSpace(string(out)))
	}
	pids, err := s.Processes(ctx, u.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 {
		t.Fatalf("processes after a KillMode=process stop: %v, want the one child that ignores SIGTERM", pids)
	}
	t0 := time.Now()
	if err := s.Kill(ctx, u.Name); err != nil {
		t.Fatal(err)
	}
	t.Logf("Kill emptied the cgroup in %s", time.Since(t0))
	if pids, err := s.Processes(ctx, u.Name); err != nil || len(pids) != 0 {
		t.Fatalf("processes after Kill: %v (%v), want none", pids, err)
	}
	if out, _ := h.Exec(ctx, "pgrep", "-x", "sleep"); strings.TrimSpace(string(out)) != "" {
		t.Errorf("sleep processes survive Kill: %s", out)
	}
	// Killing a unit with nothing left is no error.
	if err := s.Kill(ctx, u.Name); err != nil {
		t.Errorf("Kill of an empty unit: %v", err)
	}
}

// Kill of a running managed unit with Restart=always: the stop job keeps
// systemd from restarting it after the SIGKILL.
func TestKillOfARunningUnitDoesNotLetSystemdRestartIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "krs")
	s, _ := newSup(t, h, nil)
	u := shUnit("unitst-kill.service", `trap "" TERM; exec sleep infinity`)
	u.LeaderOnly = true
	if err := s.Register(u); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, u.Name, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(ctx, u.Name); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // RestartSec is 100 ms
	if pids, err := s.Processes(ctx, u.Name); err != nil || len(pids) != 0 {
		t.Fatalf("processes 500 ms after Kill: %v (%v), want none", pids, err)
	}
	if out, _ := h.Systemctl(ctx, "is-active", u.Name); strings.TrimSpace(string(out)) == "active" {
		t.Error("systemd restarted the unit after Kill")
	}
}
