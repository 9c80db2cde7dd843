package election

import (
	"time"
)

type roleStateKind uint8

const (
	stateFollower roleStateKind = iota
	statePreCandidate
	stateCandidate
	stateLeader
	stateReleasing
)

func (s roleStateKind) String() string {
	return [...]string{"follower", "precandidate", "candidate", "leader", "releasing"}[s]
}

// role is the state machine of one role on one node: voter, candidate and
// leader at once.
type role struct {
	n    *Node
	name string
	t    Timing
	hash uint64
	st   RoleState

	quietUntil time.Duration

	// Term learning after a start without state: the voters that answered
	// a TermQuery (true: with state of their own) and the highest term
	// they reported.
	learning   bool
	learnFrom  map[string]bool
	learnMax   uint64
	learnAgain time.Duration
	// Voter side: the promise currently given (to may be this node).
	promiseTo    string
	promiseTerm  uint64
	promiseUntil time.Duration
	// releasedBy remembers the highest term each peer released, so a late
	// Vote or Heartbeat of it cannot re-create the promise.
	releasedBy map[string]uint64
	// During a handover only successor may be granted, until successorUntil.
	successor      string
	successorUntil time.Duration

	// Own side.
	state      roleStateKind
	term       uint64 // term of the current or last own campaign
	maxSeen    uint64 // highest term learned from others
	seq        uint64
	sendTimes  map[uint64]time.Duration
	acked      map[string]time.Duration // voter -> latest acknowledged send time in term
	nacks      map[string]bool
	nackWait   time.Duration // longest promise to others reported by Nacks
	preOK      map[string]bool
	preNo      map[string]bool
	preTerm    uint64
	roundSeq   uint64
	roundStart time.Duration
	resendAt   time.Duration
	deadline   time.Duration
	nextBeat   time.Duration
	campaignAt time.Duration
	immediate  bool // successor of a handover: campaign now, no PreVote
	// handoverFrom/handoverTerm name the leader that handed the role to this
	// node: a Nack that only reflects its not-yet-received Release is retried
	// instead of counted.
	handoverFrom string
	handoverTerm uint64
	failures     int
	handoverTo   string

	healthy       bool
	healthChanged time.Duration
	betterSince   time.Duration // when a strictly better live peer was first seen (leader)
	leadSince     time.Duration // when this node last took the role
}

// strictlyBetter reports whether peer ranks before this node by health or
// priority (not merely by name).
func (r *role) strictlyBetter(peer string) bool {
	p, me := r.n.eligibility(peer, r.name), r.n.eligibility(r.n.cfg.ID, r.name)
	if p.Healthy != me.Healthy {
		return p.Healthy
	}
	return p.Priority > me.Priority
}

func (r *role) heardRecently(peer string, now time.Duration) bool {
	t, ok := r.n.lastHeard[peer]
	return ok && now-t <= r.t.LeaseDuration
}

func (r *role) jitter(d time.Duration) time.Duration { return r.n.rand(d) }

// rankDelay orders candidates: the best-ranked eligible node waits nothing,
// each following one two retry periods more; unhealthy nodes come after all
// healthy ones. Bounded by 2·N·retryPeriod, so the best node's timer always
// fires first even when eligibility gossip is stale.
//
// The voter this node is promised to does not count ahead of it: if this
// node ends up campaigning, that leader stopped renewing, so after a leader
// dies the next-best node does not wait for it. Every other better voter
// counts, heard from lately or not: followers only hear the leader, so
// "not heard within a lease" would make every follower rank itself first
// and the survivors of a dead leader would split the vote (a lost round,
// about a second with the default timings). A better voter that really is
// down costs two retry periods.
func (r *role) rankDelay() time.Duration {
	rank := 0
	for _, v := range r.n.ranked(r.name) {
		if v == r.n.cfg.ID {
			break
		}
		if v == r.promiseTo && r.promiseTo != "" {
			continue
		}
		rank++
	}
	return time.Duration(rank) * 2 * r.t.RetryPeriod
}

func (r *role) promiseActive(now time.Duration) bool {
	return now < r.promiseUntil && r.promiseTo != ""
}

// bound reports whether this voter's promise to another node forbids it
// to back from now.
func (r *role) bound(now time.Duration, from string) bool {
	return r.promiseActive(now) && r.promiseTo != from && !r.n.rules.noPromise
}

// quiet reports whether this node may send nothing binding for the role:
// in its restart quiet period, or still learning its term.
func (r *role) quiet(now time.Duration) bool { return now < r.quietUntil || r.learning }

// olderEpoch reports whether m's sender counts quorums of a membership
// older than the newest this node knows: its Votes and Heartbeats are
// refused, so once a quorum of the newer membership refuses, the older one
// cannot form a quorum any more.
func (r *role) olderEpoch(m Message) bool { return m.Epoch < r.n.floor }

// stale reports whether a newer membership than this node's is known to
// exist: it then campaigns for nothing (its quorums may no longer intersect
// the current ones) until it is given that membership.
func (r *role) stale() bool { return r.n.mem.Epoch < r.n.floor }

// startLearning asks every voter for its highest term.
func (r *role) startLearning(now time.Duration) {
	r.learning = true
	r.learnFrom = map[string]bool{}
	r.learnMax = 0
	r.askTerms(now)
}

func (r *role) askTerms(now time.Duration) {
	r.learnAgain = now + r.t.RetryPeriod
	for _, v := range r.n.mem.all() {
		if v != r.n.cfg.ID && !r.learnFrom[v] {
			r.n.send(r, Message{Type: MsgTermQuery, To: v, Seq: r.n.nonce})
		}
	}
	r.maybeLearned(now)
}

// maybeLearned ends learning once the answers cover every term a quorum may
// have granted without this node: for each voter set c, more than |c|−Q_c
// answers from voters with state (a term needs Q_c grants in c, at most one
// of them this node's). Two more cases end it: an answer from every other
// voter (nothing more can be learned), and, for each voter set, more than
// |c|−Q_c voters without state, this one included — under the assumption
// that at most N−Q voters are without state at once, that is a cluster
// that has never granted anything (a first boot, some masters not up yet).
// The learned maximum is persisted as maxTerm with no vote, so the node
// never grants a term it may already have granted, nor campaigns for one.
func (r *role) maybeLearned(now time.Duration) {
	if !r.learning {
		return
	}
	id := r.n.cfg.ID
	enough, fresh := true, true
	for _, c := range r.n.mem.configs() {
		known, without := 0, 0
		for _, v := range c {
			switch ok, answered := r.learnFrom[v]; {
			case v == id:
				without++
			case answered && ok:
				known++
			case answered:
				without++
			}
		}
		need := len(c) - majority(len(c)) + 1
		if known < need {
			enough = false
		}
		if without < need {
			fresh = false
		}
	}
	all := true
	for _, v := range r.n.mem.all() {
		if _, ok := r.learnFrom[v]; v != id && !ok {
			all = false
		}
	}
	if !enough && !fresh && !all {
		return
	}
	r.learning = false
	r.learnFrom = nil
	if m := max(r.learnMax, r.maxSeen); m > r.st.MaxTerm {
		r.st.MaxTerm, r.st.VotedFor = m, ""
	}
	r.st.LeaseDuration = max(r.st.LeaseDuration, r.t.LeaseDuration)
	r.persist()
	if r.state == stateFollower {
		r.reschedule(now)
	}
}

func (r *role) handoverWindow() time.Duration { return min(4*r.t.RetryPeriod, r.t.LeaseDuration) }

func (r *role) next() time.Duration {
	if r.learning {
		return min(r.learnAgain, r.campaignAt)
	}
	switch r.state {
	case stateLeader:
		return min(r.deadline, r.nextBeat)
	case statePreCandidate, stateCandidate:
		return min(r.resendAt, r.roundStart+r.t.RenewDeadline)
	case stateReleasing:
		return 1<<62 - 1
	}
	return r.campaignAt
}

// reschedule sets the follower's campaign timer after the promise it holds.
func (r *role) reschedule(now time.Duration) {
	base := max(now, r.quietUntil)
	if r.promiseActive(now) {
		base = max(base, r.promiseUntil)
	}
	r.campaignAt = base + r.rankDelay() + r.jitter(r.t.RetryPeriod/2)
}

func (r *role) persist() { r.n.dirty = true }

func (r *role) tick(now time.Duration) {
	switch r.state {
	case stateLeader:
		r.tickLeader(now)
	case statePreCandidate, stateCandidate:
		r.tickCandidate(now)
	case stateFollower:
		r.tickFollower(now)
	}
}

func (r *role) tickFollower(now time.Duration) {
	if r.learning && now >= r.learnAgain {
		r.askTerms(now)
	}
	if now < r.campaignAt {
		return
	}
	if r.n.withdrawn || r.n.rules.neverCampaign {
		r.campaignAt = now + r.t.LeaseDuration
		return
	}
	if r.quiet(now) || r.stale() || (r.promiseActive(now) && r.promiseTo != r.n.cfg.ID) || r.successorBlocks(now, r.n.cfg.ID) {
		r.immediate = false
		r.reschedule(now)
		return
	}
	if r.immediate || len(r.n.mem.all()) == 1 {
		r.immediate = false
		r.campaign(now)
		return
	}
	r.preVote(now)
}

func (r *role) successorBlocks(now time.Duration, who string) bool {
	return r.successor != "" && now < r.successorUntil && r.successor != who
}

func (r *role) nextTerm() uint64 { return max(r.st.MaxTerm, r.st.LastTerm, r.maxSeen, r.term) + 1 }

func (r *role) preVote(now time.Duration) {
	r.state = statePreCandidate
	r.preTerm = r.nextTerm()
	clear(r.preOK)
	clear(r.preNo)
	r.preOK[r.n.cfg.ID] = true
	r.seq++
	r.roundSeq = r.seq
	r.roundStart = now
	r.resendAt = now + r.t.RetryPeriod
	r.n.broadcast(r, Message{Type: MsgPreVote, Term: r.preTerm, Seq: r.roundSeq})
}

func (r *role) campaign(now time.Duration) {
	if r.quiet(now) || r.stale() || (r.promiseActive(now) && r.promiseTo != r.n.cfg.ID) {
		r.state = stateFollower
		r.reschedule(now)
		return
	}
	id := r.n.cfg.ID
	r.term = max(r.nextTerm(), r.preTerm)
	r.st.MaxTerm, r.st.VotedFor, r.st.LastTerm, r.st.LeaseDuration = r.term, id, r.term, r.t.LeaseDuration
	r.persist()
	// The candidacy is a promise to itself, set atomically with the campaign.
	r.promiseTo, r.promiseTerm, r.promiseUntil = id, r.term, now+r.t.LeaseDuration
	r.state = stateCandidate
	clear(r.acked)
	clear(r.nacks)
	clear(r.sendTimes)
	r.nackWait = 0
	r.seq++
	r.roundSeq = r.seq
	r.sendTimes[r.seq] = now // lease start: before the Vote is handed over
	r.acked[id] = now
	r.roundStart = now
	r.resendAt = now + r.t.RetryPeriod
	r.n.broadcast(r, Message{Type: MsgVote, Term: r.term, Seq: r.roundSeq})
	r.maybeLead(now)
}

func (r *role) tickCandidate(now time.Duration) {
	if now >= r.roundStart+r.t.RenewDeadline {
		r.giveUp(now)
		return
	}
	if now >= r.resendAt {
		// Resend to voters that have not answered this round; Grants still
		// count from the first send time. Only the current round's answers
		// count: a candidate resends its Vote to a voter that said yes to
		// its PreVote (preOK is the previous round's bookkeeping). A Vote
		// the voter's replay check dropped while it asked this new
		// incarnation for proof (verified) is answered only when resent.
		r.resendAt = now + r.t.RetryPeriod
		typ, term := MsgPreVote, r.preTerm
		if r.state == stateCandidate {
			typ, term = MsgVote, r.term
		}
		for _, v := range r.n.mem.all() {
			if v == r.n.cfg.ID || r.answered(v) {
				continue
			}
			r.n.send(r, Message{Type: typ, To: v, Term: term, Seq: r.roundSeq})
		}
	}
}

// answered reports whether voter v answered the current round: a Grant or
// Nack to the Vote (candidate), a PreVoteResp (precandidate).
func (r *role) answered(v string) bool {
	if r.state == stateCandidate {
		return r.acked[v] != 0 || r.nacks[v]
	}
	return r.preOK[v] || r.preNo[v]
}

// giveUp abandons a campaign: Release to every voter (it never acts on the
// term again), then back off exponentially, timed from the Nacks' remaining.
func (r *role) giveUp(now time.Duration) {
	if r.state == stateCandidate {
		r.n.broadcast(r, Message{Type: MsgRelease, Term: r.term})
		r.releasedBy[r.n.cfg.ID] = r.term
		if r.promiseTo == r.n.cfg.ID && r.promiseTerm == r.term {
			r.promiseUntil = now
		}
	}
	r.state = stateFollower
	r.handoverFrom = ""
	r.failures = min(r.failures+1, 6)
	backoff := min(r.t.RetryPeriod<<r.failures, r.t.LeaseDuration)
	wait := max(backoff, min(r.nackWait, r.t.LeaseDuration))
	r.campaignAt = max(now+wait, r.quietUntil) + r.rankDelay() + r.jitter(r.t.RetryPeriod)
}

// leaseStart is the Q-th latest acknowledged send time in the current term
// (per voter set of the membership; the earliest of them during a change).
func (r *role) leaseStart() (time.Duration, bool) {
	return r.n.mem.leaseStart(r.acked)
}

func (r *role) maybeLead(now time.Duration) {
	start, ok := r.leaseStart()
	if !ok {
		return
	}
	deadline := start + r.t.RenewDeadline
	if now >= deadline {
		return // too late: the round times out and gives up
	}
	r.state = stateLeader
	r.handoverFrom = ""
	r.failures = 0
	r.leadSince, r.betterSince = now, 0
	r.deadline = deadline
	r.nextBeat = r.sendTimes[r.roundSeq] + r.t.RetryPeriod
	r.n.change(RoleChange{Role: r.name, Kind: Acquired, Term: r.term, Deadline: deadline})
	if now >= r.nextBeat {
		r.heartbeat(now)
	}
}

func (r *role) tickLeader(now time.Duration) {
	if now >= r.deadline {
		r.lapse(now, "")
		return
	}
	// Ill health counts from the later of its start and this term's start:
	// a node that won while unhealthy (no healthy peer could) leads a full
	// lease before it hands over, so two recovering masters never pass the
	// role back and forth every round trip.
	if !r.healthy && now-max(r.healthChanged, r.leadSince) >= r.t.LeaseDuration {
		if best := r.bestPeer(); best != "" && r.n.eligibility(best, r.name).Healthy {
			r.lapse(now, best)
			return
		}
	}
	// Preemption only through handover: a live peer strictly better by
	// (health, priority) — never by name — for a whole lease gets the role.
	if best := r.bestPeer(); best != "" && r.strictlyBetter(best) && r.heardRecently(best, now) {
		if r.betterSince == 0 {
			r.betterSince = now
		} else if now-r.betterSince >= r.t.LeaseDuration {
			r.betterSince = 0
			r.lapse(now, best)
			return
		}
	} else {
		r.betterSince = 0
	}
	if now >= r.nextBeat {
		r.heartbeat(now)
	}
}

func (r *role) heartbeat(now time.Duration) {
	id := r.n.cfg.ID
	r.seq++
	r.sendTimes[r.seq] = now
	r.acked[id] = now
	r.promiseTo, r.promiseTerm, r.promiseUntil = id, r.term, now+r.t.LeaseDuration
	r.nextBeat = now + r.t.RetryPeriod
	for s, t := range r.sendTimes {
		if now-t > r.t.LeaseDuration {
			delete(r.sendTimes, s)
		}
	}
	r.n.broadcast(r, Message{Type: MsgHeartbeat, Term: r.term, Seq: r.seq})
	r.recompute(now)
}

func (r *role) recompute(now time.Duration) {
	start, ok := r.leaseStart()
	if !ok {
		return
	}
	if d := start + r.t.RenewDeadline; d > r.deadline && now < r.deadline {
		r.deadline = d
		r.n.change(RoleChange{Role: r.name, Kind: Renewed, Term: r.term, Deadline: d})
	}
}

// lapse lets the role go: a Lost change; Release follows in released().
func (r *role) lapse(now time.Duration, successor string) {
	r.state = stateReleasing
	r.handoverTo = successor
	r.n.change(RoleChange{Role: r.name, Kind: Lost, Term: r.term})
	if r.n.rules.noReleaseOnLapse {
		r.released(now, r.term)
	}
}

func (r *role) released(now time.Duration, term uint64) {
	if r.state != stateReleasing || term != r.term {
		return
	}
	id := r.n.cfg.ID
	r.n.broadcast(r, Message{Type: MsgRelease, Term: term, Successor: r.handoverTo})
	r.releasedBy[id] = term
	if r.promiseTo == id && r.promiseTerm == term {
		r.promiseUntil = now
	}
	r.state = stateFollower
	if r.handoverTo != "" {
		r.successor, r.successorUntil = r.handoverTo, now+r.handoverWindow()
	}
	r.handoverTo = ""
	r.reschedule(now)
	if r.successor != "" && now < r.successorUntil {
		r.campaignAt = max(r.campaignAt, r.successorUntil)
	}
}

// releaseFailed ends a release that could not be verified: no Release is
// sent, the promises given for the term run out on their own.
func (r *role) releaseFailed(now time.Duration, term uint64) {
	if r.state != stateReleasing || term != r.term {
		return
	}
	r.releasedBy[r.n.cfg.ID] = term
	r.state = stateFollower
	r.handoverTo = ""
	r.reschedule(now)
}

// bestPeer is the best-ranked other voter heard from within a lease (or
// the best-ranked one at all if none was).
func (r *role) bestPeer() string {
	first := ""
	for _, v := range r.n.ranked(r.name) {
		if v == r.n.cfg.ID {
			continue
		}
		if first == "" {
			first = v
		}
		if t, ok := r.n.lastHeard[v]; ok && r.n.now-t <= r.t.LeaseDuration {
			return v
		}
	}
	return first
}

func (r *role) step(now time.Duration, m Message) {
	r.maxSeen = max(r.maxSeen, m.MaxTerm)
	if m.Type == MsgVote || m.Type == MsgHeartbeat {
		r.maxSeen = max(r.maxSeen, m.Term)
	}
	switch m.Type {
	case MsgTermQuery:
		known := max(r.st.MaxTerm, r.st.LastTerm, r.maxSeen, r.term)
		if r.learning {
			known = max(known, r.learnMax)
		}
		r.n.send(r, Message{Type: MsgTermReply, To: m.From, Seq: m.Seq, OK: !r.learning, MaxTerm: known})
	case MsgTermReply:
		if r.learning && m.Seq == r.n.nonce {
			r.learnFrom[m.From] = m.OK
			r.learnMax = max(r.learnMax, m.MaxTerm)
			r.maybeLearned(now)
		}
	case MsgPreVote:
		if !r.n.proven(m) {
			// A PreVote comes a round trip before the sender's Vote: ask
			// an unproven incarnation (one that restarted, or any peer
			// after this node restarted) for its proof now, before the
			// answer, so its TermReply precedes the Vote and the Vote is
			// not dropped by verified, which would cost the candidate a
			// retry period. Asking binds nothing.
			r.n.askProof(now, r, m.From)
		}
		if r.quiet(now) || r.bound(now, m.From) || r.successorBlocks(now, m.From) {
			// Not yet, rather than no: this voter would say yes once its
			// promise (or quiet period, or handover window) runs out, which
			// after a leader dies is often a millisecond after the first
			// candidate asks (both promises ran from the same heartbeat). A
			// no would end the candidate's round (it never asks a voter that
			// said no again) and cost it a round plus a back-off, about 0.75 s
			// with the default timings; silence makes it ask again one retry
			// period later. PreVote binds nothing, so safety is unaffected.
			return
		}
		ok := m.Term > r.releasedBy[m.From] && !r.olderEpoch(m) &&
			(m.Term > r.st.MaxTerm || m.Term == r.st.MaxTerm && r.st.VotedFor == m.From)
		r.n.send(r, Message{Type: MsgPreVoteResp, To: m.From, Term: m.Term, Seq: m.Seq, OK: ok, MaxTerm: r.st.MaxTerm})
	case MsgVote, MsgHeartbeat:
		if !r.n.verified(now, r, m) {
			return // a fresh TermQuery asks the sender to prove it is alive
		}
		reply := MsgGrant
		if m.Type == MsgHeartbeat {
			reply = MsgAck
		}
		r.stepBinding(now, m, reply)
	case MsgRelease:
		r.stepRelease(now, m)
	case MsgPreVoteResp:
		if r.state != statePreCandidate || m.Seq != r.roundSeq || m.Term != r.preTerm {
			return
		}
		if m.OK {
			r.preOK[m.From] = true
		} else {
			r.preNo[m.From] = true
		}
		if r.n.mem.hasQuorum(func(v string) bool { return r.preOK[v] }) {
			r.campaign(now)
		} else if r.n.mem.quorumLost(func(v string) bool { return r.preNo[v] }) {
			r.giveUp(now)
		}
	case MsgGrant, MsgAck:
		if (r.state != stateCandidate && r.state != stateLeader) || m.Term != r.term {
			return
		}
		sent, ok := r.sendTimes[m.Seq]
		if !ok {
			return
		}
		if sent > r.acked[m.From] {
			r.acked[m.From] = sent
		}
		if r.state == stateCandidate {
			r.maybeLead(now)
		} else {
			r.recompute(now)
		}
	case MsgNack:
		if m.Term != r.term {
			return
		}
		switch r.state {
		case stateLeader:
			if m.MaxTerm > r.term {
				r.lapse(now, "")
			}
		case stateCandidate:
			if m.PromisedTo != "" && m.PromisedTo == r.handoverFrom && m.PromisedTerm <= r.handoverTerm && m.MaxTerm <= r.term {
				// The voter has not seen the handover's Release yet: ask again soon.
				r.resendAt = min(r.resendAt, now+r.t.RetryPeriod/10)
				return
			}
			r.nacks[m.From] = true
			if m.PromisedTo != r.n.cfg.ID {
				r.nackWait = max(r.nackWait, m.Remaining)
			}
			if r.n.mem.quorumLost(func(v string) bool { return r.nacks[v] }) || m.MaxTerm > r.term {
				r.giveUp(now)
			}
		}
	}
}

// stepBinding answers a Vote or Heartbeat: a promise (Grant/Ack) or a Nack.
func (r *role) stepBinding(now time.Duration, m Message, reply MsgType) {
	nack := Message{Type: MsgNack, To: m.From, Term: m.Term, Seq: m.Seq, MaxTerm: r.st.MaxTerm}
	switch {
	case r.quiet(now):
		nack.Remaining = r.quietUntil - now
	case r.bound(now, m.From):
		nack.PromisedTo, nack.PromisedTerm, nack.Remaining = r.promiseTo, r.promiseTerm, r.promiseUntil-now
	case r.successorBlocks(now, m.From):
		nack.PromisedTo, nack.Remaining = r.successor, r.successorUntil-now
	case r.olderEpoch(m):
	case m.Term <= r.releasedBy[m.From]:
	case m.Term > r.st.MaxTerm || m.Term == r.st.MaxTerm && r.st.VotedFor == m.From ||
		m.Term == r.st.MaxTerm && r.st.VotedFor == "" && reply == MsgAck:
		// The last case: after learning its term without state this node
		// has no vote for it; acknowledging the leader of that term makes
		// no second winner (that leader won it already) and spares a
		// failover. A Vote for it is refused: that could be a second win.
		if m.Term != r.st.MaxTerm || r.st.VotedFor != m.From {
			r.st.MaxTerm, r.st.VotedFor, r.st.LeaseDuration = m.Term, m.From, r.t.LeaseDuration
			r.persist()
		}
		if r.state == stateCandidate {
			// Own promise ran out before the round's timer ran (a stall):
			// abandon the campaign before promising someone else.
			r.giveUp(now)
		}
		r.promiseTo, r.promiseTerm, r.promiseUntil = m.From, m.Term, now+r.t.LeaseDuration
		if r.state == statePreCandidate {
			r.state = stateFollower
		}
		r.failures = 0
		r.reschedule(now)
		r.n.send(r, Message{Type: reply, To: m.From, Term: m.Term, Seq: m.Seq})
		return
	}
	r.n.send(r, nack)
}

// stepRelease drops the promise to the sender for exactly that term.
func (r *role) stepRelease(now time.Duration, m Message) {
	if m.Term <= r.releasedBy[m.From] {
		return
	}
	r.releasedBy[m.From] = m.Term
	if r.promiseTo == m.From && r.promiseTerm == m.Term && r.promiseActive(now) {
		r.promiseUntil = now
		r.reschedule(now)
	}
	if m.Successor != "" && r.n.voters[m.Successor] {
		r.successor, r.successorUntil = m.Successor, now+r.handoverWindow()
		if m.Successor == r.n.cfg.ID && r.state == stateFollower {
			r.handoverFrom, r.handoverTerm = m.From, m.Term
			r.immediate = true
			r.campaignAt = now
			r.tickFollower(now)
		}
	}
}
