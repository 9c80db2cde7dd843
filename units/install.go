package units

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/masterd/masterd/internal/atomicfile"
)

// Installing managed units.
//
// A daemon-reload makes systemd re-read every unit on the host: it took
// 0.1-5 s on a loaded lab host, and PID 1 answers nothing else meanwhile.
// It must not sit on the path of a role's takeover. So the unit files of
// every registered managed unit are written together, with one reload, at
// the first Start (masterd starts kube-apiserver first) or at Install; a
// later Start finds its file as systemd loaded it and only submits the
// start job. A reload happens again only when a file is not what the
// supervisor last made systemd load: a definition registered anew (a
// configuration change), a file edited or removed behind masterd's back,
// or, at a restart of masterd, a file systemd reports stale
// (NeedDaemonReload) or never loaded.

// envFile is the path of the unit's environment file (MASTERD_TERM).
func (s *Supervisor) envFile(name string) string {
	return filepath.Join(s.cfg.RuntimeDir, strings.TrimSuffix(name, ".service")+".env")
}

// render is the unit file text of a managed unit. Its TimeoutStopSec=
// bounds a stop that systemd runs alone (`systemctl stop` by hand): the
// apiserver's grace, and for a leader-only unit LeaderKillWait (masterd's
// own stop of it kills at once).
func (s *Supervisor) render(u Unit) (string, error) {
	grace := s.cfg.StopGrace
	if u.LeaderOnly {
		grace = s.cfg.LeaderKillWait
	}
	text, err := u.Definition.render(s.envFile(u.Name), grace)
	if err != nil {
		return "", fmt.Errorf("units: render %s: %w", u.Name, err)
	}
	return text, nil
}

// install prepares a Start of u: the environment file carrying
// MASTERD_TERM (read by systemd at every start, no reload needed), and
// every managed unit's file installed (Install), which reloads systemd
// only when a file changed.
func (s *Supervisor) install(ctx context.Context, u Unit, term uint64) error {
	envFile := s.envFile(u.Name)
	if err := atomicfile.WriteFile(s.root+envFile, []byte(fmt.Sprintf("MASTERD_TERM=%d\n", term)), 0o644, atomicfile.MkdirAll(0o755)); err != nil {
		return fmt.Errorf("units: write %s: %w", envFile, err)
	}
	return s.Install(ctx)
}

// Install writes the unit file of every registered managed unit that is
// not what systemd last loaded from this supervisor, and then runs one
// daemon-reload if any was written or systemd reports one stale or not
// loaded. With nothing to do it costs a read of each file and no call to
// systemd. Start calls it; masterd's first Start (kube-apiserver) thus
// installs the leader-only units too, so that their start at a takeover
// is a start job alone.
func (s *Supervisor) Install(ctx context.Context) error {
	s.installMu.Lock()
	defer s.installMu.Unlock()
	s.mu.Lock()
	var managed []Unit
	for _, st := range s.units {
		if st.u.Definition != nil {
			managed = append(managed, st.u)
		}
	}
	s.mu.Unlock()
	sort.Slice(managed, func(i, j int) bool { return managed[i].Name < managed[j].Name })

	texts := map[string]string{}
	var written, unsure []string
	for _, u := range managed {
		text, err := s.render(u)
		if err != nil {
			return err
		}
		texts[u.Name] = text
		path := filepath.Join(s.cfg.UnitDir, u.Name)
		old, _ := os.ReadFile(s.root + path)
		switch {
		case string(old) != text:
			if err := atomicfile.WriteFile(s.root+path, []byte(text), 0o644, atomicfile.MkdirAll(0o755)); err != nil {
				return fmt.Errorf("units: write %s: %w", path, err)
			}
			written = append(written, u.Name)
		case s.loaded[u.Name] != text:
			// The file is right, but this supervisor has not seen
			// systemd load it (masterd restarted): ask systemd.
			unsure = append(unsure, u.Name)
		}
	}
	var stale []string
	for _, name := range unsure {
		ok, err := s.upToDate(ctx, name)
		if err != nil {
			return err
		}
		if !ok {
			stale = append(stale, name)
		} else {
			s.loaded[name] = texts[name]
		}
	}
	if len(written) == 0 && len(stale) == 0 {
		return nil
	}
	t0 := time.Now()
	if err := s.do(ctx, func(c *sdbus.Conn) error { return c.ReloadContext(ctx) }); err != nil {
		return fmt.Errorf("units: daemon-reload for %s: %w", strings.Join(append(written, stale...), ", "), err)
	}
	s.reloads.Add(1)
	for _, name := range append(written, stale...) {
		s.loaded[name] = texts[name]
	}
	s.log.Info("unit files installed", "written", strings.Join(written, ","), "stale", strings.Join(stale, ","), "reload_seconds", time.Since(t0).Seconds())
	return nil
}

// upToDate reports whether systemd has loaded the unit's current file:
// LoadState loaded and NeedDaemonReload false.
func (s *Supervisor) upToDate(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := s.do(ctx, func(c *sdbus.Conn) error {
		p, err := c.GetUnitPropertiesContext(ctx, name)
		if err != nil {
			return err
		}
		load, _ := p["LoadState"].(string)
		need, _ := p["NeedDaemonReload"].(bool)
		ok = load == "loaded" && !need
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("units: read load state of %s: %w", name, err)
	}
	return ok, nil
}

// Reloads is how many daemon-reloads this supervisor asked systemd for.
func (s *Supervisor) Reloads() uint64 { return s.reloads.Load() }
