package election

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The simulation runs the pure core under true time with per-node clock
// rates, message loss, delay, duplication and reordering, one-way and
// symmetric partitions, daemon crash and restart (holder state survives the
// daemon until cleanup, bounded by the kernel fence or ExecStopPost), stalls
// of the daemon, and checks the invariants of DESIGN.md on true time.

type simOpts struct {
	seed    uint64
	voters  int
	timing  Timing
	eps     float64
	fenced  bool // the role's holder state is fenced by the kernel at the deadline
	loss    float64
	dup     float64
	longP   float64 // probability of a delay beyond leaseDuration
	rules   rules
	chaos   time.Duration // random faults happen in [0, chaos)
	stable  time.Duration // then a healed network for this long
	events  int           // random fault events in the chaos window
	trace   bool
	profile string
	// script, if set, replaces the random fault schedule.
	script func(s *sim)

	// Faults of operation (issue: "never two holders" in operation).
	wipeP      float64 // a restart loses the state directory
	opFaults   bool    // releases that fail or take exactly their slack, late callbacks
	fenceStall float64 // probability a fence arm is sent after a stall (fenced profiles)
	change     string  // "", "replace" ({1,2,3}→{1,2,4}), "add2" ({1,2,3}→{1..5})
}

type violation struct {
	kind string // overlap, term, promise, maxterm, quiet, liveness
	at   time.Duration
	msg  string
}

type hold struct {
	on         bool
	term       uint64
	fenceUntil time.Duration // true time; fenced roles only
	start      time.Duration
	lapsed     bool // the fence element expired under a held role
}

type ledger struct {
	to    string
	term  uint64
	until time.Duration // local time of the voter
}

type host struct {
	id      string
	idx     int
	node    *Node
	inc     uint64
	up      bool
	store   map[string]RoleState
	rate    float64
	offset  time.Duration
	stalled time.Duration // true time until which the daemon is stalled
	tickGen uint64
	hold    hold
	promise ledger
	maxTerm uint64
	lastAcq uint64
	quietTo time.Duration // local time the quiet period ends (checked independently)
	prio    int

	mem     *Membership // persisted membership (nil: the bootstrap one)
	floor   uint64
	boot    Membership  // what this host's configuration bootstraps
	pending *Membership // published, not yet handed to this host's node
	wiped   bool        // lost its state and has not learned its terms yet
	joined  bool        // started at least once (new masters join late)
	retired bool        // removed from the cluster and shut down for good
}

func (h *host) local(t time.Duration) time.Duration {
	return h.offset + time.Duration(float64(t)*h.rate)
}

func (h *host) trueOf(l time.Duration) time.Duration {
	return time.Duration(math.Ceil(float64(l-h.offset) / h.rate))
}

type event struct {
	at   time.Duration
	seq  uint64
	kind int
	h    *host
	msg  Message
	gen  uint64
	term uint64
	fn   func()
	// keep: evReleased tells the node but the role is still alive (a
	// failed release reported as done); evReleaseFailed with keep only
	// silences the role (the escalation completes), without keep only
	// tells the node the release failed.
	keep bool
}

const (
	evDeliver = iota
	evTick
	evReleased
	evReleaseFailed
	evFunc
)

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type sim struct {
	o      simOpts
	rng    *rand.Rand
	now    time.Duration
	q      eventQueue
	seq    uint64
	hosts  []*host
	byID   map[string]*host
	cut    map[[2]int]bool // cut[a,b]: messages a->b are dropped
	loss   float64
	dup    float64
	longP  float64
	calm   bool // stable phase: no faults, short delays
	role   string
	voters []string
	terms  map[uint64]string
	viol   []violation
	trace  []string
	acqs   []time.Duration // true times of acquisitions
	losts  []time.Duration
	// intercept, if set, may swallow a sent message (returning true) after
	// scheduling its own deliveries (schedule A).
	intercept func(s *sim, from *host, m Message) bool
	stats     simStats

	initial   Membership // epoch 1
	published Membership // the latest membership the cluster agreed on
}

type simStats struct {
	msgs, dropped, dups, crashes, stalls, partitions, acquisitions int
}

func newSim(o simOpts) *sim {
	s := &sim{
		o:     o,
		rng:   rand.New(rand.NewPCG(o.seed, 0x5eed)),
		byID:  map[string]*host{},
		cut:   map[[2]int]bool{},
		loss:  o.loss,
		dup:   o.dup,
		longP: o.longP,
		role:  RoleVIP,
		terms: map[uint64]string{},
	}
	total := o.voters
	switch o.change {
	case "replace":
		total = o.voters + 1
	case "add2":
		total = o.voters + 2
	}
	for i := range total {
		s.voters = append(s.voters, fmt.Sprintf("n%d", i+1))
	}
	s.initial = Membership{Epoch: 1, Voters: s.voters[:o.voters]}
	for i, id := range s.voters {
		h := &host{id: id, idx: i, store: map[string]RoleState{}, boot: s.initial}
		switch s.rng.IntN(3) {
		case 0:
			h.rate = 1 - o.eps
		case 1:
			h.rate = 1 + o.eps
		default:
			h.rate = 1 - o.eps + 2*o.eps*s.rng.Float64()
		}
		h.offset = time.Duration(s.rng.Int64N(int64(time.Hour)))
		s.hosts = append(s.hosts, h)
		s.byID[id] = h
	}
	return s
}

func (s *sim) logf(format string, args ...any) {
	if s.o.trace {
		s.trace = append(s.trace, fmt.Sprintf("%10.3fms ", float64(s.now)/1e6)+fmt.Sprintf(format, args...))
	}
}

func (s *sim) violate(kind, format string, args ...any) {
	v := violation{kind: kind, at: s.now, msg: fmt.Sprintf(format, args...)}
	s.viol = append(s.viol, v)
	s.logf("VIOLATION %s: %s", kind, v.msg)
}

func (s *sim) push(e *event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

func (s *sim) at(t time.Duration, fn func()) { s.push(&event{at: t, kind: evFunc, fn: fn}) }

func (s *sim) cfg(h *host) Config {
	c := Config{
		ID: h.id, Voters: h.boot.Voters, Roles: map[string]Timing{s.role: s.o.timing}, Drift: s.o.eps,
		Rand: func() uint64 { return s.rng.Uint64() }, rules: s.o.rules, Priority: h.prio,
		Membership: h.boot, EpochFloor: h.floor,
	}
	if h.mem != nil {
		c.Membership = *h.mem
	}
	return c
}

// learning reports whether h runs and still learns its term.
func (s *sim) learning(h *host) bool {
	return h.up && h.node != nil && h.node.roles[s.role].learning
}

// mayWipe reports whether a restart of h may lose its state under the
// assumption of term uniqueness: at most N−Q voters are without state at
// once (wiped, or new, and not yet learned).
func (s *sim) mayWipe(h *host) bool {
	without := 0
	for _, o := range s.hosts {
		_, stored := o.store[s.role]
		if o != h && o.joined && !o.retired && (!stored || s.learning(o)) {
			without++
		}
	}
	n := len(s.initial.Voters)
	return without < n-majority(n)
}

func (s *sim) start(h *host) {
	if h.retired || !slices.Contains(h.boot.all(), h.id) {
		return // removed for good, or a new master not joined yet
	}
	if h.joined && s.o.wipeP > 0 && s.rng.Float64() < s.o.wipeP && s.mayWipe(h) {
		// The state directory is gone (disk replaced, re-imaged): terms,
		// promises and the membership. The agent hands the node the agreed
		// membership again once it can read it (a little later).
		s.logf("%s WIPED", h.id)
		h.store, h.mem, h.floor, h.wiped = map[string]RoleState{}, nil, 0, true
		if s.published.Epoch > h.boot.Epoch {
			m := s.published
			s.at(s.now+time.Duration(s.rng.Int64N(int64(s.o.timing.LeaseDuration))), func() { s.deliver(h, m) })
		}
	}
	h.joined = true
	h.inc++
	h.up = true
	h.stalled = 0
	// Start-up cleanup: whatever a previous run left (VIP, units) goes first.
	if h.hold.on {
		s.logf("%s cleanup at start: term %d no longer held", h.id, h.hold.term)
		h.hold.on = false
	}
	n, err := NewNode(s.cfg(h), cloneState(h.store), h.inc, h.local(s.now))
	if err != nil {
		panic(err)
	}
	h.node = n
	if h.pending != nil {
		n.SetMembership(h.local(s.now), *h.pending)
		h.pending = nil
	}
	// The checker's own copy of the rule: quiet after every start, with or
	// without state.
	st := h.store[s.role]
	h.quietTo = h.local(s.now) + time.Duration(float64(max(st.LeaseDuration, s.o.timing.LeaseDuration))*(1+2*s.o.eps))
	s.logf("%s start inc=%d state=%+v", h.id, h.inc, h.store[s.role])
	s.process(h)
}

func cloneState(m map[string]RoleState) map[string]RoleState {
	out := map[string]RoleState{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (s *sim) crash(h *host) {
	if !h.up {
		return
	}
	h.up = false
	h.node = nil
	h.tickGen++
	s.stats.crashes++
	s.logf("%s CRASH (holding=%v)", h.id, h.hold.on)
	if h.hold.on && !s.o.fenced {
		// ExecStopPost= deletes the VIP / kills the units after any exit.
		d := time.Duration(s.rng.Int64N(int64(s.o.timing.ReleaseSlack)/2 + 1))
		term := h.hold.term
		s.at(s.now+d, func() {
			if h.hold.on && h.hold.term == term && !h.up {
				s.logf("%s ExecStopPost cleaned term %d", h.id, term)
				h.hold.on = false
			}
		})
	}
}

func (s *sim) effective(h *host, t time.Duration) bool {
	return h.hold.on && (!s.o.fenced || t < h.hold.fenceUntil)
}

func (s *sim) checkOverlap(h *host) {
	for _, o := range s.hosts {
		if o != h && s.effective(o, s.now) {
			s.violate("overlap", "%s holds term %d while %s still holds term %d (since %v)", h.id, h.hold.term, o.id, o.hold.term, o.hold.start)
		}
	}
}

func (s *sim) send(h *host, m Message) {
	s.stats.msgs++
	if m.Type.binding() {
		to := m.To
		if m.Type == MsgVote || m.Type == MsgHeartbeat {
			to = h.id // the sender's own promise, renewed atomically with the send
		}
		l := h.local(s.now)
		if l < h.quietTo {
			s.violate("quiet", "%s sent %s %v before its quiet period ended", h.id, m.Type, h.quietTo-l)
		}
		if h.promise.to != "" && h.promise.to != to && l < h.promise.until {
			s.violate("promise", "%s sent %s for %s while promised to %s/%d for %v more", h.id, m.Type, to, h.promise.to, h.promise.term, h.promise.until-l)
		}
		until := l + s.o.timing.LeaseDuration
		if h.promise.to == to && h.promise.term == m.Term {
			// A resent Vote does not renew the candidate's own promise: its
			// lease counts from the first send.
			if m.Type == MsgVote {
				until = h.promise.until
			}
			until = max(until, h.promise.until)
		}
		h.promise = ledger{to: to, term: m.Term, until: until}
	}
	if m.Type == MsgRelease && h.promise.to == h.id && h.promise.term == m.Term {
		h.promise.to = ""
	}
	if s.intercept != nil && s.intercept(s, h, m) {
		return
	}
	s.transmit(h, m)
}

func (s *sim) transmit(h *host, m Message) {
	to := s.byID[m.To]
	copies := 1
	if !s.calm {
		if s.cut[[2]int{h.idx, to.idx}] || s.rng.Float64() < s.loss {
			s.stats.dropped++
			s.logf("drop %v", m)
			return
		}
		if s.rng.Float64() < s.dup {
			copies = 2 + s.rng.IntN(2)
			s.stats.dups++
		}
	}
	for range copies {
		s.push(&event{at: s.now + s.delay(), kind: evDeliver, h: to, msg: m})
	}
}

func (s *sim) delay() time.Duration {
	if !s.calm && s.rng.Float64() < s.longP {
		return time.Duration(s.rng.Int64N(int64(s.o.timing.LeaseDuration) * 2))
	}
	base := s.o.timing.RetryPeriod / 20
	return 100*time.Microsecond + time.Duration(s.rng.Int64N(int64(base)+1))
}

func (s *sim) process(h *host) {
	for h.up && h.node.HasReady() {
		rd := h.node.Ready()
		if rd.State != nil {
			st := rd.State[s.role]
			if st.MaxTerm < h.maxTerm && !h.wiped {
				s.violate("maxterm", "%s persisted maxTerm %d after %d", h.id, st.MaxTerm, h.maxTerm)
			}
			h.maxTerm = st.MaxTerm
			h.store = cloneState(rd.State)
		}
		if rd.Membership != nil {
			m := *rd.Membership
			h.mem, h.floor = &m, rd.EpochFloor
		}
		if h.wiped && !s.learning(h) {
			h.wiped = false
		}
		for _, m := range rd.Messages {
			s.logf("%s send %v", h.id, m)
			s.send(h, m)
		}
		for _, c := range rd.Changes {
			s.apply(h, c)
		}
		h.node.Advance()
	}
	s.scheduleTick(h)
}

func (s *sim) apply(h *host, c RoleChange) {
	s.logf("%s %s term=%d deadline=%v (true %v)", h.id, c.Kind, c.Term, c.Deadline, h.trueOf(c.Deadline))
	switch c.Kind {
	case Acquired:
		s.stats.acquisitions++
		s.acqs = append(s.acqs, s.now)
		if w, ok := s.terms[c.Term]; ok {
			s.violate("term", "%s acquired term %d already taken by %s", h.id, c.Term, w)
		}
		s.terms[c.Term] = h.id
		if c.Term <= h.lastAcq {
			s.violate("term", "%s acquired term %d after term %d", h.id, c.Term, h.lastAcq)
		}
		h.lastAcq = c.Term
		h.hold = hold{on: true, term: c.Term, start: s.now}
		s.arm(h, c)
		s.checkOverlap(h)
	case Renewed:
		if !h.hold.on || h.hold.term != c.Term {
			s.violate("term", "%s renewed term %d it does not hold", h.id, c.Term)
			return
		}
		s.arm(h, c)
		s.checkOverlap(h)
	case Lost:
		s.losts = append(s.losts, s.now)
		s.release(h, c.Term)
	}
}

// arm moves the kernel fence to the deadline of c (fenced roles). The agent
// computes the element's relative timeout, then sends it; a stall between
// the two (modelled with probability fenceStall, up to two leases) makes the
// kernel count from the late send, past the deadline by the stall. Two
// agent rules make that harmless:
//   - a refresh is one nftables batch that deletes the element and adds it
//     again: if the element has expired meanwhile the delete fails and the
//     whole batch with it, so a late refresh never revives a lapsed fence
//     (the first arm of a term is a plain add, but the address is only
//     added after it, so a late first arm revives nothing either);
//   - after every arm the agent reads the element back and cuts it to the
//     deadline recomputed then (or deletes it): live past the deadline only
//     if a second stall hits between the send and the read-back.
//
// When a refresh finds the element expired, the kernel has revoked the VIP
// under a role the node still holds: the agent steps down (a handover), and
// the role comes back only with a new term, whose first arm precedes the
// address again. It never re-adds the element of a lapsed term: a second
// stall there would revive the VIP past the deadline.
func (s *sim) arm(h *host, c RoleChange) {
	dl := h.trueOf(c.Deadline)
	if s.o.fenceStall == 0 || !s.o.fenced || s.calm || s.rng.Float64() >= s.o.fenceStall {
		if !h.hold.lapsed {
			h.hold.fenceUntil = max(h.hold.fenceUntil, dl)
		}
		return
	}
	stall := time.Duration(s.rng.Int64N(int64(2 * s.o.timing.LeaseDuration)))
	s.stall(h, stall)
	term := c.Term
	s.at(s.now+stall, func() {
		if !h.up || !h.hold.on || h.hold.term != term || h.hold.lapsed {
			return
		}
		switch {
		case s.o.rules.noFenceReadBack:
			// The old agent: a plain add, no read-back.
			h.hold.fenceUntil = max(h.hold.fenceUntil, dl+stall)
		case c.Kind == Acquired:
			// The address is added after the first arm and its read-back.
			if s.now < dl {
				h.hold.fenceUntil = dl
			}
		case s.now >= h.hold.fenceUntil:
			// The element expired: the batch fails, nothing is revived.
			h.hold.lapsed = true
			s.logf("%s fence lapsed under term %d: steps down", h.id, term)
			if h.node.Handover(h.local(s.now), s.role, "") {
				s.process(h)
			}
		default:
			h.hold.fenceUntil = max(h.hold.fenceUntil, dl)
		}
		s.logf("%s fence armed after a %v stall: live until %v (deadline %v)", h.id, stall, h.hold.fenceUntil, dl)
		if s.effective(h, s.now) {
			s.checkOverlap(h)
		}
	})
}

// release models the agent's release of a lost role. Most finish within 90%
// of ReleaseSlack; with opFaults, some start late (a callback queued behind
// another: up to DetectSlack/2, on top of the deadline timer's lateness),
// some take exactly their slack, and some fail: the first attempt errs, the
// escalation (SIGKILL the cgroup, delete the address again) silences the
// role within the slack, and the node is told the release failed — no
// Release is sent.
func (s *sim) release(h *host, term uint64) {
	slack := s.o.timing.ReleaseSlack
	start := s.now
	d := time.Duration(s.rng.Int64N(int64(slack)*9/10 + 1))
	if !s.o.opFaults {
		s.push(&event{at: start + d, kind: evReleased, h: h, gen: h.inc, term: term})
		return
	}
	late := time.Duration(s.rng.Int64N(int64(s.o.timing.DetectSlack)/2 + 1))
	start += late
	d = time.Duration(s.rng.Int64N(int64(slack-late)*9/10 + 1))
	switch k := s.rng.IntN(10); {
	case k == 0: // takes exactly its slack (counted from the loss)
		s.push(&event{at: s.now + slack, kind: evReleased, h: h, gen: h.inc, term: term})
	case k == 1: // fails; the escalation it started silences it later, by the end of the slack
		end := start + d + time.Duration(s.rng.Int64N(int64(s.now+slack-(start+d))+1))
		s.push(&event{at: end, kind: evReleaseFailed, h: h, gen: h.inc, term: term, keep: true})
		if s.o.rules.releaseIgnoresFailure {
			s.push(&event{at: start + d, kind: evReleased, h: h, gen: h.inc, term: term, keep: true})
			return
		}
		s.push(&event{at: start + d, kind: evReleaseFailed, h: h, gen: h.inc, term: term})
	default:
		s.push(&event{at: start + d, kind: evReleased, h: h, gen: h.inc, term: term})
	}
}

func (s *sim) scheduleTick(h *host) {
	if !h.up {
		return
	}
	h.tickGen++
	next := h.node.Next()
	if next >= 1<<61 {
		return
	}
	at := max(h.trueOf(next), s.now)
	at += time.Duration(s.rng.Int64N(int64(s.o.timing.DetectSlack)/2 + 1))
	s.push(&event{at: at, kind: evTick, h: h, gen: h.tickGen})
}

func (s *sim) stall(h *host, d time.Duration) {
	if !h.up {
		return
	}
	s.stats.stalls++
	h.stalled = max(h.stalled, s.now+d)
	s.logf("%s STALL %v", h.id, d)
}

func (s *sim) step(e *event) {
	h := e.h
	if h != nil && e.kind != evFunc {
		if !h.up {
			return
		}
		if s.now < h.stalled {
			e2 := *e
			e2.at = h.stalled
			s.push(&e2)
			return
		}
	}
	switch e.kind {
	case evFunc:
		e.fn()
	case evDeliver:
		m := e.msg
		l := h.local(s.now)
		if m.Type == MsgRelease && h.promise.to == m.From && h.promise.term == m.Term {
			h.promise.to = ""
		}
		err := h.node.Step(l, m)
		s.logf("%s recv %v err=%v", h.id, m, err)
		s.process(h)
	case evTick:
		if e.gen != h.tickGen {
			return
		}
		h.node.Tick(h.local(s.now))
		s.process(h)
	case evReleased:
		if e.gen != h.inc {
			return
		}
		if h.hold.on && h.hold.term == e.term && !e.keep {
			h.hold.on = false
			s.logf("%s release of term %d complete", h.id, e.term)
		}
		h.node.Released(h.local(s.now), s.role, e.term)
		s.process(h)
	case evReleaseFailed:
		if e.gen != h.inc {
			return
		}
		if e.keep { // the escalation completes: the role is silent
			if h.hold.on && h.hold.term == e.term {
				h.hold.on = false
				s.logf("%s escalation silenced term %d", h.id, e.term)
			}
			return
		}
		s.logf("%s release of term %d failed (escalation under way)", h.id, e.term)
		h.node.ReleaseFailed(h.local(s.now), s.role, e.term)
		s.process(h)
	}
}

func (s *sim) run() {
	for _, h := range s.hosts {
		if slices.Contains(s.initial.Voters, h.id) {
			s.start(h)
		}
	}
	if s.o.change != "" {
		s.changeMembership()
	}
	if s.o.script != nil {
		s.o.script(s)
	} else {
		s.randomFaults()
	}
	end := s.o.chaos + s.o.stable
	s.at(s.o.chaos, s.heal)
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(*event)
		if e.at > end {
			break
		}
		s.now = e.at
		s.step(e)
	}
	s.now = end
	s.checkLiveness()
}

// heal starts the stable phase: every node up, no partitions, no loss.
func (s *sim) heal() {
	s.logf("HEAL: stable phase")
	s.calm = true
	clear(s.cut)
	for _, h := range s.hosts {
		h.stalled = 0
		if !h.up && h.joined {
			s.start(h)
		}
	}
}

// livenessBound is how long after healing a holder must exist: the quiet
// period, a lease for promises to run out, the candidate back-off and a
// failed round or two.
func (s *sim) livenessBound() time.Duration {
	t := s.o.timing
	quiet := time.Duration(float64(t.LeaseDuration) * (1 + 2*s.o.eps))
	return quiet + 3*t.LeaseDuration + time.Duration(2*len(s.hosts))*t.RetryPeriod + 2*t.RenewDeadline + t.ReleaseSlack + t.DetectSlack
}

func (s *sim) checkLiveness() {
	bound := s.o.chaos + s.livenessBound()
	if s.o.stable < s.livenessBound()+s.o.timing.LeaseDuration {
		return // scripted runs too short to judge
	}
	holders := 0
	for _, h := range s.hosts {
		if s.effective(h, s.now) {
			holders++
		}
	}
	if holders != 1 {
		s.violate("liveness", "%d holders %v after a stable, connected period of %v", holders, s.now, s.o.stable)
	}
	for _, t := range append(s.acqs, s.losts...) {
		if t > bound {
			s.violate("liveness", "role changed hands at %v, after the bound %v of a stable period", t, bound)
			break
		}
	}
}

// randomFaults draws the chaos schedule.
func (s *sim) randomFaults() {
	t := s.o.timing
	for range s.o.events {
		at := time.Duration(s.rng.Int64N(int64(s.o.chaos)))
		h := s.hosts[s.rng.IntN(len(s.hosts))]
		switch k := s.rng.IntN(10); {
		case k < 3: // crash, restart soon or late
			down := time.Duration(s.rng.Int64N(int64(2 * t.LeaseDuration)))
			if s.rng.IntN(3) == 0 {
				down = time.Duration(s.rng.Int64N(int64(10 * time.Millisecond)))
			}
			s.at(at, func() { s.crash(h) })
			s.at(at+down, func() {
				if !h.up && !s.calm {
					s.start(h)
				}
			})
		case k < 5: // stall
			limit := t.DetectSlack / 2
			if s.o.fenced {
				limit = 2 * t.LeaseDuration
			}
			d := time.Duration(s.rng.Int64N(int64(limit) + 1))
			s.at(at, func() { s.stall(h, d) })
		case k < 7: // symmetric partition: a random side
			s.at(at, func() {
				s.stats.partitions++
				clear(s.cut)
				side := map[int]bool{}
				for _, o := range s.hosts {
					side[o.idx] = s.rng.IntN(2) == 0
				}
				for a := range s.hosts {
					for b := range s.hosts {
						if side[a] != side[b] {
							s.cut[[2]int{a, b}] = true
						}
					}
				}
				s.logf("PARTITION %v", side)
			})
		case k < 9: // one-way cut
			o := s.hosts[s.rng.IntN(len(s.hosts))]
			s.at(at, func() {
				s.stats.partitions++
				s.cut[[2]int{h.idx, o.idx}] = true
				s.logf("CUT %s->%s", h.id, o.id)
			})
		default:
			if s.rng.IntN(4) == 0 { // whole-cluster power cycle
				s.at(at, func() {
					s.logf("POWER CYCLE")
					for _, o := range s.hosts {
						s.crash(o)
						o := o
						s.at(s.now+time.Duration(s.rng.Int64N(int64(t.LeaseDuration))), func() {
							if !o.up && !s.calm {
								s.start(o)
							}
						})
					}
				})
			} else {
				s.at(at, func() { clear(s.cut); s.logf("HEAL LINKS") })
			}
		}
	}
}

// randomOpts draws one run's parameters from seed.
func randomOpts(seed uint64, rs rules) simOpts {
	r := rand.New(rand.NewPCG(seed, 0x0b75))
	o := simOpts{seed: seed, eps: DefaultDrift, rules: rs}
	o.voters = 3
	if r.IntN(3) == 0 {
		o.voters = 5
	}
	switch r.IntN(5) {
	case 4:
		// Lease exactly at the safety bound, with 1% clock-rate drift.
		o.eps = 0.01
		o.timing = DefaultVIPTiming()
		o.timing.LeaseDuration = o.timing.RequiredLease(o.eps)
		o.fenced, o.profile = false, "tight"
	case 0:
		o.timing, o.fenced, o.profile = FastVIPTiming(), true, "fast-fenced"
	case 1:
		o.timing, o.fenced, o.profile = DefaultUnitTiming(), false, "unit"
	case 2:
		o.timing, o.fenced, o.profile = DefaultVIPTiming(), true, "vip-fenced"
	default:
		o.timing, o.fenced, o.profile = DefaultVIPTiming(), false, "vip"
	}
	o.loss = r.Float64() * 0.5
	if r.IntN(4) == 0 {
		o.loss = 0
	}
	o.dup = r.Float64() * 0.2
	o.longP = r.Float64() * 0.05
	o.chaos = time.Duration(4+r.IntN(8)) * o.timing.LeaseDuration
	o.events = 2 + r.IntN(12)
	// Faults of operation, each in about half the runs.
	if r.IntN(2) == 0 {
		o.wipeP = 0.3
	}
	o.opFaults = r.IntN(2) == 0
	if o.fenced && r.IntN(2) == 0 {
		o.fenceStall = 0.05
	}
	if o.voters == 3 {
		switch r.IntN(3) {
		case 0:
			o.change = "replace"
		case 1:
			o.change = "add2"
		}
	}
	s := &sim{o: o, hosts: make([]*host, o.voters)}
	o.stable = s.livenessBound() + 3*o.timing.LeaseDuration
	return o
}

func (s *sim) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed=%d profile=%s voters=%d loss=%.2f dup=%.2f long=%.3f events=%d chaos=%v stable=%v wipe=%.1f opfaults=%v fencestall=%.2f change=%q\n",
		s.o.seed, s.o.profile, s.o.voters, s.o.loss, s.o.dup, s.o.longP, s.o.events, s.o.chaos, s.o.stable,
		s.o.wipeP, s.o.opFaults, s.o.fenceStall, s.o.change)
	for _, v := range s.viol {
		fmt.Fprintf(&b, "  %s at %v: %s\n", v.kind, v.at, v.msg)
	}
	return b.String()
}
