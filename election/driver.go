package election

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Callbacks are how the driver tells the agent about roles this node holds.
//
// Contract: for one role, callbacks are called serially and in order from a
// goroutine dedicated to that role (roles do not wait for each other: a slow
// unit stop never delays the vip role's heartbeats). OnStartedLeading(r, t)
// is always followed, sooner or later, by OnStoppedLeading(r, t) unless the
// driver is killed. Any callback may be nil.
type Callbacks struct {
	// OnStartedLeading: this node holds role under term (the fencing token)
	// until the deadline of the last OnRenewed (or of the acquisition,
	// delivered as an OnRenewed right before this call). ctx is cancelled
	// as soon as the loss of this term is decided (on the election loop,
	// before OnStoppedLeading is queued) and when the driver stops or is
	// killed, as client-go's leaderelection does: work started for the
	// term (a unit start, its health wait) may run under ctx and ends with
	// it. The lease keeps being renewed while the callback runs, but it
	// should return promptly (start the unit, do not wait for it to become
	// ready): a loss queued behind it waits, and OnStoppedLeading must
	// finish within ReleaseSlack of the deadline.
	OnStartedLeading func(ctx context.Context, role string, term uint64)
	// OnStoppedLeading: let the role go now (delete the VIP, kill the unit)
	// and verify it is gone. ctx ends ReleaseSlack after the loss was
	// decided. It returns nil only when the release is complete and
	// verified (address absent, unit's processes dead); then, if it
	// returned before ctx's deadline, the driver sends Release and the next
	// leader may start at once. On an error or an overrun the driver sends
	// no Release — the lease ends by expiry, which the safety inequality
	// already covers — and counts masterd_role_release_failures_total; the
	// callback itself must escalate (SIGKILL the control group, delete the
	// address again) before it returns the error.
	OnStoppedLeading func(ctx context.Context, role string, term uint64) error
	// OnRenewed: a renewal was just validated; the role is held until
	// deadline (local monotonic clock) unless renewed again. It is called
	// once right after acquisition too, before OnStartedLeading. Renewals
	// queued behind a slow callback are coalesced, and deadline may already
	// have passed when it runs: never arm anything with a non-positive
	// timeout. The vip package refreshes its nftables fence element from it.
	OnRenewed func(role string, term uint64, deadline time.Time)
	// OnPeerDown: voter peer is gone as far as this node can tell — a
	// heartbeat or acknowledgement it owed stopped for a few retry
	// periods, or gossip lists it dead, left or not at all (see
	// liveness.go; reason is PeerSilent or PeerGossipDead). Once per
	// death: hearing from the peer again re-arms it. It is a hint for the
	// balancer, never a safety input. It runs on the election loop and
	// must return at once (no I/O, no waiting).
	OnPeerDown func(peer, reason string)
}

// Driver runs the election Node over memberlist with a real clock. It is
// the only code that touches memberlist.
type Driver struct {
	cfg    DriverConfig
	cb     Callbacks
	log    *slog.Logger
	met    *metrics
	origin time.Time
	addrs  map[string]string

	node      *Node // loop goroutine only
	state     stateFile
	mustSave  bool
	workers   map[string]*worker
	ml        *memberlist.Memberlist
	keyring   *memberlist.Keyring // changed live by SetKeys (keyring.go)
	inbox     chan []byte
	calls     chan func()
	releasedC chan releaseDone
	slack     map[string]time.Duration
	live      *liveness  // loop goroutine only
	wire      *wireWatch // loop goroutine only (version.go)

	metaMu    sync.Mutex
	meta      []byte
	peerMeta  map[string][]byte
	metaDirty chan struct{}

	started  atomic.Bool
	lifeMu   sync.Mutex // serialises Leave and shutdown (Leave after Shutdown panics)
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	bg       sync.WaitGroup
}

type releaseDone struct {
	role string
	term uint64
	ok   bool // verified and within the slack: send Release
}

// NewDriver validates cfg, loads the persisted state (bumping and saving the
// incarnation) and builds the node. It does not touch the network; Start
// does. The agent must have cleaned up any holder state a previous run left
// (VIP, leader-only units) before calling Start: Start releases the
// persisted last term of every role.
func NewDriver(cfg DriverConfig, cb Callbacks) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("election: config: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	wire, err := newWireWatch(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("election: register metrics: %w", err)
	}
	st, err := loadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	// The incarnation grows at every start, and stays ahead of the wall
	// clock so a wiped state directory does not make peers drop this node's
	// messages as stale.
	st.Incarnation = max(st.Incarnation+1, uint64(time.Now().UnixMilli()))
	if err := saveState(cfg.StateDir, st); err != nil {
		return nil, err
	}
	d := &Driver{
		cfg:       cfg,
		cb:        cb,
		log:       logger.With("component", "election"),
		met:       met,
		origin:    time.Now(),
		addrs:     map[string]string{},
		state:     st,
		workers:   map[string]*worker{},
		inbox:     make(chan []byte, 1024),
		calls:     make(chan func()),
		releasedC: make(chan releaseDone, 16),
		slack:     map[string]time.Duration{},
		live:      newLiveness(),
		wire:      wire,
		peerMeta:  map[string][]byte{},
		metaDirty: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	for _, p := range cfg.Peers {
		d.addrs[p.Name] = p.Addr
	}
	core := Config{ID: cfg.Name, Voters: cfg.voters(), Roles: cfg.Roles, Drift: cfg.Drift, Priority: cfg.Priority, Rand: rand.Uint64,
		EpochFloor: st.EpochFloor}
	if st.Membership != nil {
		core.Membership = *st.Membership
	}
	d.node, err = NewNode(core, st.Roles, st.Incarnation, d.now())
	if err != nil {
		return nil, err
	}
	elig := map[string]Eligibility{}
	for name := range cfg.Roles {
		elig[name] = Eligibility{Healthy: true, Priority: cfg.Priority}
		d.workers[name] = newWorker(d, name)
		d.slack[name] = cfg.Roles[name].ReleaseSlack
		d.met.leader.WithLabelValues(name).Set(0)
		d.met.term.WithLabelValues(name).Set(float64(st.Roles[name].MaxTerm))
	}
	d.meta = encodeMeta(elig)
	return d, nil
}

func (d *Driver) now() time.Duration { return time.Since(d.origin) }

// Start creates the memberlist (encrypted, labelled), joins the configured
// peers (best effort: a peer that is not up yet is joined by the periodic
// re-join) and starts the election loop.
func (d *Driver) Start(ctx context.Context) error {
	keyring, err := memberlist.NewKeyring(d.cfg.Keys, d.cfg.Keys[0])
	if err != nil {
		return fmt.Errorf("election: keyring: %w", err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = d.cfg.Name
	mc.BindAddr = d.cfg.BindAddr
	mc.BindPort = d.cfg.BindPort
	mc.AdvertiseAddr = d.cfg.AdvertiseAddr
	mc.AdvertisePort = d.cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = d.cfg.BindPort
	}
	mc.Keyring = keyring
	d.keyring = keyring
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.Label = d.cfg.Label
	mc.Delegate = gossip{d}
	mc.Events = gossip{d}
	mc.Logger = log.New(logWriter{d}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("election: memberlist on %s:%d: %w", d.cfg.BindAddr, d.cfg.BindPort, err)
	}
	d.ml = ml
	d.started.Store(true)
	d.bg.Go(d.loop)
	for _, w := range d.workers {
		d.bg.Go(w.run)
	}
	d.bg.Go(d.rejoinLoop)
	d.rejoin()
	d.log.Info("election started", "name", d.cfg.Name, "incarnation", d.state.Incarnation, "voters", len(d.cfg.voters()))
	return ctx.Err()
}

func (d *Driver) rejoinLoop() {
	t := time.NewTicker(d.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.rejoin()
		}
	}
}

// rejoin joins configured peers that are not alive members.
func (d *Driver) rejoin() {
	alive := map[string]bool{}
	for _, m := range d.ml.Members() {
		if m.State == memberlist.StateAlive {
			alive[m.Name] = true
		}
	}
	var addrs []string
	for _, p := range d.cfg.Peers {
		if p.Name != d.cfg.Name && !alive[p.Name] {
			addrs = append(addrs, p.Addr)
		}
	}
	if len(addrs) == 0 {
		return
	}
	if n, err := d.ml.Join(addrs); err != nil {
		d.log.Debug("rejoin incomplete", "joined", n, "tried", len(addrs), "err", err)
	}
}

// loop is the one goroutine that owns the node.
func (d *Driver) loop() {
	defer close(d.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	quorumTick := time.NewTicker(250 * time.Millisecond)
	defer quorumTick.Stop()
	liveTimer := time.NewTimer(0)
	defer liveTimer.Stop()
	d.ready() // the Release of a persisted last term goes out at once
	for {
		next := d.node.Next()
		timer.Reset(max(next-d.now(), 0))
		select {
		case <-d.stop:
			return
		case <-liveTimer.C:
			d.checkLiveness()
			liveTimer.Reset(max(d.live.next-d.now(), 0))
		case b := <-d.inbox:
			d.receive(b)
		case <-timer.C:
			now := d.now()
			d.met.loopLatency.Observe(max(now-next, 0).Seconds())
			d.node.Tick(now)
		case r := <-d.releasedC:
			if r.ok {
				d.node.Released(d.now(), r.role, r.term)
			} else {
				d.node.ReleaseFailed(d.now(), r.role, r.term)
			}
		case f := <-d.calls:
			f()
		case <-d.metaDirty:
			d.applyPeerMeta()
		case <-quorumTick.C:
			d.updateGauges()
		}
		// A timer that came due while the loop was busy (a slow fsync, a
		// burst of messages) runs now rather than after another select: the
		// deadline check is never later than the loop's own work.
		if now := d.now(); now >= d.node.Next() {
			d.met.loopLatency.Observe((now - d.node.Next()).Seconds())
			d.node.Tick(now)
		}
		d.ready()
	}
}

func (d *Driver) receive(b []byte) {
	m, err := Decode(b)
	if err != nil {
		reason, _ := IsReject(err)
		d.met.rejected.WithLabelValues(reason).Inc()
		d.wire.observe(d, err, func(p string) bool { _, ok := d.addrs[p]; return ok })
		return
	}
	d.met.messages.WithLabelValues(m.Type.String(), "in").Inc()
	d.log.Debug("receive", "msg", m.String())
	now := d.now()
	if err := d.node.Step(now, m); err != nil {
		reason, _ := IsReject(err)
		d.met.rejected.WithLabelValues(reason).Inc()
		d.log.Debug("message rejected", "reason", reason, "from", m.From, "type", m.Type.String())
		return
	}
	d.live.hear(m.From, now)
}

// checkLiveness reports the peers that fell silent (see liveness.go). A
// message still queued may be a silent peer's: it is read first.
func (d *Driver) checkLiveness() {
	now := d.now()
	if len(d.inbox) > 0 {
		d.live.next = now + time.Millisecond
		return
	}
	m, _ := d.node.Membership()
	for _, p := range d.live.check(now, d.cfg.Name, m.all(), d.node.Status(now), d.cfg.Roles) {
		d.peerDown(p, PeerSilent)
	}
}

func (d *Driver) peerDown(peer, reason string) {
	d.log.Info("peer down", "peer", peer, "reason", reason)
	if d.cb.OnPeerDown != nil {
		d.cb.OnPeerDown(peer, reason)
	}
}

// ready persists, sends and dispatches what the node produced, in that
// order. If the state cannot be saved nothing is sent.
func (d *Driver) ready() {
	for d.node.HasReady() {
		rd := d.node.Ready()
		if rd.State != nil || rd.Membership != nil || d.mustSave {
			d.state.Roles = d.node.State()
			if m, floor := d.node.Membership(); m.Epoch > 1 || floor > 1 {
				d.state.Membership, d.state.EpochFloor = &m, floor
			}
			if err := saveState(d.cfg.StateDir, d.state); err != nil {
				d.mustSave = true
				d.log.Error("persist election state failed, sending nothing", "err", err)
				rd.Messages = nil
			} else {
				d.mustSave = false
			}
		}
		for _, m := range rd.Messages {
			d.sendMsg(m)
		}
		for _, c := range rd.Changes {
			d.dispatch(c)
		}
		d.node.Advance()
	}
}

func (d *Driver) sendMsg(m Message) {
	addr, ok := d.addrs[m.To]
	if !ok {
		return
	}
	d.log.Debug("send", "msg", m.String())
	if err := d.ml.SendToAddress(memberlist.Address{Addr: addr, Name: m.To}, Encode(nil, m)); err != nil {
		d.log.Debug("send failed", "to", m.To, "type", m.Type.String(), "err", err)
		return
	}
	d.met.messages.WithLabelValues(m.Type.String(), "out").Inc()
}

func (d *Driver) dispatch(c RoleChange) {
	w := d.workers[c.Role]
	if w == nil {
		return
	}
	deadline := d.origin.Add(c.Deadline)
	switch c.Kind {
	case Acquired:
		d.met.leader.WithLabelValues(c.Role).Set(1)
		d.met.term.WithLabelValues(c.Role).Set(float64(c.Term))
		d.met.transitions.WithLabelValues(c.Role).Inc()
		d.log.Info("role acquired", "role", c.Role, "term", c.Term, "valid_s", time.Until(deadline).Seconds())
		w.push(job{kind: Renewed, term: c.Term, deadline: deadline})
		w.push(job{kind: Acquired, term: c.Term, ctx: w.lead(c.Term)})
	case Renewed:
		if t, ok := d.cfg.Roles[c.Role]; ok {
			d.met.renewLatency.WithLabelValues(c.Role).Observe(max(d.now()-(c.Deadline-t.RenewDeadline), 0).Seconds())
		}
		w.push(job{kind: Renewed, term: c.Term, deadline: deadline})
	case Lost:
		d.met.leader.WithLabelValues(c.Role).Set(0)
		d.met.transitions.WithLabelValues(c.Role).Inc()
		d.log.Info("role lost", "role", c.Role, "term", c.Term)
		w.endLead()
		w.push(job{kind: Lost, term: c.Term, deadline: time.Now().Add(d.slack[c.Role])})
	}
}

func (d *Driver) updateGauges() {
	for name, s := range d.node.Status(d.now()) {
		q := 0.0
		if s.Quorum {
			q = 1
		}
		d.met.quorum.WithLabelValues(name).Set(q)
		if !s.Leader {
			d.met.term.WithLabelValues(name).Set(float64(s.Term))
		}
	}
	// memberlist's Members lists alive and suspect nodes only: a voter of
	// the membership missing from it counts as dead (or left).
	counts := map[string]float64{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	seen := map[string]bool{}
	alive := map[string]bool{}
	for _, m := range d.ml.Members() {
		counts[memberState(m.State)]++
		seen[m.Name] = true
		alive[m.Name] = m.State == memberlist.StateAlive || m.State == memberlist.StateSuspect
	}
	m, _ := d.node.Membership()
	for _, v := range m.all() {
		if !seen[v] {
			counts["dead"]++
		}
		if v != d.cfg.Name && d.live.gossip(v, alive[v]) {
			d.peerDown(v, PeerGossipDead)
		}
	}
	for k, v := range counts {
		d.met.members.WithLabelValues(k).Set(v)
	}
}

func memberState(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateLeft:
		return "left"
	}
	return "dead"
}

func (d *Driver) peerMetaChanged(name string, meta []byte) {
	if name == d.cfg.Name {
		return
	}
	d.metaMu.Lock()
	d.peerMeta[name] = meta
	d.metaMu.Unlock()
	select {
	case d.metaDirty <- struct{}{}:
	default:
	}
}

func (d *Driver) applyPeerMeta() {
	d.metaMu.Lock()
	pm := d.peerMeta
	d.peerMeta = map[string][]byte{}
	d.metaMu.Unlock()
	for name, b := range pm {
		elig, ok := decodeMeta(b)
		if !ok {
			d.met.rejected.WithLabelValues("meta").Inc()
			continue
		}
		for role, e := range elig {
			d.node.SetPeerEligibility(name, role, e)
		}
	}
}

// call runs f on the loop goroutine and waits for it; before Start it runs
// f directly (nothing else touches the node then).
func (d *Driver) call(f func()) bool {
	if !d.started.Load() {
		f()
		return true
	}
	ran := make(chan struct{})
	select {
	case d.calls <- func() { f(); close(ran) }:
		<-ran
		return true
	case <-d.done:
		return false
	}
}

// SetHealthy sets this node's health for role (for vip: the local
// apiserver is ready). It is gossiped to peers in node meta; an unhealthy
// node campaigns after every healthy one, and an unhealthy leader hands over
// to a healthy peer after a lease.
func (d *Driver) SetHealthy(role string, ok bool) {
	var meta []byte
	if !d.call(func() {
		if d.node.Healthy(role) == ok {
			return
		}
		d.node.SetHealthy(d.now(), role, ok)
		elig := map[string]Eligibility{}
		for name := range d.cfg.Roles {
			elig[name] = Eligibility{Healthy: d.node.Healthy(name), Priority: d.cfg.Priority}
		}
		meta = encodeMeta(elig)
		d.log.Info("health changed", "role", role, "healthy", ok)
	}) || meta == nil {
		return
	}
	d.metaMu.Lock()
	d.meta = meta
	d.metaMu.Unlock()
	if d.started.Load() {
		go d.ml.UpdateNode(time.Second)
	}
}

// Stop leaves gracefully: it stops campaigning, hands every held role to the
// best peer (OnStoppedLeading runs, then Release{term, successor}), waits
// until no role is held or ctx ends, then leaves the gossip cluster.
// StepDown lets a role this node holds go now, as a handover to the best
// peer (OnStoppedLeading runs, then Release{term, successor}). The agent
// calls it when the kernel fence lapsed under a held role: the VIP is then
// silent, and re-arming the lapsed term could revive it after its deadline.
// It reports whether the node held the role.
func (d *Driver) StepDown(role string) bool {
	held := false
	d.call(func() { held = d.node.Handover(d.now(), role, "") })
	return held
}

// SetMembership adopts a newer membership (see Membership and
// Node.Settled for the rule its publisher keeps); addrs gives the gossip
// address of every voter of m this driver does not know yet. An older or
// equal epoch is ignored.
func (d *Driver) SetMembership(m Membership, addrs map[string]string) error {
	var err error
	if !d.call(func() {
		for name, a := range addrs {
			d.addrs[name] = a
		}
		err = d.node.SetMembership(d.now(), m)
	}) {
		return errors.New("election: driver stopped")
	}
	return err
}

func (d *Driver) Stop(ctx context.Context) error {
	if d.ml == nil {
		return nil
	}
	var err error
	for {
		var busy []string
		ok := d.call(func() {
			d.node.Withdraw()
			for _, r := range d.node.Leading() {
				d.node.Handover(d.now(), r, "")
			}
			busy = d.node.Busy()
		})
		if !ok || len(busy) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			err = fmt.Errorf("election: stop with roles %v not released: %w", busy, ctx.Err())
		case <-time.After(5 * time.Millisecond):
			continue
		}
		break
	}
	d.lifeMu.Lock()
	defer d.lifeMu.Unlock()
	select {
	case <-d.stop: // killed meanwhile: memberlist is gone
		return err
	default:
	}
	if lerr := d.ml.Leave(time.Second); lerr != nil {
		err = errors.Join(err, fmt.Errorf("election: leave: %w", lerr))
	}
	d.shutdown()
	d.log.Info("election stopped")
	return err
}

// Kill stops at once without releasing anything (tests: a crashed daemon).
// Held roles stay held on the host; callbacks are not called again.
func (d *Driver) Kill() {
	if d.ml != nil {
		d.lifeMu.Lock()
		defer d.lifeMu.Unlock()
		d.shutdown()
	}
}

func (d *Driver) shutdown() {
	d.stopOnce.Do(func() {
		close(d.stop)
		for _, w := range d.workers {
			w.endLead()
		}
		d.ml.Shutdown()
		d.bg.Wait()
	})
}

// RoleInfo is one role in Status.
type RoleInfo struct {
	Holder   string `json:"holder"` // the node this node is promised to ("" if none)
	Term     uint64 `json:"term"`
	Leader   bool   `json:"leader"` // this node holds the role
	Quorum   bool   `json:"quorum"` // this node heard from a majority within a lease
	State    string `json:"state"`
	Learning bool   `json:"learning"` // started without state, still learning the role's term
}

// Member is one gossip member in Status.
type Member struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	State string `json:"state"` // alive, suspect, dead, left
	Voter bool   `json:"voter"`
	// Eligibility is the member's gossiped health and priority per role.
	Eligibility map[string]Eligibility `json:"eligibility"`
}

// Status is the election as this node sees it.
type Status struct {
	Name    string
	Roles   map[string]RoleInfo
	Members []Member
	// Membership is the voter set this node counts quorums with; EpochFloor
	// the highest epoch it knows of (above Membership.Epoch while it is
	// stale); Settled whether it has counted under Membership for a full
	// lease and learned its terms (see Node.Settled).
	Membership Membership
	EpochFloor uint64
	Settled    bool
}

// Status returns a snapshot; after Stop or Kill it returns only the name.
func (d *Driver) Status() Status {
	s := Status{Name: d.cfg.Name, Roles: map[string]RoleInfo{}}
	elig := map[string]map[string]Eligibility{}
	d.call(func() {
		now := d.now()
		for name, r := range d.node.Status(now) {
			s.Roles[name] = RoleInfo{Holder: r.Holder, Term: r.Term, Leader: r.Leader, Quorum: r.Quorum, State: r.State, Learning: r.Learning}
		}
		s.Membership, s.EpochFloor = d.node.Membership()
		s.Settled = d.node.Settled(now, s.Membership.Epoch)
		for _, v := range d.cfg.voters() {
			elig[v] = d.node.Eligibility(v)
		}
	})
	if d.ml == nil {
		return s
	}
	select {
	case <-d.done:
		return s
	default:
	}
	for _, m := range d.ml.Members() {
		_, voter := d.addrs[m.Name]
		s.Members = append(s.Members, Member{Name: m.Name, Addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))),
			State: memberState(m.State), Voter: voter || m.Name == d.cfg.Name, Eligibility: elig[m.Name]})
	}
	return s
}

// worker runs one role's callbacks serially and in order.
type worker struct {
	d      *Driver
	role   string
	mu     sync.Mutex
	queue  []job
	signal chan struct{}
	// endTerm cancels the context handed to OnStartedLeading of the term
	// held now (nil while none is).
	endTerm context.CancelFunc
}

type job struct {
	kind     ChangeKind
	term     uint64
	deadline time.Time
	ctx      context.Context // Acquired: cancelled when the term is lost
}

// lead returns the context of a newly acquired term, cancelled by endLead.
func (w *worker) lead(term uint64) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	w.mu.Lock()
	prev := w.endTerm
	w.endTerm = func() { cancel(fmt.Errorf("election: %s term %d lost", w.role, term)) }
	w.mu.Unlock()
	if prev != nil { // a loss always comes first; never leave one running
		prev()
	}
	return ctx
}

// endLead cancels the held term's context, if any.
func (w *worker) endLead() {
	w.mu.Lock()
	end := w.endTerm
	w.endTerm = nil
	w.mu.Unlock()
	if end != nil {
		end()
	}
}

func newWorker(d *Driver, role string) *worker {
	return &worker{d: d, role: role, signal: make(chan struct{}, 1)}
}

func (w *worker) push(j job) {
	w.mu.Lock()
	if n := len(w.queue); j.kind == Renewed && n > 0 && w.queue[n-1].kind == Renewed && w.queue[n-1].term == j.term {
		w.queue[n-1] = j
	} else {
		w.queue = append(w.queue, j)
	}
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *worker) run() {
	for {
		select {
		case <-w.d.stop:
			return
		case <-w.signal:
		}
		for {
			w.mu.Lock()
			if len(w.queue) == 0 {
				w.mu.Unlock()
				break
			}
			j := w.queue[0]
			w.queue = w.queue[1:]
			w.mu.Unlock()
			select {
			case <-w.d.stop:
				return
			default:
			}
			w.do(j)
		}
	}
}

func (w *worker) do(j job) {
	cb := w.d.cb
	switch j.kind {
	case Acquired:
		if cb.OnStartedLeading != nil {
			cb.OnStartedLeading(j.ctx, w.role, j.term)
		}
	case Renewed:
		if cb.OnRenewed != nil {
			cb.OnRenewed(w.role, j.term, j.deadline)
		}
	case Lost:
		ok := w.release(j)
		select {
		case w.d.releasedC <- releaseDone{role: w.role, term: j.term, ok: ok}:
		case <-w.d.stop:
		}
	}
}

// release runs OnStoppedLeading under the release deadline (j.deadline: the
// loss plus ReleaseSlack) and reports whether Release may be sent: only for
// a release verified complete within its slack.
func (w *worker) release(j job) bool {
	cb := w.d.cb
	if cb.OnStoppedLeading == nil {
		return true
	}
	ctx, cancel := context.WithDeadline(context.Background(), j.deadline)
	defer cancel()
	err := cb.OnStoppedLeading(ctx, w.role, j.term)
	reason := ""
	switch {
	case err != nil:
		reason = "error"
	case time.Now().After(j.deadline):
		reason = "deadline"
		err = fmt.Errorf("release took %v past its slack", time.Since(j.deadline).Round(time.Millisecond))
	default:
		return true
	}
	w.d.met.releaseFailures.WithLabelValues(w.role, reason).Inc()
	w.d.log.Error("role release failed, sending no Release: the lease ends by expiry", "role", w.role, "term", j.term, "reason", reason, "err", err)
	return false
}
