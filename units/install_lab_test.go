package units

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/labhost"
)

// reloadWatch counts the daemon-reloads systemd itself reports: PID 1
// logs "Reloading." (and, for a reload asked over D-Bus, "Reloading
// requested from client PID ...") at the start of each one; the test
// counts the former in the lab host's journal.
type reloadWatch struct {
	h *labhost.Host
}

func watchReloads(t *testing.T, h *labhost.Host) *reloadWatch {
	t.Helper()
	return &reloadWatch{h: h}
}

// count returns how many reloads PID 1 has logged since the host booted.
func (w *reloadWatch) count(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := w.h.Exec(ctx, "journalctl", "--sync"); err != nil {
		t.Fatalf("journalctl --sync: %v: %s", err, out)
	}
	out, err := w.h.Exec(ctx, "journalctl", "--no-pager", "-b", "_PID=1", "-o", "cat")
	if err != nil {
		t.Fatalf("journalctl: %v: %s", err, out)
	}
	var n int64
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) == "Reloading." {
			n++
		}
		if strings.HasPrefix(l, "Reloading") && os.Getenv("UNITS_TEST_LOG") != "" {
			t.Logf("journal: %s", l)
		}
	}
	return n
}

// A role's start must not wait for a daemon-reload. The first Start writes
// every registered managed unit's file with one reload, as systemd itself
// reports; later starts and stops of those units, by this supervisor or by
// a new one (masterd restarted), make systemd reload nothing, and still
// run each start with its own term. A changed definition, and a file that
// systemd reports stale, reload once.
func TestStartReloadsSystemdOnlyWhenAUnitFileChanged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	h := bootLab(t, ctx, "rld")
	w := watchReloads(t, h)
	s, _ := newSup(t, h, nil)
	api := shUnit("unitst-api.service", `exec sleep infinity`)
	sched := shUnit("unitst-sched.service", `echo "term=$MASTERD_TERM" > /run/unitst-sched-term; exec sleep infinity`)
	sched.LeaderOnly = true
	for _, u := range []Unit{api, sched} {
		if err := s.Register(u); err != nil {
			t.Fatal(err)
		}
	}
	before := w.count(t)
	if err := s.Start(ctx, api.Name, 0); err != nil {
		t.Fatal(err)
	}
	if got := w.count(t) - before; got != 1 {
		t.Fatalf("systemd reported %d reloads for the first Start, want 1 (both files at once)", got)
	}
	if _, err := os.Stat(h.Path(filepath.Join(s.cfg.UnitDir, sched.Name))); err != nil {
		t.Fatalf("the leader-only unit's file is not installed by the first Start: %v", err)
	}

	// Takeovers: the leader-only unit starts and stops under new terms.
	before = w.count(t)
	for term := uint64(2); term <= 4; term++ {
		t0 := time.Now()
		if err := s.Start(ctx, sched.Name, term); err != nil {
			t.Fatal(err)
		}
		t.Logf("start of term %d: %s", term, time.Since(t0))
		if b, _ := os.ReadFile(h.Path("/run/unitst-sched-term")); string(b) != "term="+strconv.FormatUint(term, 10)+"\n" {
			t.Errorf("the unit saw %q, want term=%d", b, term)
		}
		if err := s.Stop(ctx, sched.Name); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.count(t) - before; got != 0 {
		t.Errorf("systemd reported %d reloads during three starts of an installed unit, want 0", got)
	}
	if s.Reloads() != 1 {
		t.Errorf("supervisor asked for %d reloads, want 1", s.Reloads())
	}

	// masterd restarted: a new supervisor finds the files as systemd
	// loaded them.
	s.Close()
	s2, _ := newSup(t, h, nil)
	for _, u := range []Unit{api, sched} {
		if err := s2.Register(u); err != nil {
			t.Fatal(err)
		}
	}
	before = w.count(t)
	if err := s2.Start(ctx, sched.Name, 5); err != nil {
		t.Fatal(err)
	}
	if got := w.count(t) - before; got != 0 {
		t.Errorf("systemd reported %d reloads for a start after a restart of the supervisor, want 0", got)
	}
	if err := s2.Stop(ctx, sched.Name); err != nil {
		t.Fatal(err)
	}

	// A configuration change: the new definition reaches systemd with one
	// reload, at the next start.
	changed := sched
	d := *sched.Definition
	d.Description = "units test, changed"
	changed.Definition = &d
	if err := s2.Register(changed); err != nil {
		t.Fatal(err)
	}
	before = w.count(t)
	if err := s2.Start(ctx, sched.Name, 6); err != nil {
		t.Fatal(err)
	}
	if got := w.count(t) - before; got != 1 {
		t.Errorf("systemd reported %d reloads for a changed definition, want 1", got)
	}
	if out, _ := h.Systemctl(ctx, "show", "-P", "Description", sched.Name); strings.TrimSpace(string(out)) != d.Description {
		t.Errorf("systemd describes the unit as %q, want the changed definition's %q", strings.TrimSpace(string(out)), d.Description)
	}
	// A previous masterd wrote a file while the unit ran (so systemd keeps
	// it loaded) and died before its reload: the file is right, systemd's
	// copy is stale. A new supervisor's Install reloads.
	s2.Close()
	third := sched
	d3 := *sched.Definition
	d3.Description = "units test, written before a crash"
	third.Definition = &d3
	s3, _ := newSup(t, h, nil)
	text, err := s3.render(third)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // a newer mtime than the loaded file's
	if err := h.WriteFile(filepath.Join(s3.cfg.UnitDir, sched.Name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := h.Systemctl(ctx, "show", "-P", "NeedDaemonReload", sched.Name); strings.TrimSpace(string(out)) != "yes" {
		t.Fatalf("systemd's NeedDaemonReload is %q after the file of a running unit changed, want yes", strings.TrimSpace(string(out)))
	}
	for _, u := range []Unit{api, third} {
		if err := s3.Register(u); err != nil {
			t.Fatal(err)
		}
	}
	before = w.count(t)
	if err := s3.Install(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.count(t) - before; got != 1 {
		t.Errorf("systemd reported %d reloads for a file it had not loaded, want 1", got)
	}
	if out, _ := h.Systemctl(ctx, "show", "-P", "Description", sched.Name); strings.TrimSpace(string(out)) != d3.Description {
		t.Errorf("systemd describes the unit as %q, want %q", strings.TrimSpace(string(out)), d3.Description)
	}
	before = w.count(t)
	if err := s3.Install(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.count(t) - before; got != 0 {
		t.Errorf("systemd reported %d reloads for a second Install with nothing changed, want 0", got)
	}
}
