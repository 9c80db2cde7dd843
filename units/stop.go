package units

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
)

// Stop stops the unit and waits until it is inactive: a stop job (SIGTERM
// to the unit's processes), then after the grace (Config.LeaderStopGrace for
// leader-only units, Config.StopGrace otherwise) SIGKILL to every process in
// the unit's cgroup, then up to Config.KillWait for systemd to see it
// inactive. It never waits for systemd's default 90 s stop timeout. Stopping
// an inactive or unknown-to-systemd unit succeeds.
func (s *Supervisor) Stop(ctx context.Context, name string) error {
	st, err := s.unit(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if st.abortStart != nil {
		st.abortStart(errStopped)
	}
	s.mu.Unlock()
	st.op.Lock()
	defer st.op.Unlock()
	s.mu.Lock()
	st.intentional = true
	leaderOnly := st.u.LeaderOnly
	s.mu.Unlock()
	grace := s.cfg.StopGrace
	if leaderOnly {
		grace = s.cfg.LeaderStopGrace
	}
	t0 := time.Now()
	err = s.do(ctx, func(c *sdbus.Conn) error {
		_, err := c.StopUnitContext(ctx, name, "replace", nil)
		return err
	})
	if err != nil && !isNoSuchUnit(err) {
		return fmt.Errorf("units: stop %s: %w", name, err)
	}
	done, err := s.waitInactive(ctx, name, grace)
	if err != nil {
		return fmt.Errorf("units: stop %s: %w", name, err)
	}
	if !done {
		s.log.Info("unit did not stop within grace, killing its cgroup", "unit", name, "grace_seconds", grace.Seconds())
		if err := s.killAfterGrace(ctx, name); err != nil {
			return fmt.Errorf("units: stop %s: %w", name, err)
		}
	}
	_ = s.do(ctx, func(c *sdbus.Conn) error { return c.ResetFailedUnitContext(ctx, name) })
	d := time.Since(t0)
	s.m.stopDuration.WithLabelValues(name).Observe(d.Seconds())
	s.log.Info("unit stopped", "unit", name, "seconds", d.Seconds())
	return nil
}

// killAfterGrace is Stop's escalation: SIGKILL to the unit's control group,
// then up to Config.KillWait for systemd to see it inactive.
func (s *Supervisor) killAfterGrace(ctx context.Context, name string) error {
	err := s.do(ctx, func(c *sdbus.Conn) error {
		return c.KillUnitWithTarget(ctx, name, sdbus.All, int32(syscall.SIGKILL))
	})
	if err != nil {
		return fmt.Errorf("kill cgroup: %w", err)
	}
	done, err := s.waitInactive(ctx, name, s.cfg.KillWait)
	if err != nil {
		return err
	}
	if !done {
		return fmt.Errorf("still not inactive %s after SIGKILL", s.cfg.KillWait)
	}
	return nil
}

// Kill stops the unit without a grace: a stop job (so Restart= does not
// bring it back) and at once SIGKILL to every process in its control group
// (KillUnit who=all; when systemd cannot be reached, cgroup.kill written
// directly), then waits up to Config.KillWait, or until ctx ends, for the
// group to be empty. It is the escalation of a Stop that failed or ran
// out of time; it succeeds when the unit has no processes left.
func (s *Supervisor) Kill(ctx context.Context, name string) error {
	st, err := s.unit(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if st.abortStart != nil {
		st.abortStart(errStopped)
	}
	st.intentional = true
	s.mu.Unlock()
	// Not under st.op: the Stop this escalates may still hold it, waiting
	// on a systemd that does not answer.
	var errs []error
	err = s.do(ctx, func(c *sdbus.Conn) error {
		_, err := c.StopUnitContext(ctx, name, "replace", nil)
		return err
	})
	if err != nil && !isNoSuchUnit(err) {
		errs = append(errs, fmt.Errorf("stop job: %w", err))
	}
	err = s.do(ctx, func(c *sdbus.Conn) error {
		return c.KillUnitWithTarget(ctx, name, sdbus.All, int32(syscall.SIGKILL))
	})
	if err != nil && !isNoSuchUnit(err) && !isNotActive(err) {
		errs = append(errs, fmt.Errorf("kill cgroup over d-bus: %w", err))
		if kerr := s.writeCgroupKill(ctx, name); kerr != nil {
			errs = append(errs, kerr)
		}
	}
	if err := s.waitEmpty(ctx, name); err != nil {
		return fmt.Errorf("units: kill %s: %w", name, errors.Join(append(errs, err)...))
	}
	return nil
}

// waitEmpty polls the unit's control group until it has no processes, for
// up to Config.KillWait or until ctx ends.
func (s *Supervisor) waitEmpty(ctx context.Context, name string) error {
	deadline := time.Now().Add(s.cfg.KillWait)
	for {
		pids, err := s.Processes(ctx, name)
		if err == nil && len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = fmt.Errorf("%d processes left (%v)", len(pids), pids)
			}
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// writeCgroupKill kills the unit's cgroup through cgroup.kill (cgroup v2,
// kernel 5.14+), without systemd, at systemd's usual path for the unit.
func (s *Supervisor) writeCgroupKill(ctx context.Context, name string) error {
	dir, err := s.cgroupDir(ctx, name)
	if err != nil {
		dir, err = s.cgroupMount()
		if err != nil {
			return err
		}
		dir = filepath.Join(dir, "system.slice", name)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("write %s/cgroup.kill: %w", dir, err)
	}
	return nil
}

// waitInactive polls until the unit is inactive or failed (true), the
// duration passes (false) or ctx ends (error).
func (s *Supervisor) waitInactive(ctx context.Context, name string, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		p, err := s.read(ctx, name)
		if err != nil {
			return false, err
		}
		s.observe(name, p)
		if (p.activeState == "inactive" || p.activeState == "failed") && p.subState != "auto-restart" {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
