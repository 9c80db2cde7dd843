package etcdembed

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// moveStatusTimeout bounds the status request that tells whether a member
// is fit to lead: a live member on the masters' LAN answers in
// milliseconds.
const moveStatusTimeout = 500 * time.Millisecond

// MoveLeader hands etcd's raft leadership from this member, if it leads,
// to the fittest other voting member: one whose client endpoint answers a
// status request within moveStatusTimeout and reports no error, and among
// those the one with the highest applied index (the least catching up to
// do). It returns that member's name once it leads, or "" and nil when this
// member does not lead (nothing to move). etcd's MoveLeader waits for the
// transfer: the new leader is elected, without a full election timeout,
// before it returns.
//
// masterd calls it so the VIP holder is not also etcd's leader: a crash of
// that one master would otherwise cost a VIP failover and an etcd
// election at once.
func (m *Member) MoveLeader(ctx context.Context) (string, error) {
	m.mu.Lock()
	e, cli := m.etcd, m.client
	m.mu.Unlock()
	if e == nil || cli == nil {
		return "", errors.New("etcdembed: move leader: local member not running")
	}
	self := uint64(e.Server.MemberID())
	if uint64(e.Server.Leader()) != self {
		return "", nil
	}
	list, err := cli.MemberList(ctx)
	if err != nil {
		return "", fmt.Errorf("etcdembed: move leader: list members: %w", err)
	}
	var (
		best        uint64
		bestName    string
		bestApplied uint64
		unfit       []error
	)
	for _, mem := range list.Members {
		if mem.ID == self || mem.IsLearner {
			continue
		}
		if len(mem.ClientURLs) == 0 {
			unfit = append(unfit, fmt.Errorf("%s: not started", mem.Name))
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, moveStatusTimeout)
		st, err := cli.Status(sctx, mem.ClientURLs[0])
		cancel()
		switch {
		case err != nil:
			unfit = append(unfit, fmt.Errorf("%s: %w", mem.Name, err))
		case len(st.Errors) > 0:
			unfit = append(unfit, fmt.Errorf("%s: %v", mem.Name, st.Errors))
		case best == 0 || st.RaftAppliedIndex > bestApplied:
			best, bestName, bestApplied = mem.ID, mem.Name, st.RaftAppliedIndex
		}
	}
	if best == 0 && len(unfit) == 0 {
		return "", errors.New("etcdembed: move leader: no other voting member")
	}
	if best == 0 {
		return "", fmt.Errorf("etcdembed: move leader: no other voting member fit to lead: %w", errors.Join(unfit...))
	}
	t := time.Now()
	if _, err := cli.MoveLeader(ctx, best); err != nil {
		return "", fmt.Errorf("etcdembed: move leader to %s: %w", bestName, err)
	}
	m.log.Info("etcd leadership moved", "to", bestName, "seconds", time.Since(t).Seconds())
	return bestName, nil
}
