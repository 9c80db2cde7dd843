package etcdembed

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// masterd.yaml's peers only seed the first boot: a master whose peers list
// itself alone (the first of a cluster grown by `masterd member add`) must
// still see that the members its data knows serve etcd. Restore and
// Recover read them from the member's own backend and refuse, naming them,
// and nothing moves.
func TestRestoreAndRecoverProbeTheMembersTheDataKnowsBeyondThePeers(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	mustPut(t, tc.members[1].Client(), "k", "v")
	snap := filepath.Join(tc.dir, "snap.db")
	if err := tc.members[1].Snapshot(ctxT(t, 30*time.Second), snap); err != nil {
		t.Fatal(err)
	}
	tc.stop(0)
	stale := tc.cfgs[0]
	stale.Members = []Peer{tc.peers[0]}
	before := siblings(t, stale.DataDir)

	_, err := Restore(ctxT(t, 30*time.Second), snap, stale, RestoreOptions{MoveAside: true})
	var serving *PeersServingError
	if !errors.As(err, &serving) || !slices.Equal(serving.Peers, []string{"m1", "m2"}) {
		t.Fatalf("restore with peers [m0] while m1 and m2 serve: %v, want a PeersServingError naming m1, m2", err)
	}
	t.Logf("restore refused: %v", err)
	err = Recover(ctxT(t, 30*time.Second), stale, RecoverOptions{})
	if !errors.As(err, &serving) || !slices.Equal(serving.Peers, []string{"m1", "m2"}) {
		t.Fatalf("recover with peers [m0] while m1 and m2 serve: %v, want a PeersServingError naming m1, m2", err)
	}
	if after := siblings(t, stale.DataDir); !slices.Equal(before, after) {
		t.Errorf("refused restore or recover changed the data dir's neighbourhood: %v, was %v", after, before)
	}
	tc.start(0)
	if got := mustGet(t, tc.members[0].Client(), "k"); got != "v" {
		t.Errorf("m0 reads %q after the refusals, want v", got)
	}
}
