package election

import (
	"fmt"
	"slices"
	"time"
)

// RoleState is what a node persists per role. It must reach stable storage
// (fsync) before any message of the same Ready is sent.
type RoleState struct {
	// MaxTerm is the highest term this node granted, acknowledged or
	// campaigned for. It never decreases.
	MaxTerm uint64 `json:"maxTerm"`
	// VotedFor is the node MaxTerm was granted to (possibly this node).
	VotedFor string `json:"votedFor"`
	// LastTerm is the highest term this node campaigned for; after a restart
	// it sends Release for it.
	LastTerm uint64 `json:"lastTerm"`
	// LeaseDuration is the lease of the run that wrote this state; the quiet
	// period after a restart covers max(old, new).
	LeaseDuration time.Duration `json:"leaseDuration"`
}

// ChangeKind tells what happened to a role this node holds.
type ChangeKind uint8

// Role change kinds.
const (
	// Acquired: the node leads the role from now until Deadline unless renewed.
	Acquired ChangeKind = iota + 1
	// Renewed: a renewal was validated; the role is held until Deadline.
	Renewed
	// Lost: the node must let the role go now (deadline reached, higher term
	// seen, or handover). When the release is complete the caller calls
	// Node.Released; only then does the node send Release.
	Lost
)

func (k ChangeKind) String() string {
	switch k {
	case Acquired:
		return "acquired"
	case Renewed:
		return "renewed"
	case Lost:
		return "lost"
	}
	return "unknown"
}

// RoleChange is one event about a role this node holds.
type RoleChange struct {
	Role string
	Kind ChangeKind
	Term uint64
	// Deadline is the local monotonic time (same origin as Tick) at which the
	// node stops holding the role unless renewed (Acquired, Renewed).
	Deadline time.Duration
}

// Ready is what the node wants done: persist State and Membership (if not
// nil) with fsync, then send Messages, then apply Changes in order.
type Ready struct {
	State map[string]RoleState
	// Membership, when not nil, is the membership to persist, with
	// EpochFloor, the highest epoch this node knows to exist. Both go back
	// into Config at the next start: a node never forgets a newer epoch.
	Membership *Membership
	EpochFloor uint64
	Messages   []Message
	Changes    []RoleChange
}

// Eligibility is what a node gossips about itself per role.
type Eligibility struct {
	Healthy  bool `json:"healthy"`
	Priority int  `json:"priority"`
}

// RoleStatus describes one role as this node sees it.
type RoleStatus struct {
	// Holder is the node this node is currently promised to ("" if none).
	Holder string
	// Term is the highest term this node granted or campaigned for (its
	// leader term while it leads).
	Term uint64
	// Leader is true while this node holds the role: it leads or is
	// releasing, and its Deadline has not passed.
	Leader bool
	// Quorum is true while this node heard from a majority of voters
	// (itself included) within one lease.
	Quorum bool
	// Deadline is the local time at which a leader's hold ends.
	Deadline time.Duration
	// State is the node's own state for the role: follower, precandidate,
	// candidate, leader, releasing.
	State string
	// Learning is true while this node, started without state, still
	// learns the role's highest term from the voters.
	Learning bool
}

// rules switches protocol rules off; only tests use it, to show the
// simulation finds the overlap a missing rule allows.
type rules struct {
	noQuietPeriod    bool
	noPromise        bool
	noReleaseOnLapse bool
	neverCampaign    bool
	// Rules of the operation faults (wiped state, replays).
	noQuietWithoutState bool
	noTermLearning      bool
	noReplayCheck       bool
	noLiveCheck         bool
	// Rules of the agent around the core, modelled by the simulation only.
	noFenceReadBack       bool // a fence armed after a stall keeps the stall's extra time
	releaseIgnoresFailure bool // a failed release still sends Release at once
	naiveMembership       bool // voter sets change without a joint membership
}

// Node is the election state machine of one master for every role. It is
// not safe for concurrent use; the driver serialises all calls.
type Node struct {
	cfg         Config
	voters      map[string]bool // every voter of mem
	mem         Membership
	memHash     uint64
	memSince    time.Duration // local time mem was adopted (or the start)
	memDirty    bool
	floor       uint64 // highest membership epoch known to exist
	incarnation uint64
	counter     uint64 // messages sent by this incarnation
	replay      map[string]*replayWindow
	// nonce is this run's TermQuery number: a TermReply must echo it, so a
	// reply recorded in an earlier run cannot be replayed into this one.
	nonce uint64
	// live records, per peer, the incarnation that answered this run's
	// nonce, and when this node last asked (verified).
	live      map[string]uint64
	askedAt   map[string]time.Duration
	roles     map[string]*role
	names     []string
	peerInc   map[string]uint64
	peerElig  map[string]map[string]Eligibility
	lastHeard map[string]time.Duration
	now       time.Duration

	msgs      []Message
	changes   []RoleChange
	dirty     bool
	rules     rules
	withdrawn bool
}

// Withdraw stops this node from campaigning for any role (it still votes).
// A graceful stop withdraws, then hands every held role over.
func (n *Node) Withdraw() { n.withdrawn = true }

// NewNode returns a node starting at local time now. state is what a
// previous run persisted (nil on first start or after the state was lost).
// Every role starts quiet — nothing binding for max(old, new
// leaseDuration)·(1+2ε) — with or without state, since a wiped node may have
// promised before it died. A role without state also learns its highest
// term from the voters (TermQuery) before it grants or campaigns, so no term
// is won twice. The first Ready releases a persisted last term. The caller
// must have cleaned up any holder state of a previous run (VIP, leader-only
// units) before sending that Ready. incarnation must grow with every start.
func NewNode(cfg Config, state map[string]RoleState, incarnation uint64, now time.Duration) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	n := &Node{
		cfg:         cfg,
		voters:      map[string]bool{},
		memSince:    now,
		floor:       cfg.EpochFloor,
		incarnation: incarnation,
		replay:      map[string]*replayWindow{},
		live:        map[string]uint64{},
		askedAt:     map[string]time.Duration{},
		roles:       map[string]*role{},
		names:       sortedKeys(cfg.Roles),
		peerInc:     map[string]uint64{},
		peerElig:    map[string]map[string]Eligibility{},
		lastHeard:   map[string]time.Duration{},
		now:         now,
		rules:       cfg.rules,
	}
	n.nonce = cfg.Rand() | 1
	n.adopt(cfg.membership())
	for _, name := range n.names {
		t := cfg.Roles[name]
		r := &role{
			n:          n,
			name:       name,
			t:          t,
			hash:       ConfigHash(name, t),
			healthy:    true,
			releasedBy: map[string]uint64{},
			acked:      map[string]time.Duration{},
			sendTimes:  map[uint64]time.Duration{},
			nacks:      map[string]bool{},
			preOK:      map[string]bool{},
			preNo:      map[string]bool{},
			state:      stateFollower,
		}
		n.roles[name] = r
		st, ok := state[name]
		lease := max(st.LeaseDuration, t.LeaseDuration)
		r.quietUntil = now + time.Duration(float64(lease)*(1+2*cfg.Drift)) + 1
		if n.rules.noQuietPeriod || !ok && n.rules.noQuietWithoutState {
			r.quietUntil = now
		}
		if !ok && !n.rules.noTermLearning {
			r.startLearning(now)
		}
		if ok {
			r.st = st
			if st.LastTerm > 0 {
				r.term = st.LastTerm
				r.releasedBy[cfg.ID] = st.LastTerm
				n.broadcast(r, Message{Type: MsgRelease, Term: st.LastTerm})
			}
			if r.st.LeaseDuration != t.LeaseDuration {
				r.st.LeaseDuration = max(st.LeaseDuration, t.LeaseDuration)
				n.dirty = true
			}
		}
		r.campaignAt = max(r.quietUntil, now) + r.rankDelay() + r.jitter(t.RetryPeriod/2)
	}
	return n, nil
}

// ID returns the node's name.
func (n *Node) ID() string { return n.cfg.ID }

// Quorum returns the number of voters that make a majority of the current
// voter set (of the new set, during a change).
func (n *Node) Quorum() int { return majority(len(n.mem.Voters)) }

func (n *Node) rand(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(n.cfg.Rand() % uint64(d))
}

func (n *Node) send(r *role, m Message) {
	n.counter++
	m.From = n.cfg.ID
	m.Incarnation = n.incarnation
	m.Counter = n.counter
	m.Epoch = n.mem.Epoch
	m.MemberHash = n.memHash
	m.Role = r.name
	m.ConfigHash = r.hash
	n.msgs = append(n.msgs, m)
}

func (n *Node) broadcast(r *role, m Message) {
	for _, v := range n.mem.all() {
		if v != n.cfg.ID {
			m.To = v
			n.send(r, m)
		}
	}
}

func (n *Node) change(c RoleChange) {
	if c.Kind == Renewed {
		// Coalesce renewals: only the latest deadline matters.
		for i := len(n.changes) - 1; i >= 0; i-- {
			if n.changes[i].Role != c.Role {
				continue
			}
			if n.changes[i].Kind == Renewed && n.changes[i].Term == c.Term {
				n.changes[i] = c
				return
			}
			break
		}
	}
	n.changes = append(n.changes, c)
}

// Tick advances the node to local monotonic time now (never earlier than a
// previous call) and runs every timer due.
func (n *Node) Tick(now time.Duration) {
	n.now = max(n.now, now)
	for _, name := range n.names {
		n.roles[name].tick(n.now)
	}
}

// Next returns the local time at which the node next needs a Tick.
func (n *Node) Next() time.Duration {
	next := time.Duration(1<<62 - 1)
	for _, r := range n.roles {
		next = min(next, r.next())
	}
	return next
}

// Step handles one received message at local time now (taken after the
// message was received). A message the node ignores returns *RejectError.
//
// A sender must be a voter of this node's membership, or belong to a newer
// one (this node may not have been told of it yet); its epoch's membership
// hash must match when the epochs are equal; its incarnation must not be
// older than one already heard; and its counter must not have been accepted
// before (replay). A newer epoch raises this node's epoch floor.
func (n *Node) Step(now time.Duration, m Message) error {
	n.now = max(n.now, now)
	now = n.now
	if m.To != n.cfg.ID {
		return &RejectError{Reason: "misdirected"}
	}
	if m.From == n.cfg.ID || !n.voters[m.From] && m.Epoch <= n.mem.Epoch {
		return &RejectError{Reason: "unknown_sender"}
	}
	r := n.roles[m.Role]
	if r == nil {
		return &RejectError{Reason: "unknown_role"}
	}
	if m.ConfigHash != r.hash {
		return &RejectError{Reason: "config_hash"}
	}
	if m.Type == 0 || m.Type >= msgTypeEnd {
		return &RejectError{Reason: "type"}
	}
	if m.Epoch == n.mem.Epoch && m.MemberHash != n.memHash {
		return &RejectError{Reason: "member_hash"}
	}
	if m.Incarnation < n.peerInc[m.From] {
		return &RejectError{Reason: "stale_incarnation"}
	}
	if !n.rules.noReplayCheck {
		w := n.replay[m.From]
		if w == nil {
			w = &replayWindow{}
			n.replay[m.From] = w
		}
		if !w.accept(m.Incarnation, m.Counter) {
			return &RejectError{Reason: "replay"}
		}
	}
	n.peerInc[m.From] = m.Incarnation
	if m.Type == MsgTermReply && m.Seq == n.nonce && !n.rules.noLiveCheck {
		n.live[m.From] = m.Incarnation
	}
	if m.Epoch > n.floor {
		n.floor = m.Epoch
		n.memDirty = true
	}
	n.lastHeard[m.From] = now
	r.step(now, m)
	return nil
}

// verified reports whether the sender of a Vote or Heartbeat has proven,
// in this run of this node, that its incarnation is alive: it answered a
// TermQuery carrying this run's nonce. Replay windows live in memory, so
// after a restart this node could otherwise be fed each captured message
// of a dead leader once more — and renew a promise to it with every one.
// An unproven sender is asked (at most once a retry period) and its
// request goes unanswered, as if lost; a live one retries within a retry
// period, a dead one never answers.
func (n *Node) verified(now time.Duration, r *role, m Message) bool {
	if n.proven(m) {
		return true
	}
	n.askProof(now, r, m.From)
	return false
}

// proven reports whether m's sender incarnation answered this run's nonce.
func (n *Node) proven(m Message) bool {
	inc, ok := n.live[m.From]
	return ok && inc == m.Incarnation || n.rules.noLiveCheck
}

// askProof sends peer a TermQuery with this run's nonce, at most once a
// retry period.
func (n *Node) askProof(now time.Duration, r *role, peer string) {
	if at, ok := n.askedAt[peer]; !ok || now-at >= r.t.RetryPeriod {
		n.askedAt[peer] = now
		n.send(r, Message{Type: MsgTermQuery, To: peer, Seq: n.nonce})
	}
}

// HasReady reports whether Ready has anything.
func (n *Node) HasReady() bool {
	return n.dirty || n.memDirty || len(n.msgs) > 0 || len(n.changes) > 0
}

// Ready returns what must be done, in order: persist, send, apply changes.
// Call Advance when done.
func (n *Node) Ready() Ready {
	var rd Ready
	if n.dirty {
		rd.State = n.State()
	}
	if n.memDirty {
		m, floor := n.Membership()
		rd.Membership, rd.EpochFloor = &m, floor
	}
	rd.Messages = n.msgs
	rd.Changes = n.changes
	return rd
}

// Advance acknowledges the last Ready.
func (n *Node) Advance() {
	n.dirty = false
	n.memDirty = false
	n.msgs = nil
	n.changes = nil
}

// State returns the persistent state of every role that has any.
func (n *Node) State() map[string]RoleState {
	out := map[string]RoleState{}
	for name, r := range n.roles {
		if r.st != (RoleState{}) {
			out[name] = r.st
		}
	}
	return out
}

// Released tells the node that the release of (role, term) it asked for with
// a Lost change is complete: VIP deleted, unit dead. The node then sends
// Release and never acts on that term again.
func (n *Node) Released(now time.Duration, roleName string, term uint64) {
	n.now = max(n.now, now)
	if r := n.roles[roleName]; r != nil {
		r.released(n.now, term)
	}
}

// ReleaseFailed tells the node that the release of (role, term) it asked for
// with a Lost change failed or overran its slack: the VIP or the unit may
// still be alive. The node sends no Release — its voters' promises end by
// expiry, which the safety inequality covers — and never acts on that term
// again; its own promise to itself runs out before it may campaign again.
func (n *Node) ReleaseFailed(now time.Duration, roleName string, term uint64) {
	n.now = max(n.now, now)
	if r := n.roles[roleName]; r != nil {
		r.releaseFailed(n.now, term)
	}
}

// Handover starts a graceful handover of a role this node leads: the node
// lets the role go (a Lost change), and after Released sends
// Release{term, successor}. successor "" picks the best eligible peer. It
// returns false if the node does not lead the role.
func (n *Node) Handover(now time.Duration, roleName, successor string) bool {
	n.now = max(n.now, now)
	r := n.roles[roleName]
	if r == nil || r.state != stateLeader {
		return false
	}
	if successor == "" || !n.voters[successor] || successor == n.cfg.ID {
		successor = r.bestPeer()
	}
	r.lapse(n.now, successor)
	return true
}

// Leading returns the roles this node currently holds (leader or releasing).
func (n *Node) Leading() []string {
	var out []string
	for _, name := range n.names {
		if s := n.roles[name].state; s == stateLeader || s == stateReleasing {
			out = append(out, name)
		}
	}
	return out
}

// Busy returns the roles this node is campaigning for, holding or
// releasing: a graceful stop waits until it is empty.
func (n *Node) Busy() []string {
	var out []string
	for _, name := range n.names {
		if n.roles[name].state != stateFollower {
			out = append(out, name)
		}
	}
	return out
}

// SetHealthy sets this node's health for role. An unhealthy node campaigns
// after every healthy one; an unhealthy leader hands over to a healthy peer
// once it has been unhealthy for a lease (hysteresis against ping-pong).
func (n *Node) SetHealthy(now time.Duration, roleName string, ok bool) {
	n.now = max(n.now, now)
	r := n.roles[roleName]
	if r == nil || r.healthy == ok {
		return
	}
	r.healthy = ok
	r.healthChanged = n.now
	if r.state == stateFollower {
		r.reschedule(n.now) // the back-off depends on health
	}
}

// Healthy reports this node's health for role.
func (n *Node) Healthy(roleName string) bool {
	r := n.roles[roleName]
	return r != nil && r.healthy
}

// SetPeerEligibility records what peer gossips about itself for role.
func (n *Node) SetPeerEligibility(peer, roleName string, e Eligibility) {
	if n.peerElig[peer] == nil {
		n.peerElig[peer] = map[string]Eligibility{}
	}
	n.peerElig[peer][roleName] = e
}

// Eligibility returns what node (this node or a peer) is known to be
// eligible for, per role (peers not gossiped yet are assumed healthy).
func (n *Node) Eligibility(node string) map[string]Eligibility {
	out := map[string]Eligibility{}
	for _, name := range n.names {
		out[name] = n.eligibility(node, name)
	}
	return out
}

// Status returns every role as this node sees it at local time now.
func (n *Node) Status(now time.Duration) map[string]RoleStatus {
	quorum := n.mem.hasQuorum(func(v string) bool {
		t, ok := n.lastHeard[v]
		return v == n.cfg.ID || ok && now-t < n.maxLease()
	})
	out := map[string]RoleStatus{}
	for name, r := range n.roles {
		s := RoleStatus{Term: r.st.MaxTerm, State: r.state.String(), Quorum: quorum, Learning: r.learning}
		if now < r.promiseUntil {
			s.Holder = r.promiseTo
		}
		// Only a lease still valid counts: a node whose release callback
		// runs past its deadline (a stalled or slow release) no longer holds
		// the role, whatever its cleanup is doing; State says releasing.
		if (r.state == stateLeader || r.state == stateReleasing) && now < r.deadline {
			s.Leader = true
			s.Holder = n.cfg.ID
			s.Term = r.term
			s.Deadline = r.deadline
		}
		out[name] = s
	}
	return out
}

func (n *Node) maxLease() time.Duration {
	var l time.Duration
	for _, t := range n.cfg.Roles {
		l = max(l, t.LeaseDuration)
	}
	return l
}

func (n *Node) eligibility(peer, roleName string) Eligibility {
	if peer == n.cfg.ID {
		return Eligibility{Healthy: n.roles[roleName].healthy, Priority: n.cfg.Priority}
	}
	if e, ok := n.peerElig[peer][roleName]; ok {
		return e
	}
	// Not gossiped yet: assume healthy so the back-off stays bounded.
	return Eligibility{Healthy: true}
}

// better reports whether a ranks before b for role.
func (n *Node) better(roleName, a, b string) bool {
	ea, eb := n.eligibility(a, roleName), n.eligibility(b, roleName)
	if ea.Healthy != eb.Healthy {
		return ea.Healthy
	}
	if ea.Priority != eb.Priority {
		return ea.Priority > eb.Priority
	}
	return a < b
}

func (n *Node) ranked(roleName string) []string {
	vs := n.mem.all()
	slices.SortFunc(vs, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case n.better(roleName, a, b):
			return -1
		}
		return 1
	})
	return vs
}
