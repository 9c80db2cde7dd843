package units

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/election"
)

// An installed unit with KillMode=process, not leader-only: its graceful
// Stop kills only the main process, systemd calls the unit inactive, and a
// child that ignores SIGTERM lives on in the cgroup. Processes sees it (the
// unit's state does not), and Kill empties the cgroup.
func TestKillEmptiesACgroupThatStopLeftProcessesIn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "kpr")
	s, _ := newSup(t, h, func(c *Config) { c.StopGrace = 200 * time.Millisecond; c.KillWait = 1500 * time.Millisecond })
	unitText := "[Service]\nKillMode=process\nExecStart=/bin/sh -c '(trap \"\" TERM; exec sleep infinity) & exec sleep infinity'\n"
	if err := h.WriteFile("/etc/systemd/system/unitst-leaky.service", []byte(unitText), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	u := Unit{Name: "unitst-leaky.service"}
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

// The lapse path of a leader-only managed unit (Restart=always) whose every
// process ignores SIGTERM: the main one, a child, a grandchild in a session
// of its own and one moved into a sub-group of the unit's control group.
// Stop kills all four at once, inside the role's release budget
// (election.UnitSlack.Release; the default kill wait is the agent's);
// systemd does not restart the unit, which is inactive, not failed; and it
// starts again at the next term. Three rounds: kill, start, kill, start.
func TestLeaderOnlyStopKillsEveryProcessWithinTheReleaseBudgetAndTheUnitStartsAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "lapse")
	s, _ := newSup(t, h, nil)
	const name = "unitst-lapse.service"
	sub := "/sys/fs/cgroup/system.slice/" + name + "/escaped"
	u := shUnit(name, `trap "" TERM; (exec sleep infinity) & setsid sh -c 'exec sleep infinity' & `+
		`mkdir -p `+sub+` && sh -c 'echo $$ > `+sub+`/cgroup.procs && exec sleep infinity' & exec sleep infinity`)
	u.LeaderOnly = true
	if err := s.Register(u); err != nil {
		t.Fatal(err)
	}
	budget := election.UnitSlack.Release
	for term := uint64(1); term <= 3; term++ {
		if err := s.Start(ctx, name, term); err != nil {
			t.Fatalf("start %d: %v", term, err)
		}
		waitFor(t, ctx, "four sleeps, one in the sub-group", func() bool {
			out, _ := h.Exec(ctx, "pgrep", "-c", "-x", "sleep")
			procs, err := os.ReadFile(labRoot(h) + sub + "/cgroup.procs")
			return strings.TrimSpace(string(out)) == "4" && err == nil && strings.TrimSpace(string(procs)) != ""
		})
		pids, err := s.Processes(ctx, name)
		if err != nil || len(pids) != 4 {
			t.Fatalf("term %d: processes %v (%v), want the four sleeps", term, pids, err)
		}
		t0 := time.Now()
		if err := s.Stop(ctx, name); err != nil {
			t.Fatalf("term %d: stop: %v", term, err)
		}
		took := time.Since(t0)
		t.Logf("term %d: leader-only stop (kill) took %s, budget %s", term, took, budget)
		if took > budget {
			t.Errorf("term %d: stop took %s, over the release budget %s", term, took, budget)
		}
		if pids, err := s.Processes(ctx, name); err != nil || len(pids) != 0 {
			t.Fatalf("term %d: processes after Stop: %v (%v), want none", term, pids, err)
		}
		time.Sleep(500 * time.Millisecond) // RestartSec is 100 ms
		if out, _ := h.Exec(ctx, "pgrep", "-x", "sleep"); strings.TrimSpace(string(out)) != "" {
			t.Fatalf("term %d: sleep processes 500 ms after Stop: %s", term, out)
		}
		if out, _ := h.Systemctl(ctx, "is-active", name); strings.TrimSpace(string(out)) != "inactive" {
			t.Fatalf("term %d: unit is %q 500 ms after Stop, want inactive (not restarted, failed state reset)", term, strings.TrimSpace(string(out)))
		}
	}
	if st, _ := s.Status(name); st.Failures != 0 {
		t.Errorf("failures %d: the kills were asked for", st.Failures)
	}
}
