package election

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// Single protocol rules checked directly on one node, each against the
// rule as DESIGN.md and doc.go state it. The simulation would find most of
// these only by chance; a mutation of any of them must fail here.

// newRuleNode returns node a of voters a, b, c with default vip timing,
// past its quiet period and term learning (b and c answered with state).
func newRuleNode(t *testing.T) (*Node, *testNet) {
	t.Helper()
	tn := newTestNet(t, 3, DefaultVIPTiming())
	tn.state["a"] = map[string]RoleState{RoleVIP: {LeaseDuration: tn.timing.LeaseDuration}}
	tn.start("a")
	n := tn.nodes["a"]
	tn.now = tn.quiet()
	n.Tick(tn.now)
	n.Advance()
	for _, p := range []string{"b", "c"} { // both proven alive in this run
		tn.stepRule(n, Message{Type: MsgTermReply, From: p, To: "a", Role: RoleVIP, Seq: n.nonce, OK: true})
	}
	return n, tn
}

func (tn *testNet) stepRule(n *Node, m Message) []Message {
	tn.t.Helper()
	if err := n.Step(tn.now, tn.forge(m)); err != nil {
		tn.t.Fatalf("step %v: %v", m, err)
	}
	rd := n.Ready()
	n.Advance()
	return rd.Messages
}

func replyTypes(ms []Message) []MsgType {
	var out []MsgType
	for _, m := range ms {
		out = append(out, m.Type)
	}
	return out
}

// A voter grants a term to one candidate only: once it granted b term 5,
// a Vote of c for term 5 is refused even after b's promise ended.
func TestAVoterGrantsATermToOneCandidateOnly(t *testing.T) {
	n, tn := newRuleNode(t)
	out := tn.stepRule(n, Message{Type: MsgVote, From: "b", To: "a", Role: RoleVIP, Term: 5, Seq: 1})
	if len(out) != 1 || out[0].Type != MsgGrant {
		t.Fatalf("vote of b for term 5: replies %v, want a grant", replyTypes(out))
	}
	tn.now += tn.timing.LeaseDuration + time.Millisecond // b's promise ran out
	out = tn.stepRule(n, Message{Type: MsgVote, From: "c", To: "a", Role: RoleVIP, Term: 5, Seq: 1})
	if len(out) != 1 || out[0].Type != MsgNack {
		t.Fatalf("vote of c for the term granted to b: replies %v, want a nack", replyTypes(out))
	}
	out = tn.stepRule(n, Message{Type: MsgVote, From: "c", To: "a", Role: RoleVIP, Term: 6, Seq: 2})
	if len(out) != 1 || out[0].Type != MsgGrant {
		t.Fatalf("vote of c for the next term: replies %v, want a grant", replyTypes(out))
	}
}

// A candidate counts only Grants for exactly its campaign term: a late
// Grant of an earlier campaign that carries the same round number (seq
// restarts with every incarnation) does not count.
func TestACandidateCountsOnlyGrantsOfItsTerm(t *testing.T) {
	n, tn := newRuleNode(t)
	r := n.roles[RoleVIP]
	r.immediate = true // campaign without PreVote
	r.campaignAt = tn.now
	n.Tick(tn.now)
	rd := n.Ready()
	n.Advance()
	var vote Message
	for _, m := range rd.Messages {
		if m.Type == MsgVote {
			vote = m
		}
	}
	if vote.Type != MsgVote {
		t.Fatalf("no vote sent: %v", replyTypes(rd.Messages))
	}
	tn.now += time.Millisecond
	tn.stepRule(n, Message{Type: MsgGrant, From: "b", To: "a", Role: RoleVIP, Term: vote.Term - 1, Seq: vote.Seq})
	if n.Status(tn.now)[RoleVIP].Leader {
		t.Fatal("a grant of an earlier term made the candidate leader")
	}
	tn.stepRule(n, Message{Type: MsgGrant, From: "b", To: "a", Role: RoleVIP, Term: vote.Term, Seq: vote.Seq})
	if !n.Status(tn.now)[RoleVIP].Leader {
		t.Fatal("the grant of its own term did not make the candidate leader")
	}
}

// The lease inequality against a reference computed here: with drift ε a
// lease one millisecond below renew·(1+ε)/(1−ε) + (1+ε)·(detect+release)
// is refused, one a microsecond above it accepted.
func TestTheSafetyInequalityCountsClockDrift(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for range 1000 {
		eps := []float64{0.0001, 0.001, 0.01, 0.05}[rng.IntN(4)]
		tm := Timing{
			RenewDeadline: time.Duration(100+rng.IntN(20000)) * time.Millisecond,
			DetectSlack:   time.Duration(rng.IntN(1000)) * time.Millisecond,
			ReleaseSlack:  time.Duration(rng.IntN(5000)) * time.Millisecond,
		}
		tm.RetryPeriod = tm.RenewDeadline / 5
		bound := float64(tm.RenewDeadline)*(1+eps)/(1-eps) + (1+eps)*float64(tm.DetectSlack+tm.ReleaseSlack)
		tm.LeaseDuration = time.Duration(math.Ceil(bound)) - time.Millisecond
		if err := tm.Validate(eps); err == nil {
			t.Fatalf("ε=%g %+v: a lease 1ms under the bound %v validated", eps, tm, time.Duration(bound))
		}
		tm.LeaseDuration = time.Duration(math.Ceil(bound)) + time.Microsecond
		if err := tm.Validate(eps); err != nil {
			t.Fatalf("ε=%g %+v: a lease just above the bound was refused: %v", eps, tm, err)
		}
	}
}

// Learning ends only with enough answers from voters that have their
// state: with five voters, two such answers do not cover a term three
// others may have granted without this node; three do.
func TestLearningNeedsAnswersFromMoreThanNMinusQVotersWithState(t *testing.T) {
	tn := newTestNet(t, 5, DefaultVIPTiming())
	tn.start("a")
	n := tn.nodes["a"]
	n.Advance()
	reply := func(from string, known bool, max uint64) {
		tn.stepRule(n, Message{Type: MsgTermReply, From: from, To: "a", Role: RoleVIP, Seq: n.nonce, OK: known, MaxTerm: max})
	}
	// A reply recorded in an earlier run (another nonce), replayed, counts
	// for nothing.
	for _, from := range []string{"b", "c", "d", "e"} {
		tn.stepRule(n, Message{Type: MsgTermReply, From: from, To: "a", Role: RoleVIP, Seq: n.nonce + 2, OK: true})
	}
	if !n.Status(tn.now)[RoleVIP].Learning {
		t.Fatal("learning ended on replies to another run's nonce")
	}
	reply("b", true, 3)
	reply("c", true, 4)
	if !n.Status(tn.now)[RoleVIP].Learning {
		t.Fatal("learning ended with two answers with state out of five voters")
	}
	reply("d", true, 9)
	st := n.Status(tn.now)[RoleVIP]
	if st.Learning || st.Term != 9 {
		t.Fatalf("after three answers with state: learning %v, term %d; want done, 9", st.Learning, st.Term)
	}
}

// A node is settled in a membership once it has counted quorums under it
// for a full lease — and only if it is not still learning its terms: a
// change that removed the voters it learns from could lose a term.
func TestANodeStillLearningIsNotSettled(t *testing.T) {
	tn := newTestNet(t, 3, DefaultVIPTiming())
	tn.start("a")
	n := tn.nodes["a"]
	n.Advance()
	tn.now += 2 * tn.timing.LeaseDuration
	if n.Settled(tn.now, 1) {
		t.Fatal("settled while still learning its term")
	}
	tn.stepRule(n, Message{Type: MsgTermReply, From: "b", To: "a", Role: RoleVIP, Seq: n.nonce, OK: true, MaxTerm: 2})
	tn.stepRule(n, Message{Type: MsgTermReply, From: "c", To: "a", Role: RoleVIP, Seq: n.nonce, OK: true, MaxTerm: 1})
	if !n.Settled(tn.now, 1) {
		t.Fatal("not settled after learning, two leases into its membership")
	}
	if err := n.SetMembership(tn.now, Membership{Epoch: 2, Voters: []string{"a", "b", "d"}, Old: []string{"a", "b", "c"}}); err != nil {
		t.Fatal(err)
	}
	if n.Settled(tn.now+tn.timing.LeaseDuration/2, 2) {
		t.Fatal("settled in a membership adopted half a lease ago")
	}
	if !n.Settled(tn.now+tn.quiet(), 2) {
		t.Fatal("not settled a lease after adopting the membership")
	}
}

// After a restart a voter's replay windows are empty: a captured Heartbeat
// of a dead leader would be new to it. It answers a Vote or Heartbeat only
// from an incarnation that answered this run's TermQuery nonce; an old
// TermReply replayed (another nonce) proves nothing.
func TestARestartedVoterAnswersOnlyIncarnationsProvenAlive(t *testing.T) {
	tn := newTestNet(t, 3, DefaultVIPTiming())
	tn.state["a"] = map[string]RoleState{RoleVIP: {MaxTerm: 3, VotedFor: "b", LeaseDuration: tn.timing.LeaseDuration}}
	tn.start("a")
	n := tn.nodes["a"]
	n.Advance()
	tn.now = tn.quiet()
	n.Tick(tn.now)
	n.Advance()
	hb := Message{Type: MsgHeartbeat, From: "b", To: "a", Role: RoleVIP, Term: 3, Seq: 7}
	out := tn.stepRule(n, hb)
	if len(out) != 1 || out[0].Type != MsgTermQuery || out[0].Seq != n.nonce {
		t.Fatalf("heartbeat of an unproven incarnation: replies %v, want one term query with the nonce", replyTypes(out))
	}
	tn.stepRule(n, Message{Type: MsgTermReply, From: "b", To: "a", Role: RoleVIP, Seq: n.nonce + 2, OK: true})
	tn.now += tn.timing.RetryPeriod
	if out := tn.stepRule(n, hb); len(out) != 1 || out[0].Type != MsgTermQuery {
		t.Fatalf("after a reply to another nonce: replies %v, want another term query", replyTypes(out))
	}
	tn.stepRule(n, Message{Type: MsgTermReply, From: "b", To: "a", Role: RoleVIP, Seq: n.nonce, OK: true})
	if out := tn.stepRule(n, hb); len(out) != 1 || out[0].Type != MsgAck {
		t.Fatalf("heartbeat of a proven incarnation: replies %v, want an ack", replyTypes(out))
	}
}

// A node that wins while unhealthy (no healthy peer took the role) leads a
// full lease before it hands over for ill health: seen in the lab, two
// recovering masters each gossiping the other as healthy passed the role
// back and forth every ~100 ms.
func TestAnUnhealthyWinnerLeadsALeaseBeforeHandingOver(t *testing.T) {
	n, tn := newRuleNode(t)
	n.SetHealthy(tn.now, RoleVIP, false) // unhealthy since long before it wins
	tn.now += 2 * tn.timing.LeaseDuration
	r := n.roles[RoleVIP]
	r.immediate, r.campaignAt = true, tn.now
	n.Tick(tn.now)
	rd := n.Ready()
	n.Advance()
	var vote Message
	for _, m := range rd.Messages {
		if m.Type == MsgVote {
			vote = m
		}
	}
	tn.stepRule(n, Message{Type: MsgGrant, From: "b", To: "a", Role: RoleVIP, Term: vote.Term, Seq: vote.Seq})
	if !n.Status(tn.now)[RoleVIP].Leader {
		t.Fatal("the candidate did not win")
	}
	lost := func() bool {
		rd := n.Ready()
		n.Advance()
		for _, c := range rd.Changes {
			if c.Kind == Lost {
				return true
			}
		}
		return false
	}
	// Keep it renewed (b acknowledges every heartbeat) and unhealthy.
	end := tn.now + tn.timing.LeaseDuration
	for tn.now < end-tn.timing.RetryPeriod {
		tn.now += 10 * time.Millisecond
		n.Tick(tn.now)
		rd := n.Ready()
		n.Advance()
		for _, m := range rd.Messages {
			if m.Type == MsgHeartbeat && m.To == "b" {
				tn.stepRule(n, Message{Type: MsgAck, From: "b", To: "a", Role: RoleVIP, Term: m.Term, Seq: m.Seq})
			}
		}
		for _, c := range rd.Changes {
			if c.Kind == Lost {
				t.Fatalf("handed over %v after winning, before a lease of ill health as leader", tn.now-(end-tn.timing.LeaseDuration))
			}
		}
	}
	tn.now = end + 50*time.Millisecond
	n.Tick(tn.now)
	if !lost() {
		t.Fatal("no handover after a lease of ill health as leader")
	}
}
