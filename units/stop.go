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

// Stop stops the unit and waits until systemd reports it inactive, then
// resets a failed state (so the unit shows inactive and its next start
// owes nothing to an earlier failure). Stopping an inactive or
// unknown-to-systemd unit succeeds.
//
// A leader-only unit is killed at once, without a SIGTERM grace (see
// killGroup): a stop job, SIGKILL to its whole control group, and up to
// Config.LeaderKillWait for the group to be empty and the unit inactive.
// Any other unit (kube-apiserver) stops gracefully: a stop job (SIGTERM),
// after Config.StopGrace SIGKILL to every process in its control group,
// then up to Config.KillWait for systemd to see it inactive. Neither waits
// for systemd's default 90 s stop timeout.
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
	t0 := time.Now()
	if leaderOnly {
		err = s.killNow(ctx, name)
	} else {
		err = s.stopGracefully(ctx, name)
	}
	if err != nil {
		return fmt.Errorf("units: stop %s: %w", name, err)
	}
	_ = s.do(ctx, func(c *sdbus.Conn) error { return c.ResetFailedUnitContext(ctx, name) })
	d := time.Since(t0)
	s.m.stopDuration.WithLabelValues(name).Observe(d.Seconds())
	s.log.Info("unit stopped", "unit", name, "killed", leaderOnly, "seconds", d.Seconds())
	return nil
}

// stopGracefully is Stop of a unit that is not leader-only: SIGTERM
// through a stop job, SIGKILL to the cgroup after Config.StopGrace.
func (s *Supervisor) stopGracefully(ctx context.Context, name string) error {
	err := s.do(ctx, func(c *sdbus.Conn) error {
		_, err := c.StopUnitContext(ctx, name, "replace", nil)
		return err
	})
	if err != nil && !isNoSuchUnit(err) {
		return err
	}
	done, err := s.waitInactive(ctx, name, s.cfg.StopGrace)
	if err != nil {
		return err
	}
	if done {
		return nil
	}
	s.log.Info("unit did not stop within grace, killing its cgroup", "unit", name, "grace_seconds", s.cfg.StopGrace.Seconds())
	err = s.do(ctx, func(c *sdbus.Conn) error {
		return c.KillUnitWithTarget(ctx, name, sdbus.All, int32(syscall.SIGKILL))
	})
	if err != nil {
		return fmt.Errorf("kill cgroup: %w", err)
	}
	done, err = s.waitInactive(ctx, name, s.cfg.KillWait)
	if err != nil {
		return err
	}
	if !done {
		return fmt.Errorf("still not inactive %s after SIGKILL", s.cfg.KillWait)
	}
	return nil
}

// killNow is Stop of a leader-only unit: killGroup, then the wait for
// systemd to report the unit inactive (not auto-restart), all within
// Config.LeaderKillWait of the kill. Stop's reset-failed follows: a unit
// killed while a stop job runs ends "failed" (result signal).
func (s *Supervisor) killNow(ctx context.Context, name string) error {
	deadline, err := s.killGroup(ctx, name, s.cfg.LeaderKillWait)
	if err != nil {
		return err
	}
	done, err := s.waitInactive(ctx, name, time.Until(deadline))
	if err != nil {
		return err
	}
	if !done {
		return fmt.Errorf("control group empty but unit not inactive %s after SIGKILL", s.cfg.LeaderKillWait)
	}
	return nil
}

// Kill stops the unit without a grace, as Stop does a leader-only unit
// (killGroup), but waits up to Config.KillWait, or until ctx ends, for the
// control group to be empty and no longer: it succeeds when the unit has
// no processes left, whatever systemd says of it. It is the escalation of
// a Stop that failed or ran out of time, so it does not wait for a Stop in
// progress on the same unit, which may be stuck on a systemd that does not
// answer.
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
	if _, err := s.killGroup(ctx, name, s.cfg.KillWait); err != nil {
		return fmt.Errorf("units: kill %s: %w", name, err)
	}
	return nil
}

// killGroup kills every process of the unit at once and waits, up to wait
// from the kill or until ctx ends, for its control group (sub-groups
// included) to be empty; it returns when that wait ends (the deadline).
//
//  1. It submits a stop job, first: with a stop job queued systemd does
//     not act on Restart= when the main process dies, so the kill below
//     cannot be undone by a restart, and a start job still running (a
//     role lost while its unit starts) is cancelled, so no process is
//     forked after the read below. The job sends the unit's KillSignal
//     (SIGTERM) by itself; SIGKILL follows within a D-Bus round trip, so
//     the component gets no grace to speak of.
//  2. It reads the unit's control group (ControlGroup).
//  3. It writes "1" to the group's cgroup.kill (cgroup v2, kernel 5.14+):
//     the kernel SIGKILLs every process of the group and its sub-groups
//     in one step, forks in flight included, whatever the unit's
//     KillMode, and without PID 1's help. Where the group has no
//     cgroup.kill (cgroup v1, an older kernel) it asks systemd to
//     SIGKILL the group instead (KillUnit who=all).
//  4. It polls the group's cgroup.procs files, with no D-Bus call, until
//     none lists a process.
//
// A step that fails does not stop the next ones: the processes must die
// even when systemd does not answer (when the group could not be read the
// kill goes to systemd's usual place for the unit, system.slice/<name>).
// The error joins every step's that failed, and the wait's.
func (s *Supervisor) killGroup(ctx context.Context, name string, wait time.Duration) (time.Time, error) {
	var errs []error
	err := s.do(ctx, func(c *sdbus.Conn) error {
		_, err := c.StopUnitContext(ctx, name, "replace", nil)
		return err
	})
	if err != nil && !isNoSuchUnit(err) {
		errs = append(errs, fmt.Errorf("stop job: %w", err))
	}
	dir, err := s.cgroupDir(ctx, name)
	if err != nil {
		errs = append(errs, err)
		if mnt, merr := s.cgroupMount(); merr == nil {
			dir = filepath.Join(mnt, "system.slice", name)
		}
	}
	killed, err := killCgroup(dir)
	if err != nil {
		errs = append(errs, err)
	}
	if !killed {
		err := s.do(ctx, func(c *sdbus.Conn) error {
			return c.KillUnitWithTarget(ctx, name, sdbus.All, int32(syscall.SIGKILL))
		})
		if err != nil && !isNoSuchUnit(err) && !isNotActive(err) {
			errs = append(errs, fmt.Errorf("kill cgroup over d-bus: %w", err))
		}
	}
	deadline := time.Now().Add(wait)
	if err := waitGroupEmpty(ctx, dir, deadline); err != nil {
		errs = append(errs, err)
		return deadline, errors.Join(errs...)
	}
	return deadline, nil
}

// killCgroup writes "1" to dir's cgroup.kill. killed is true when the
// kernel killed the group, or there is no group at dir (nothing to kill;
// systemd removes a unit's group once it is empty); false when the group
// exists without a cgroup.kill (cgroup v1, a kernel before 5.14), or dir
// is "" (the unit has no control group, or it is unknown).
func killCgroup(dir string) (killed bool, err error) {
	if dir == "" {
		return false, nil
	}
	// No O_CREATE: on a hierarchy without cgroup.kill the open fails with
	// ENOENT rather than trying to create the file.
	f, err := os.OpenFile(filepath.Join(dir, "cgroup.kill"), os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(dir); errors.Is(serr, os.ErrNotExist) {
			return true, nil
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open %s/cgroup.kill: %w", dir, err)
	}
	_, err = f.Write([]byte("1"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.ENODEV) || errors.Is(err, os.ErrNotExist) {
		return true, nil // the group was removed meanwhile: empty
	}
	if err != nil {
		return false, fmt.Errorf("write %s/cgroup.kill: %w", dir, err)
	}
	return true, nil
}

// waitGroupEmpty polls the control group at dir and its sub-groups until
// no process is left in them, until deadline or until ctx ends. A group
// that does not exist (dir "" or removed) is empty.
func waitGroupEmpty(ctx context.Context, dir string, deadline time.Time) error {
	for {
		pids, err := groupProcesses(dir)
		if err == nil && len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = fmt.Errorf("%d processes left in %s (%v)", len(pids), dir, pids)
			}
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
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
