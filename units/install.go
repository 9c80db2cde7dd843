package units

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/masterd/masterd/internal/atomicfile"
)

// install writes the unit file (and reloads systemd when it changed) and
// the environment file carrying MASTERD_TERM.
func (s *Supervisor) install(ctx context.Context, u Unit, term uint64) error {
	envFile := filepath.Join(s.cfg.RuntimeDir, strings.TrimSuffix(u.Name, ".service")+".env")
	grace := s.cfg.StopGrace
	if u.LeaderOnly {
		grace = s.cfg.LeaderStopGrace
	}
	text, err := u.Definition.render(envFile, grace)
	if err != nil {
		return fmt.Errorf("units: render %s: %w", u.Name, err)
	}
	if err := atomicfile.WriteFile(s.root+envFile, []byte(fmt.Sprintf("MASTERD_TERM=%d\n", term)), 0o644, atomicfile.MkdirAll(0o755)); err != nil {
		return fmt.Errorf("units: write %s: %w", envFile, err)
	}
	path := filepath.Join(s.cfg.UnitDir, u.Name)
	old, _ := os.ReadFile(s.root + path)
	if string(old) == text {
		return nil
	}
	if err := atomicfile.WriteFile(s.root+path, []byte(text), 0o644, atomicfile.MkdirAll(0o755)); err != nil {
		return fmt.Errorf("units: write %s: %w", path, err)
	}
	if err := s.do(ctx, func(c *sdbus.Conn) error { return c.ReloadContext(ctx) }); err != nil {
		return fmt.Errorf("units: daemon-reload for %s: %w", u.Name, err)
	}
	return nil
}
