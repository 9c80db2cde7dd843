package etcdembed

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// healthKey is read (linearizably) to prove that a quorum answers.
const healthKey = "/masterd/etcdembed/health"

// stuckChecks is how many consecutive Health calls may see the applied index
// unchanged while behind the commit index before the member is unhealthy.
const stuckChecks = 3

// Health returns nil when the local member is healthy: it sees a leader, no
// alarm is raised, a linearizable read succeeds (quorum reachable) and its
// applied index is not stuck behind the commit index. It sets
// masterd_etcd_member_healthy. Call it periodically (every few seconds):
// the progress check compares with the previous call.
func (m *Member) Health(ctx context.Context) error {
	err := m.health(ctx)
	if err != nil {
		m.met.healthy.Set(0)
		return err
	}
	m.met.healthy.Set(1)
	return nil
}

func (m *Member) health(ctx context.Context) error {
	m.mu.Lock()
	e, cli := m.etcd, m.client
	m.mu.Unlock()
	if e == nil {
		return errors.New("etcdembed: health: member not running")
	}
	s := e.Server
	if s.Leader() == 0 {
		return errors.New("etcdembed: health: no leader")
	}
	if s.IsLearner() {
		return errors.New("etcdembed: health: member is a learner")
	}
	if alarms := s.Alarms(); len(alarms) > 0 {
		var errs []error
		for _, a := range alarms {
			errs = append(errs, fmt.Errorf("alarm %s on member %x", a.Alarm, a.MemberID))
		}
		return fmt.Errorf("etcdembed: health: %w", errors.Join(errs...))
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := cli.Get(rctx, healthKey); err != nil {
		return fmt.Errorf("etcdembed: health: linearizable read: %w", err)
	}
	applied, committed := s.AppliedIndex(), s.CommittedIndex()
	m.mu.Lock()
	if applied < committed && applied == m.applied {
		m.stuck++
	} else {
		m.stuck = 0
	}
	m.applied = applied
	stuck := m.stuck
	m.mu.Unlock()
	if stuck >= stuckChecks {
		return fmt.Errorf("etcdembed: health: applied index %d stuck behind commit index %d", applied, committed)
	}
	return nil
}
