package units

import (
	"context"
	"fmt"
	"time"
)

// observe folds a fresh reading into the unit's status and metrics.
func (s *Supervisor) observe(name string, p props) {
	s.mu.Lock()
	st, ok := s.units[name]
	if !ok {
		s.mu.Unlock()
		return
	}
	if p.seq < st.lastSeq {
		// A reading that started before one already applied (the watcher
		// and a Start/Stop read concurrently): applying it would replay an
		// old transition.
		s.mu.Unlock()
		return
	}
	st.lastSeq = p.seq
	prev := st.st
	st.st.ActiveState, st.st.SubState, st.st.MainPID = p.activeState, p.subState, p.mainPID
	if st.known && p.nRestarts > st.nRestarts {
		d := uint64(p.nRestarts - st.nRestarts)
		st.st.Restarts += d
		s.m.restarts.WithLabelValues(name).Add(float64(d))
	}
	st.nRestarts = p.nRestarts
	failedNow := p.subState == "auto-restart" || p.activeState == "failed"
	failedBefore := prev.SubState == "auto-restart" || prev.ActiveState == "failed"
	if st.known && !st.intentional {
		s.countFailures(name, st, p, failedNow && !failedBefore)
	}
	st.known = true
	intentional := st.intentional
	active := 0.0
	if p.activeState == "active" {
		active = 1
	}
	s.m.active.WithLabelValues(name).Set(active)
	cur := st.st
	s.mu.Unlock()
	if cur.ActiveState != prev.ActiveState || cur.SubState != prev.SubState || cur.MainPID != prev.MainPID {
		s.log.Debug("unit state", "unit", name, "active_state", cur.ActiveState, "sub_state", cur.SubState,
			"main_pid", cur.MainPID, "restarts", cur.Restarts, "failures", cur.Failures)
		if failedNow && !failedBefore {
			s.log.Info("unit process exited", "unit", name, "sub_state", cur.SubState,
				"exit_status", p.execMainStatus, "requested", intentional)
		}
		if s.notify != nil {
			s.notify(cur)
		}
	}
}

// countFailures counts the exits nobody asked for up to reading p; newly
// is true when p is the first reading of a failed state. Called with mu
// held.
func (s *Supervisor) countFailures(name string, st *unitState, p props, newly bool) {
	// Every automatic restart follows an exit nobody asked for, even when
	// the readings missed the failed/auto-restart state between.
	f := st.st.Failures
	if newly {
		f++
	}
	// In auto-restart the pending restart is counted through NRestarts
	// (systemd increments it while still in auto-restart); only a final
	// "failed" adds one more.
	bound := st.st.Restarts
	if p.activeState == "failed" {
		bound++
	}
	f = max(f, bound)
	if d := f - st.st.Failures; d > 0 {
		st.st.Failures = f
		s.m.failures.WithLabelValues(name).Add(float64(d))
	}
}

// watch follows property-change signals of registered units, re-reads them
// all every ResyncInterval and after reconnections.
func (s *Supervisor) watch() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.ResyncInterval)
	defer t.Stop()
	refresh := func(names ...string) {
		for _, n := range names {
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ResyncInterval)
			p, err := s.read(ctx, n)
			cancel()
			if err == nil {
				s.observe(n, p)
			}
		}
	}
	all := func() []string {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := make([]string, 0, len(s.units))
		for n := range s.units {
			out = append(out, n)
		}
		return out
	}
	for {
		select {
		case <-s.ctx.Done():
			return
		case u := <-s.updates:
			s.mu.Lock()
			_, ok := s.units[u.UnitName]
			s.mu.Unlock()
			if ok {
				refresh(u.UnitName)
			}
		case err := <-s.subErrs:
			s.log.Debug("subscription", "err", err)
		case <-s.kick:
			refresh(all()...)
		case <-t.C:
			refresh(all()...)
		}
	}
}

// Healthy reports whether the unit is active now and its probe passes (one
// probe, bounded by Config.ProbeTimeout). The agent polls it for the
// apiserver's part of this node's eligibility.
func (s *Supervisor) Healthy(ctx context.Context, name string) error {
	st, err := s.unit(name)
	if err != nil {
		return err
	}
	p, err := s.read(ctx, name)
	if err != nil {
		return err
	}
	s.observe(name, p)
	if p.activeState != "active" {
		return fmt.Errorf("units: %s: %s/%s", name, p.activeState, p.subState)
	}
	s.mu.Lock()
	probe := st.u.Health
	s.mu.Unlock()
	if probe == nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
	defer cancel()
	if err := probe.Check(pctx); err != nil {
		return fmt.Errorf("units: %s: unhealthy: %w", name, err)
	}
	return nil
}
