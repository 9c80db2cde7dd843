package election

import (
	"slices"
	"time"
)

// The simulation's model of a membership change as the operator's command
// drives it: publish the joint membership (old and new voter sets), wait
// until a quorum of it reports Settled, then publish the new voter set
// alone. Each master's agent hands a published membership to its node at
// its own time (a random delay up to a lease, some much later), so the
// hosts run with different voter sets while the change rolls — and a
// restarted or wiped master starts from what its disk or its configuration
// says. A master removed by the change is shut down for good in half the
// runs and left running (stale) in the other half.
func (s *sim) changeMembership() {
	t := s.o.timing
	old := s.initial.Voters
	var next []string
	switch s.o.change {
	case "replace": // the last old master is replaced by a new one
		next = append(slices.Clone(old[:len(old)-1]), s.voters[len(old)])
	case "add2":
		next = slices.Clone(s.voters)
	}
	at := t.LeaseDuration + time.Duration(s.rng.Int64N(int64(s.o.chaos/2)))
	s.whenAllHaveState(at, func() {
		joint := Membership{Epoch: 2, Voters: next, Old: old}
		if s.o.rules.naiveMembership {
			// Without joint consensus: straight to the new set.
			joint = Membership{Epoch: 2, Voters: next}
		}
		s.publish(joint)
		for _, h := range s.hosts {
			if !slices.Contains(old, h.id) {
				h.boot = joint // a joining master's configuration
				s.start(h)
			}
		}
		if s.o.rules.naiveMembership {
			s.retire(old, next)
			return
		}
		s.waitSettled(joint, func() {
			s.publish(Membership{Epoch: 3, Voters: next})
			s.retire(old, next)
		})
	})
}

// whenAllHaveState runs then at the first retry period from at when no
// master is without its state (wiped, or still learning its terms), as the
// operator's command checks before it starts a change: a new master joins
// without state, and two masters without state at once break the
// assumption that keeps terms unique.
func (s *sim) whenAllHaveState(at time.Duration, then func()) {
	var poll func()
	poll = func() {
		for _, h := range s.hosts {
			if _, stored := h.store[s.role]; h.joined && !h.retired && (!stored || s.learning(h)) {
				s.at(s.now+s.o.timing.RetryPeriod, poll)
				return
			}
		}
		then()
	}
	s.at(at, poll)
}

// publish makes m the agreed membership and hands it to every master of it
// after a random delay (a quarter of them up to three leases late).
func (s *sim) publish(m Membership) {
	s.published = m
	s.logf("PUBLISH membership %+v", m)
	for _, h := range s.hosts {
		if !slices.Contains(m.all(), h.id) {
			continue
		}
		d := time.Duration(s.rng.Int64N(int64(s.o.timing.LeaseDuration)))
		if s.rng.IntN(4) == 0 {
			d = time.Duration(s.rng.Int64N(int64(3 * s.o.timing.LeaseDuration)))
		}
		s.at(s.now+d, func() { s.deliver(h, m) })
	}
}

// deliver hands m to h's node (or keeps it for h's next start).
func (s *sim) deliver(h *host, m Membership) {
	if !slices.Contains(m.all(), h.id) {
		return // removed by m: its agent finds itself outside and stops
	}
	if !h.up {
		if h.pending == nil || h.pending.Epoch < m.Epoch {
			h.pending = &m
		}
		return
	}
	if err := h.node.SetMembership(h.local(s.now), m); err != nil {
		panic(err)
	}
	s.logf("%s adopts membership epoch %d", h.id, m.Epoch)
	s.process(h)
}

// waitSettled polls until a quorum of m reports Settled(m.Epoch), as the
// operator's command does through the masters' status, then runs then.
func (s *sim) waitSettled(m Membership, then func()) {
	var poll func()
	poll = func() {
		settled := m.hasQuorum(func(v string) bool {
			h := s.byID[v]
			return h.up && h.node.Settled(h.local(s.now), m.Epoch)
		})
		if settled {
			s.logf("membership epoch %d settled on a quorum", m.Epoch)
			then()
			return
		}
		s.at(s.now+s.o.timing.RetryPeriod, poll)
	}
	s.at(s.now+s.o.timing.RetryPeriod, poll)
}

// retire shuts the removed masters down for good in half the runs.
func (s *sim) retire(old, next []string) {
	for _, id := range old {
		if slices.Contains(next, id) || s.rng.IntN(2) == 0 {
			continue
		}
		h := s.byID[id]
		s.logf("%s RETIRED", id)
		s.crash(h)
		h.retired = true
	}
}
