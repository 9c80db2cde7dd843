package election

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// testNet is a synchronous in-memory network for scenario tests: every
// message is delivered one millisecond after it was sent unless drop says
// otherwise; Lost roles are released at once unless holdRelease is set.
type testNet struct {
	t           *testing.T
	now         time.Duration
	ids         []string
	timing      Timing
	nodes       map[string]*Node
	state       map[string]map[string]RoleState
	inc         map[string]uint64
	inflight    []flight
	drop        func(Message) bool
	delay       func(Message) time.Duration
	holdRelease bool
	events      []string // "n1 acquired 1", "n2 lost 1"
	sent        []Message
	rng         *rand.Rand
	prio        map[string]int
	forged      uint64
}

type flight struct {
	at time.Duration
	m  Message
}

func newTestNet(t *testing.T, n int, timing Timing) *testNet {
	tn := &testNet{t: t, timing: timing, nodes: map[string]*Node{}, state: map[string]map[string]RoleState{},
		inc: map[string]uint64{}, rng: rand.New(rand.NewPCG(1, 2)), prio: map[string]int{}}
	for i := range n {
		tn.ids = append(tn.ids, string(rune('a'+i)))
	}
	return tn
}

func (tn *testNet) start(id string) {
	tn.inc[id]++
	cfg := Config{ID: id, Voters: tn.ids, Roles: map[string]Timing{RoleVIP: tn.timing}, Drift: DefaultDrift,
		Rand: tn.rng.Uint64, Priority: tn.prio[id]}
	n, err := NewNode(cfg, tn.state[id], tn.inc[id], tn.now)
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.nodes[id] = n
	tn.collect(id)
}

func (tn *testNet) startAll() *testNet {
	for _, id := range tn.ids {
		tn.start(id)
	}
	return tn
}

func (tn *testNet) stop(id string) { delete(tn.nodes, id) }

// quiet is the restart quiet period every node keeps after a start.
func (tn *testNet) quiet() time.Duration {
	return time.Duration(float64(tn.timing.LeaseDuration)*(1+2*DefaultDrift)) + time.Millisecond
}

// boot starts every node and runs past the quiet period and a first
// election.
func (tn *testNet) boot() *testNet {
	tn.startAll().run(tn.quiet() + 100*time.Millisecond)
	return tn
}

// forge completes a hand-made message from a voter as its node would:
// config and membership hashes, epoch, the sender's incarnation and a fresh
// counter.
func (tn *testNet) forge(m Message) Message {
	tn.forged++
	m.ConfigHash = ConfigHash(m.Role, tn.timing)
	m.Epoch = 1
	m.MemberHash = Membership{Epoch: 1, Voters: tn.ids}.Hash()
	m.Incarnation = tn.inc[m.From]
	m.Counter = 1<<40 + tn.forged
	return m
}

func (tn *testNet) collect(id string) {
	n := tn.nodes[id]
	for n != nil && n.HasReady() {
		rd := n.Ready()
		if rd.State != nil {
			tn.state[id] = rd.State
		}
		for _, m := range rd.Messages {
			tn.sent = append(tn.sent, m)
			if tn.drop == nil || !tn.drop(m) {
				d := time.Millisecond
				if tn.delay != nil {
					d = tn.delay(m)
				}
				tn.inflight = append(tn.inflight, flight{at: tn.now + d, m: m})
			}
		}
		n.Advance()
		for _, c := range rd.Changes {
			if c.Kind == Renewed {
				continue
			}
			tn.events = append(tn.events, id+" "+c.Kind.String())
			if c.Kind == Lost && !tn.holdRelease {
				n.Released(tn.now, c.Role, c.Term)
			}
		}
	}
}

// run advances time by d in 1ms steps, delivering and ticking.
func (tn *testNet) run(d time.Duration) {
	end := tn.now + d
	for tn.now < end {
		tn.now += time.Millisecond
		var due []flight
		rest := tn.inflight[:0]
		for _, f := range tn.inflight {
			if f.at <= tn.now {
				due = append(due, f)
			} else {
				rest = append(rest, f)
			}
		}
		tn.inflight = rest
		for _, f := range due {
			if n := tn.nodes[f.m.To]; n != nil {
				n.Step(tn.now, f.m)
				tn.collect(f.m.To)
			}
		}
		for _, id := range tn.ids {
			if n := tn.nodes[id]; n != nil {
				n.Tick(tn.now)
				tn.collect(id)
			}
		}
	}
}

func (tn *testNet) leader() string {
	var ls []string
	for _, id := range tn.ids {
		if n := tn.nodes[id]; n != nil && n.Status(tn.now)[RoleVIP].State == "leader" {
			ls = append(ls, id)
		}
	}
	if len(ls) > 1 {
		tn.t.Fatalf("two leaders: %v", ls)
	}
	if len(ls) == 0 {
		return ""
	}
	return ls[0]
}

func (tn *testNet) term() uint64 {
	if l := tn.leader(); l != "" {
		return tn.nodes[l].Status(tn.now)[RoleVIP].Term
	}
	return 0
}

func (tn *testNet) sentSince(i int, typ MsgType, from string) []Message {
	var out []Message
	for _, m := range tn.sent[i:] {
		if m.Type == typ && (from == "" || m.From == from) {
			out = append(out, m)
		}
	}
	return out
}

func isolate(id string) func(Message) bool {
	return func(m Message) bool { return m.From == id || m.To == id }
}

func TestScenarios(t *testing.T) {
	vip := DefaultVIPTiming()
	cases := []struct {
		name string
		run  func(t *testing.T, tn *testNet)
	}{
		{"a fresh three-node cluster elects the best-ranked node in one round", func(t *testing.T, tn *testNet) {
			tn.boot()
			if l := tn.leader(); l != "a" {
				t.Fatalf("leader %q, want a (first by name)", l)
			}
			if tn.term() != 1 {
				t.Fatalf("term %d, want 1", tn.term())
			}
		}},
		{"a higher priority wins the first round", func(t *testing.T, tn *testNet) {
			tn.prio["c"] = 5
			tn.startAll()
			for _, id := range tn.ids {
				tn.nodes[id].SetPeerEligibility("c", RoleVIP, Eligibility{Healthy: true, Priority: 5})
			}
			tn.run(tn.quiet() + 200*time.Millisecond)
			if l := tn.leader(); l != "c" {
				t.Fatalf("leader %q, want c", l)
			}
		}},
		{"a healthy leader is not replaced", func(t *testing.T, tn *testNet) {
			tn.boot()
			l, term := tn.leader(), tn.term()
			tn.run(10 * time.Second)
			if tn.leader() != l || tn.term() != term {
				t.Fatalf("leader %s/%d became %s/%d", l, term, tn.leader(), tn.term())
			}
		}},
		{"a voter promised to a leader nacks another candidate whatever its term", func(t *testing.T, tn *testNet) {
			tn.boot()
			l := tn.leader()
			voter := tn.ids[(slices.Index(tn.ids, l)+1)%3]
			v := tn.nodes[voter]
			other := tn.ids[(slices.Index(tn.ids, l)+2)%3]
			before := len(tn.sent)
			v.Step(tn.now, tn.forge(Message{Type: MsgVote, From: other, To: voter, Role: RoleVIP, Term: 99, Seq: 1,
				ConfigHash: ConfigHash(RoleVIP, tn.timing), Incarnation: tn.inc[other]}))
			tn.collect(voter)
			nacks := tn.sentSince(before, MsgNack, voter)
			if len(nacks) != 1 || nacks[0].PromisedTo != l || nacks[0].Remaining <= 0 {
				t.Fatalf("want one nack naming %s with time remaining, got %v", l, nacks)
			}
			if got := v.Status(tn.now)[RoleVIP].Term; got != 1 {
				t.Fatalf("a rejected vote raised the voter's term to %d", got)
			}
			if len(tn.sentSince(before, MsgGrant, voter)) != 0 {
				t.Fatal("voter granted while promised")
			}
		}},
		{"a leader cut off from everyone lets go at its deadline and another takes over after the lease", func(t *testing.T, tn *testNet) {
			tn.boot()
			l, term := tn.leader(), tn.term()
			tn.drop = isolate(l)
			tn.run(vip.RenewDeadline + 10*time.Millisecond)
			if tn.nodes[l].Status(tn.now)[RoleVIP].Leader {
				t.Fatalf("%s still leads after renewDeadline", l)
			}
			tn.run(vip.LeaseDuration + 500*time.Millisecond)
			if nl := tn.leader(); nl == "" || nl == l || tn.term() <= term {
				t.Fatalf("after the lease: leader %q term %d (old %s/%d)", nl, tn.term(), l, term)
			}
		}},
		{"a leader sends release only after the release completed", func(t *testing.T, tn *testNet) {
			tn.holdRelease = true
			tn.boot()
			l, term := tn.leader(), tn.term()
			before := len(tn.sent)
			if !tn.nodes[l].Handover(tn.now, RoleVIP, "") {
				t.Fatal("handover refused")
			}
			tn.collect(l)
			tn.run(50 * time.Millisecond)
			if n := len(tn.sentSince(before, MsgRelease, l)); n != 0 {
				t.Fatalf("%d releases sent before Released", n)
			}
			if tn.leader() != "" {
				t.Fatal("someone leads while the old leader is still releasing")
			}
			tn.nodes[l].Released(tn.now, RoleVIP, term)
			tn.collect(l)
			if n := len(tn.sentSince(before, MsgRelease, l)); n != 2 {
				t.Fatalf("%d releases after Released, want 2", n)
			}
		}},
		{"a graceful handover makes the successor leader in one round trip", func(t *testing.T, tn *testNet) {
			tn.boot()
			l := tn.leader()
			succ := tn.ids[(slices.Index(tn.ids, l)+2)%3]
			tn.nodes[l].Handover(tn.now, RoleVIP, succ)
			tn.collect(l)
			tn.run(5 * time.Millisecond)
			if nl := tn.leader(); nl != succ {
				t.Fatalf("leader %q 5ms after handover, want %s", nl, succ)
			}
		}},
		{"a release of an old term does not drop a newer promise", func(t *testing.T, tn *testNet) {
			tn.boot()
			l, term := tn.leader(), tn.term()
			voter := tn.ids[(slices.Index(tn.ids, l)+1)%3]
			tn.nodes[voter].Step(tn.now, tn.forge(Message{Type: MsgRelease, From: l, To: voter, Role: RoleVIP, Term: term - 1,
				ConfigHash: ConfigHash(RoleVIP, tn.timing), Incarnation: tn.inc[l]}))
			if h := tn.nodes[voter].Status(tn.now)[RoleVIP].Holder; h != l {
				t.Fatalf("holder %q after a stale release, want %s", h, l)
			}
		}},
		{"a late heartbeat of a released term does not re-create the promise", func(t *testing.T, tn *testNet) {
			tn.boot()
			l, term := tn.leader(), tn.term()
			voter := tn.ids[(slices.Index(tn.ids, l)+1)%3]
			hash := ConfigHash(RoleVIP, tn.timing)
			v := tn.nodes[voter]
			v.Step(tn.now, tn.forge(Message{Type: MsgRelease, From: l, To: voter, Role: RoleVIP, Term: term, ConfigHash: hash, Incarnation: tn.inc[l]}))
			before := len(tn.sent)
			v.Step(tn.now, tn.forge(Message{Type: MsgHeartbeat, From: l, To: voter, Role: RoleVIP, Term: term, Seq: 1, ConfigHash: hash, Incarnation: tn.inc[l]}))
			tn.collect(voter)
			if len(tn.sentSince(before, MsgAck, voter)) != 0 || v.Status(tn.now)[RoleVIP].Holder == l {
				t.Fatal("a late heartbeat of a released term re-created the promise")
			}
		}},
		{"a restarted node sends nothing binding during its quiet period", func(t *testing.T, tn *testNet) {
			tn.boot()
			l := tn.leader()
			voter := tn.ids[(slices.Index(tn.ids, l)+1)%3]
			tn.stop(voter)
			tn.run(10 * time.Millisecond)
			before := len(tn.sent)
			tn.start(voter)
			quiet := time.Duration(float64(vip.LeaseDuration) * (1 + 2*DefaultDrift))
			tn.run(quiet - 5*time.Millisecond)
			for _, typ := range []MsgType{MsgGrant, MsgAck, MsgVote, MsgHeartbeat} {
				if n := len(tn.sentSince(before, typ, voter)); n != 0 {
					t.Fatalf("restarted voter sent %d %s in its quiet period", n, typ)
				}
			}
			tn.run(200 * time.Millisecond)
			if len(tn.sentSince(before, MsgAck, voter)) == 0 {
				t.Fatal("voter never acked after its quiet period")
			}
		}},
		{"a restarted leader releases its persisted term and never reuses it", func(t *testing.T, tn *testNet) {
			tn.boot()
			l, term := tn.leader(), tn.term()
			tn.stop(l)
			before := len(tn.sent)
			tn.start(l)
			rels := tn.sentSince(before, MsgRelease, l)
			if len(rels) != 2 || rels[0].Term != term {
				t.Fatalf("restart sent %v, want Release{term %d} to both peers", rels, term)
			}
			tn.run(5 * time.Second)
			if tn.term() <= term {
				t.Fatalf("term %d after restart, want > %d", tn.term(), term)
			}
		}},
		{"terms never go backwards after every node power-cycles", func(t *testing.T, tn *testNet) {
			tn.boot()
			term := tn.term()
			for _, id := range tn.ids {
				tn.stop(id)
			}
			tn.run(time.Second)
			tn.startAll().run(3 * time.Second)
			if tn.term() <= term {
				t.Fatalf("term %d after power cycle, want > %d", tn.term(), term)
			}
		}},
		{"a leader steps down at once on a nack with a higher term", func(t *testing.T, tn *testNet) {
			tn.boot()
			l, term := tn.leader(), tn.term()
			voter := tn.ids[(slices.Index(tn.ids, l)+1)%3]
			tn.nodes[l].Step(tn.now, tn.forge(Message{Type: MsgNack, From: voter, To: l, Role: RoleVIP, Term: term, MaxTerm: term + 5,
				ConfigHash: ConfigHash(RoleVIP, tn.timing), Incarnation: tn.inc[voter]}))
			tn.collect(l)
			if tn.nodes[l].Status(tn.now)[RoleVIP].Leader {
				t.Fatal("leader kept the role after a nack with a higher term")
			}
		}},
		{"an unhealthy leader hands over to a healthy peer after a lease", func(t *testing.T, tn *testNet) {
			tn.boot()
			l := tn.leader()
			tn.nodes[l].SetHealthy(tn.now, RoleVIP, false)
			for _, id := range tn.ids {
				if id != l {
					tn.nodes[id].SetPeerEligibility(l, RoleVIP, Eligibility{Healthy: false})
				}
			}
			tn.run(vip.LeaseDuration / 2)
			if tn.leader() != l {
				t.Fatal("handed over before the hysteresis")
			}
			tn.run(vip.LeaseDuration)
			if nl := tn.leader(); nl == "" || nl == l {
				t.Fatalf("leader %q, want a healthy peer", nl)
			}
		}},
		{"a leader hands over to a live peer with a higher priority after a lease", func(t *testing.T, tn *testNet) {
			tn.boot()
			l := tn.leader()
			better := tn.ids[(slices.Index(tn.ids, l)+1)%3]
			for _, id := range tn.ids {
				tn.nodes[id].SetPeerEligibility(better, RoleVIP, Eligibility{Healthy: true, Priority: 10})
			}
			tn.run(vip.LeaseDuration / 2)
			if tn.leader() != l {
				t.Fatal("preempted before a lease")
			}
			tn.run(vip.LeaseDuration)
			if nl := tn.leader(); nl != better {
				t.Fatalf("leader %q, want the higher-priority %s", nl, better)
			}
			tn.run(5 * time.Second)
			if nl := tn.leader(); nl != better {
				t.Fatalf("leader %q later, want %s to keep it", nl, better)
			}
		}},
		{"an equal-priority peer never preempts by name alone", func(t *testing.T, tn *testNet) {
			tn.startAll()
			for _, id := range tn.ids {
				tn.nodes[id].SetPeerEligibility("a", RoleVIP, Eligibility{Healthy: false})
			}
			tn.nodes["a"].SetHealthy(0, RoleVIP, false)
			tn.run(tn.quiet() + 300*time.Millisecond)
			l := tn.leader()
			if l == "a" || l == "" {
				t.Fatalf("leader %q, want a healthy node", l)
			}
			tn.nodes["a"].SetHealthy(tn.now, RoleVIP, true)
			for _, id := range tn.ids {
				tn.nodes[id].SetPeerEligibility("a", RoleVIP, Eligibility{Healthy: true})
			}
			tn.run(5 * time.Second)
			if nl := tn.leader(); nl != l {
				t.Fatalf("leader moved from %s to %s though nobody is strictly better", l, nl)
			}
		}},
		{"a minority never elects a leader", func(t *testing.T, tn *testNet) {
			tn.drop = func(m Message) bool { return m.From == "a" || m.To == "a" || m.From == "b" || m.To == "b" }
			tn.startAll().run(5 * time.Second)
			if l := tn.leader(); l != "" {
				t.Fatalf("%s leads with no quorum", l)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newTestNet(t, 3, vip))
		})
	}
	t.Run("a handover among five wins in a few ms even when the Release reaches voters after the Vote", func(t *testing.T) {
		tn := newTestNet(t, 5, vip)
		tn.boot()
		l := tn.leader()
		tn.delay = func(m Message) time.Duration {
			if m.Type == MsgRelease && m.From == l && m.To != "b" {
				return 5 * time.Millisecond
			}
			return time.Millisecond
		}
		tn.nodes[l].Handover(tn.now, RoleVIP, "b")
		tn.collect(l)
		tn.run(30 * time.Millisecond)
		if nl := tn.leader(); nl != "b" {
			t.Fatalf("leader %q 30ms after handover, want b", nl)
		}
	})
}

func TestStepRejectsForeignMessagesWithAReason(t *testing.T) {
	tn := newTestNet(t, 3, DefaultVIPTiming()).startAll()
	n := tn.nodes["a"]
	tn.inc["b"] = 5
	first := tn.forge(Message{Type: MsgPreVote, From: "b", To: "a", Role: RoleVIP})
	if err := n.Step(0, first); err != nil {
		t.Fatalf("a well-formed message was rejected: %v", err)
	}
	forge := func(f func(*Message)) Message {
		m := tn.forge(Message{Type: MsgVote, From: "b", To: "a", Role: RoleVIP})
		f(&m)
		return m
	}
	cases := []struct {
		reason string
		m      Message
	}{
		{"misdirected", forge(func(m *Message) { m.To = "c" })},
		{"unknown_sender", forge(func(m *Message) { m.From = "z" })},
		{"unknown_role", forge(func(m *Message) { m.Role = "nope" })},
		{"config_hash", forge(func(m *Message) { m.ConfigHash++ })},
		{"member_hash", forge(func(m *Message) { m.MemberHash++ })},
		{"stale_incarnation", forge(func(m *Message) { m.Incarnation = 4 })},
		{"replay", first},
		{"replay", forge(func(m *Message) { m.Counter = 0 })},
		{"replay", forge(func(m *Message) { m.Counter = first.Counter - replayWindowSize })},
	}
	for _, c := range cases {
		err := n.Step(0, c.m)
		var re *RejectError
		if !errors.As(err, &re) || re.Reason != c.reason {
			t.Errorf("%s: got %v", c.reason, err)
		}
	}
	// A sender of a newer membership that this node does not know yet is
	// heard (it may be a voter this node was not told of), and raises the
	// epoch floor.
	z := tn.forge(Message{Type: MsgTermQuery, From: "z", To: "a", Role: RoleVIP})
	z.Epoch, z.MemberHash = 2, 7
	if err := n.Step(0, z); err != nil {
		t.Fatalf("a sender of a newer epoch was rejected: %v", err)
	}
	if _, floor := n.Membership(); floor != 2 {
		t.Fatalf("epoch floor %d after a message of epoch 2, want 2", floor)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	bad := Config{ID: "x", Voters: []string{"a", "a"}, Drift: 0.5,
		Roles: map[string]Timing{"vip": {LeaseDuration: time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 3 * time.Second}}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"id \"x\": must be one of voters", "listed twice", "drift 0.5", "renewDeadline", "leaseDuration", "rand: must be set"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestTimingProfilesSatisfyTheSafetyInequality(t *testing.T) {
	for name, tm := range map[string]Timing{"vip": DefaultVIPTiming(), "fast": FastVIPTiming(), "unit": DefaultUnitTiming()} {
		if err := tm.Validate(DefaultDrift); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// fast is only safe with its small release slack (the kernel fence).
	f := FastVIPTiming()
	f.ReleaseSlack = DefaultVIPTiming().ReleaseSlack
	if err := f.Validate(DefaultDrift); err == nil || !strings.Contains(err.Error(), "must be at least") {
		t.Errorf("fast with the default release slack validated: %v", err)
	}
}

// TestStatusLeaderEndsAtTheDeadlineEvenWhileReleasing: a holder cut off from
// the voters whose release callback never finishes (stalled cleanup) stays in
// state releasing, but Status stops calling it the leader at its deadline, so
// that when the majority elects a new holder exactly one node reports Leader.
func TestStatusLeaderEndsAtTheDeadlineEvenWhileReleasing(t *testing.T) {
	tn := newTestNet(t, 3, DefaultVIPTiming()).startAll()
	tn.run(5 * time.Second)
	old := tn.leader()
	if old == "" {
		t.Fatal("no leader elected")
	}
	tn.holdRelease = true
	tn.drop = isolate(old)
	deadline := tn.nodes[old].Status(tn.now)[RoleVIP].Deadline
	tn.run(deadline - tn.now + time.Millisecond)
	st := tn.nodes[old].Status(tn.now)[RoleVIP]
	if st.State != "releasing" || st.Leader {
		t.Fatalf("cut-off holder just past its deadline: state %s, leader %v; want releasing, not leader", st.State, st.Leader)
	}
	tn.run(5 * time.Second)
	var leaders []string
	for _, id := range tn.ids {
		if tn.nodes[id].Status(tn.now)[RoleVIP].Leader {
			leaders = append(leaders, id)
		}
	}
	if len(leaders) != 1 || leaders[0] == old {
		t.Fatalf("after the majority's election: leaders %v (old %s still releasing: %s)", leaders, old, tn.nodes[old].Status(tn.now)[RoleVIP].State)
	}
}

// TestBusyVoterDoesNotRefuseAPreVote: when the leader dies, the voters'
// promises to it run out at slightly different times (here c heard its
// heartbeats 60 ms after b). The best-ranked survivor b pre-votes first,
// while c is still bound. c must not answer no (that would end b's round and
// cost it a round plus a back-off); it stays silent and b, asking again a
// retry period later, gets its yes and wins.
func TestBusyVoterDoesNotRefuseAPreVote(t *testing.T) {
	tn := newTestNet(t, 3, DefaultVIPTiming()).startAll()
	tn.delay = func(m Message) time.Duration {
		if m.From == "a" && m.To == "c" {
			return 60 * time.Millisecond
		}
		return time.Millisecond
	}
	tn.run(5 * time.Second)
	for tn.leader() != "a" {
		// a is best-ranked (by name) and wins the first election; wait
		// until its heartbeats have settled.
		tn.run(100 * time.Millisecond)
		if tn.now > 20*time.Second {
			t.Fatalf("leader %q, want a", tn.leader())
		}
	}
	mark := len(tn.sent)
	tn.stop("a")
	tn.run(3 * time.Second)
	if l := tn.leader(); l != "b" {
		t.Errorf("new leader %q, want b (the best-ranked survivor)", l)
	}
	for _, m := range tn.sentSince(mark, MsgPreVoteResp, "c") {
		if !m.OK {
			t.Errorf("c refused a PreVote while its promise to a was running out: %v", m)
		}
	}
}

// After a leader dies, only the best-ranked survivor campaigns: the
// next-best counts it ahead even though, as a follower, it has not heard it
// lately. When followers took "heard once, not within a lease" for down,
// a survivor that had heard the other in an earlier term ranked itself
// first too, both campaigned together and could split the vote (seen in
// the lab as a takeover about a second late).
func TestOnlyTheBestSurvivorCampaignsAfterTheLeaderDies(t *testing.T) {
	handTo := func(tn *testNet, to string) {
		t.Helper()
		l := tn.leader()
		tn.nodes[l].Handover(tn.now, RoleVIP, to)
		tn.collect(l)
		tn.run(2 * time.Second)
		if nl := tn.leader(); nl != to {
			t.Fatalf("leader %q after handover, want %s", nl, to)
		}
	}
	for seed := range uint64(20) {
		tn := newTestNet(t, 3, DefaultVIPTiming())
		tn.rng = rand.New(rand.NewPCG(seed, 7))
		tn.startAll().run(3 * time.Second)
		// b leads for a while (c hears it), then a again: c last heard b
		// more than a lease ago.
		handTo(tn, "b")
		handTo(tn, "a")
		term := tn.term()
		mark := len(tn.sent)
		tn.stop("a")
		tn.run(3 * time.Second)
		if l := tn.leader(); l != "b" || tn.term() != term+1 {
			t.Errorf("seed %d: leader %q in term %d, want b in term %d (one round)", seed, l, tn.term(), term+1)
		}
		if pv := tn.sentSince(mark, MsgPreVote, "c"); len(pv) > 0 {
			t.Errorf("seed %d: c campaigned alongside b (%d PreVotes); it ranks behind b", seed, len(pv))
		}
	}
}
