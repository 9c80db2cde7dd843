package etcdembed

import (
	"testing"
	"time"
)

func leaderIndex(t *testing.T, tc *testCluster) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, m := range tc.members {
			if m.running() && m.IsLeader() {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader")
	return -1
}

// A real three-member cluster: the leader moves its leadership to another
// member, which then leads (and the old leader no longer does); a
// follower's MoveLeader does nothing; with one member stopped, the leader
// moves only to the running one; writes work throughout.
func TestMoveLeaderHandsLeadershipToAHealthyMember(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	l := leaderIndex(t, tc)
	to, err := tc.members[l].MoveLeader(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatalf("MoveLeader on the leader %s: %v", tc.peers[l].Name, err)
	}
	nl := leaderIndex(t, tc)
	if nl == l || tc.peers[nl].Name != to {
		t.Fatalf("MoveLeader from %s said %q, leader now %s", tc.peers[l].Name, to, tc.peers[nl].Name)
	}
	if tc.members[l].IsLeader() {
		t.Fatalf("%s still leads after moving its leadership", tc.peers[l].Name)
	}
	mustPut(t, tc.client(0, 1, 2), "after-move", "1")

	follower := 3 - l - nl
	if to, err := tc.members[follower].MoveLeader(ctxT(t, 10*time.Second)); err != nil || to != "" {
		t.Fatalf("MoveLeader on follower %s: %q, %v; want nothing done", tc.peers[follower].Name, to, err)
	}
	if leaderIndex(t, tc) != nl {
		t.Fatal("a follower's MoveLeader moved the leadership")
	}

	// Stop one follower: the leader may move only to the other one.
	tc.stop(follower)
	running := 3 - nl - follower
	to, err = tc.members[nl].MoveLeader(ctxT(t, 15*time.Second))
	if err != nil {
		t.Fatalf("MoveLeader with %s stopped: %v", tc.peers[follower].Name, err)
	}
	if to != tc.peers[running].Name || leaderIndex(t, tc) != running {
		t.Fatalf("MoveLeader with %s stopped moved to %q, want %s", tc.peers[follower].Name, to, tc.peers[running].Name)
	}
	mustPut(t, tc.client(nl, running), "after-second-move", "1")
}

// A single-member cluster has nobody to move to: a clear error, and the
// member keeps leading.
func TestMoveLeaderWithNoOtherMemberFailsClearly(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.startAll()
	leaderIndex(t, tc)
	_, err := tc.members[0].MoveLeader(ctxT(t, 10*time.Second))
	if err == nil {
		t.Fatal("MoveLeader in a one-member cluster succeeded")
	}
	t.Logf("error: %v", err)
	if !tc.members[0].IsLeader() {
		t.Fatal("the only member stopped leading")
	}
}
