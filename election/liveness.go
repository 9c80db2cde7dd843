package election

import "time"

// Peer liveness: which masters this node can tell are gone, reported
// through Callbacks.OnPeerDown so the agent's balancer dials no dead
// master's apiserver.
//
// A node hears a peer only where the protocol makes the peer talk to it:
// the holder of a role it follows heartbeats it every retryPeriod, and every
// voter acknowledges the heartbeats of a role it leads. Such a peer that
// stays silent for silentRounds retry periods is reported down — before its
// lease lapses (leaseDuration spans more than silentRounds retry periods in
// every profile), so the next VIP holder knows the old one is gone before
// it takes the address. Gossip reports the rest: memberlist declares a
// member dead after its suspicion timeout (seconds), or it left.
//
// A report is an edge: one per death. Hearing from the peer again, or
// gossip seeing it alive again, re-arms it. Only messages the election
// accepted count as hearing (a replayed heartbeat of a dead master is
// rejected and keeps nobody alive). The report is an optimisation, never a
// safety input: a wrong one costs the balancer a backend until its next
// passing health checks.
const silentRounds = 3

// Reasons passed to OnPeerDown.
const (
	// PeerSilent: an expected heartbeat or acknowledgement stopped.
	PeerSilent = "silent"
	// PeerGossipDead: memberlist lists the peer dead or left, or not at all.
	PeerGossipDead = "gossip"
)

// liveness is owned by the driver's loop goroutine.
type liveness struct {
	heard    map[string]time.Duration // latest accepted message per peer
	expected map[string]expectation
	down     map[string]bool // reported, not heard from or seen alive since
	gone     map[string]bool // gossip's latest view: not alive
	next     time.Duration   // when check must run again
}

// expectation: the peer should be heard at least every every, counting
// from since (when it became expected) at the earliest.
type expectation struct{ since, every time.Duration }

func newLiveness() *liveness {
	return &liveness{heard: map[string]time.Duration{}, expected: map[string]expectation{},
		down: map[string]bool{}, gone: map[string]bool{}}
}

// hear records an accepted message from peer.
func (l *liveness) hear(peer string, now time.Duration) {
	l.heard[peer] = now
	delete(l.down, peer)
}

// gossip records memberlist's view of voter peer and reports whether the
// peer just went down by it (and was not reported down already).
func (l *liveness) gossip(peer string, alive bool) bool {
	was := l.gone[peer]
	l.gone[peer] = !alive
	if alive {
		if was {
			delete(l.down, peer)
		}
		return false
	}
	if was || l.down[peer] {
		return false
	}
	l.down[peer] = true
	return true
}

// check updates whom this node expects to hear from, given its roles'
// status and timings, and returns the peers that fell silent. It sets
// l.next to when it must run again: the earliest silence deadline, and at
// least every fastest retry period so a new expectation is noticed.
func (l *liveness) check(now time.Duration, self string, voters []string, st map[string]RoleStatus, timings map[string]Timing) []string {
	want := map[string]time.Duration{}
	every := func(peer string, d time.Duration) {
		if peer == "" || peer == self {
			return
		}
		if cur, ok := want[peer]; !ok || d < cur {
			want[peer] = d
		}
	}
	fastest := time.Duration(0)
	for role, s := range st {
		t, ok := timings[role]
		if !ok || t.RetryPeriod <= 0 {
			continue
		}
		if fastest == 0 || t.RetryPeriod < fastest {
			fastest = t.RetryPeriod
		}
		if s.Leader {
			for _, v := range voters {
				every(v, t.RetryPeriod)
			}
			continue
		}
		every(s.Holder, t.RetryPeriod)
	}
	for peer := range l.expected {
		if _, ok := want[peer]; !ok {
			delete(l.expected, peer)
		}
	}
	l.next = now + fastest
	if fastest == 0 {
		l.next = now + time.Second
	}
	var silent []string
	for peer, d := range want {
		e, ok := l.expected[peer]
		if !ok {
			e.since = now
		}
		e.every = d
		l.expected[peer] = e
		if l.down[peer] {
			continue
		}
		due := max(l.heard[peer], e.since) + silentRounds*e.every
		if now >= due {
			l.down[peer] = true
			silent = append(silent, peer)
			continue
		}
		l.next = min(l.next, due)
	}
	return silent
}
