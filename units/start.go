package units

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
)

// Start starts the unit and returns once it is active and its probe
// passes, or an error: the start job failed, the process exited (quoting
// the unit's journal, e.g. a flag the component rejected), or it was not
// healthy within Config.StartTimeout. term is exported as MASTERD_TERM to
// managed units (0 for units that follow no role). On error the unit is
// left as systemd has it (Restart=always keeps retrying a managed unit); the
// caller decides whether to Stop it. A Stop of the same unit overtakes a
// Start in progress: the Start returns an error at once and the Stop does
// not wait for it.
func (s *Supervisor) Start(ctx context.Context, name string, term uint64) error {
	st, err := s.unit(name)
	if err != nil {
		return err
	}
	// A Stop must never wait for a Start (a role lost while its unit is
	// still starting): Stop cancels this context before taking the lock.
	ctx, done := s.beginStart(ctx, st)
	defer done()
	st.op.Lock()
	defer st.op.Unlock()
	if err := context.Cause(ctx); err != nil && errors.Is(err, errStopped) {
		return fmt.Errorf("units: start %s: %w", name, err)
	}
	t0 := time.Now()
	s.mu.Lock()
	st.intentional = false
	u := st.u
	s.mu.Unlock()

	if u.Definition != nil {
		// Not under StartTimeout: a daemon-reload on a busy host can take
		// seconds and says nothing about the component.
		if err := s.install(ctx, u, term); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	w := &startWait{s: s, name: name, u: u, t0: t0}
	jobDone, err := w.submit(ctx)
	if err != nil {
		return err
	}
	return w.run(ctx, jobDone)
}

// beginStart makes ctx cancellable by a Stop of the same unit (cause
// errStopped); done forgets the cancel function again.
func (s *Supervisor) beginStart(ctx context.Context, st *unitState) (context.Context, func()) {
	ctx, abort := context.WithCancelCause(ctx)
	s.mu.Lock()
	st.starts++
	gen := st.starts
	st.abortStart = abort
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		if st.starts == gen {
			st.abortStart = nil
		}
		s.mu.Unlock()
		abort(nil)
	}
}

// startWait follows one Start from the start job until the unit is
// healthy, has failed, or StartTimeout has passed.
type startWait struct {
	s    *Supervisor
	name string
	u    Unit
	t0   time.Time

	baseline    uint32    // NRestarts of a unit already running when started
	firstStart  uint64    // ExecMainStartTimestampMonotonic of the first process seen
	activeSince time.Time // when "running" was first seen (units without a probe)
	lastProbe   error
	p           props // the last reading
}

// submit resets a failed state, takes the restart baseline and queues the
// start job; the channel receives the job's result.
func (w *startWait) submit(ctx context.Context) (<-chan string, error) {
	s, name := w.s, w.name
	_ = s.do(ctx, func(c *sdbus.Conn) error { return c.ResetFailedUnitContext(ctx, name) })
	// systemd resets NRestarts on a manual start of a stopped unit; starting
	// a unit that already runs changes nothing. Any restart beyond the
	// baseline during the wait means the process exited.
	pre, err := s.read(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("units: start %s: %w", name, err)
	}
	if pre.activeState == "active" || pre.activeState == "reloading" {
		w.baseline = pre.nRestarts
	}
	jobDone := make(chan string, 1)
	err = s.do(ctx, func(c *sdbus.Conn) error {
		_, err := c.StartUnitContext(ctx, name, "replace", jobDone)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("units: start %s: %w", name, err)
	}
	return jobDone, nil
}

// run polls the unit every ProbeInterval until check decides.
func (w *startWait) run(ctx context.Context, jobDone <-chan string) error {
	tick := time.NewTicker(w.s.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		if err := w.jobFailed(ctx, jobDone); err != nil {
			return err
		}
		if done, err := w.check(ctx); done {
			return err
		}
		select {
		case <-ctx.Done():
			return w.timeout(ctx)
		case <-tick.C:
		}
	}
}

// jobFailed returns the start error of a start job that finished other
// than "done", nil while it runs or when it succeeded.
func (w *startWait) jobFailed(ctx context.Context, jobDone <-chan string) error {
	select {
	case r := <-jobDone:
		if r != "done" {
			why := "start job " + r
			if p, err := w.s.read(ctx, w.name); err == nil && p.execMainStart != 0 {
				why += fmt.Sprintf(": process exited with status %d (%s)", p.execMainStatus, p.result)
			}
			return w.s.startError(w.name, w.t0, why)
		}
	default:
	}
	return nil
}

// check reads the unit once: done with nil once it is started, done with
// an error when its process exited or it cannot be read.
func (w *startWait) check(ctx context.Context) (done bool, err error) {
	s, name := w.s, w.name
	w.p, err = s.read(ctx, name)
	if err != nil {
		if ctx.Err() != nil {
			return true, w.timeout(ctx)
		}
		return true, fmt.Errorf("units: start %s: %w", name, err)
	}
	p := w.p
	s.observe(name, p)
	if w.firstStart == 0 && p.execMainStart != 0 {
		w.firstStart = p.execMainStart
	}
	switch {
	case p.activeState == "failed" || p.subState == "auto-restart":
		return true, s.startError(name, w.t0, fmt.Sprintf("process exited with status %d (%s)", p.execMainStatus, p.result))
	case p.nRestarts > w.baseline || (w.firstStart != 0 && p.execMainStart != w.firstStart):
		return true, s.startError(name, w.t0, fmt.Sprintf("process exited with status %d (%s) and was restarted", p.execMainStatus, p.result))
	case p.activeState == "active" && p.subState == "running" && w.ready(ctx):
		s.started(name, w.t0)
		return true, nil
	}
	return false, nil
}

// ready reports whether a running unit counts as started: its probe
// passes, or without a probe it has been running for Config.Settle (a
// process that exits right after its fork must not count as started).
func (w *startWait) ready(ctx context.Context) bool {
	if w.u.Health == nil {
		if w.activeSince.IsZero() {
			w.activeSince = time.Now()
		}
		return time.Since(w.activeSince) >= w.s.cfg.Settle
	}
	pctx, cancel := context.WithTimeout(ctx, w.s.cfg.ProbeTimeout)
	defer cancel()
	w.lastProbe = w.u.Health.Check(pctx)
	return w.lastProbe == nil
}

// timeout is the error of a Start whose context ended: overtaken by a Stop,
// or not healthy within StartTimeout.
func (w *startWait) timeout(ctx context.Context) error {
	if errors.Is(context.Cause(ctx), errStopped) {
		return fmt.Errorf("units: start %s: %w", w.name, errStopped)
	}
	why := fmt.Sprintf("not healthy within %s (state %s/%s)", w.s.cfg.StartTimeout, w.p.activeState, w.p.subState)
	if w.lastProbe != nil {
		why += ": last probe: " + w.lastProbe.Error()
	}
	return w.s.startError(w.name, w.t0, why)
}

func (s *Supervisor) started(name string, t0 time.Time) {
	d := time.Since(t0)
	s.m.startDuration.WithLabelValues(name).Observe(d.Seconds())
	s.log.Info("unit started", "unit", name, "seconds", d.Seconds())
}

// startError builds a start error quoting the unit's journal since t0.
func (s *Supervisor) startError(name string, t0 time.Time, why string) error {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	var j string
	if s.cfg.JournalLines > 0 {
		// journald may lag the exit by a moment.
		for i := 0; i < 10; i++ {
			j, _ = s.journal(ctx, name, t0, s.cfg.JournalLines)
			if strings.TrimSpace(j) != "" {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// One line: the error goes into one log line of the agent. Each journal
	// line with its whitespace collapsed, empty ones dropped, " | " between.
	var lines []string
	for _, l := range strings.Split(j, "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	if j = strings.Join(lines, " | "); j != "" {
		return fmt.Errorf("units: start %s: %s; journal: %s", name, why, j)
	}
	return fmt.Errorf("units: start %s: %s", name, why)
}

// journalctl reads the unit's journal lines since t0 with journalctl.
func (s *Supervisor) journalctl(ctx context.Context, unit string, since time.Time, lines int) (string, error) {
	args := []string{"--no-pager", "-q", "-o", "cat", "-u", unit,
		"--since", "@" + strconv.FormatInt(since.Add(-time.Second).Unix(), 10), "-n", strconv.Itoa(lines)}
	if s.root != "" {
		args = append(args, "--root", s.root)
	}
	out, err := exec.CommandContext(ctx, "journalctl", args...).Output()
	return string(bytes.TrimSpace(out)), err
}

// Restart stops the unit (as Stop) and starts it again (as Start).
func (s *Supervisor) Restart(ctx context.Context, name string, term uint64) error {
	if err := s.Stop(ctx, name); err != nil {
		return err
	}
	return s.Start(ctx, name, term)
}
