package etcdembed

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// siblings lists the names beside dir that start with its base name (the
// data dir itself, its lock, anything moved aside or half restored).
func siblings(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), filepath.Base(dir)) {
			names = append(names, e.Name())
		}
	}
	return names
}

// A running member holds its data dir's lock: Restore into it is refused,
// naming the holder's PID, and nothing moves.
func TestRestoreRefusesWhileTheMemberRuns(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.start(0)
	mustPut(t, tc.members[0].Client(), "k", "v")
	snap := filepath.Join(tc.dir, "snap.db")
	if err := tc.members[0].Snapshot(ctxT(t, 30*time.Second), snap); err != nil {
		t.Fatal(err)
	}
	before := siblings(t, tc.cfgs[0].DataDir)
	_, err := Restore(ctxT(t, 30*time.Second), snap, tc.cfgs[0], RestoreOptions{MoveAside: true, Force: true})
	var inUse *DataDirInUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() {
		t.Fatalf("restore under a running member: %v, want a DataDirInUseError naming pid %d", err, os.Getpid())
	}
	t.Logf("refused: %v", err)
	if after := siblings(t, tc.cfgs[0].DataDir); !slices.Equal(before, after) {
		t.Errorf("refused restore changed the data dir's neighbourhood: %v, was %v", after, before)
	}
	if got := mustGet(t, tc.members[0].Client(), "k"); got != "v" {
		t.Errorf("running member reads %q after a refused restore, want v", got)
	}
	// A second Member on the same data dir (same process) is refused too.
	other, err := New(tc.cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(ctxT(t, 10*time.Second)); !errors.As(err, &inUse) {
		t.Errorf("second member on a running member's data dir: %v, want DataDirInUseError", err)
	}
	// Once stopped, the lock is free again.
	tc.stop(0)
	if _, err := Restore(ctxT(t, 30*time.Second), snap, tc.cfgs[0], RestoreOptions{MoveAside: true}); err != nil {
		t.Fatalf("restore after stop: %v", err)
	}
}

// A restore on a master whose peers still run etcd is refused (it would
// make a second cluster beside a running one) and changes nothing; a broken
// snapshot changes nothing either; --force restores anyway and keeps the old
// data aside.
func TestRestoreRefusesWhilePeersServeAndChangesNothingOnFailure(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	mustPut(t, tc.members[0].Client(), "k", "v")
	snap := filepath.Join(tc.dir, "snap.db")
	if err := tc.members[1].Snapshot(ctxT(t, 30*time.Second), snap); err != nil {
		t.Fatal(err)
	}
	tc.stop(0)
	cfg := tc.cfgs[0]
	before := siblings(t, cfg.DataDir)

	_, err := Restore(ctxT(t, 30*time.Second), snap, cfg, RestoreOptions{MoveAside: true})
	var serving *PeersServingError
	if !errors.As(err, &serving) || !slices.Equal(serving.Peers, []string{"m1", "m2"}) {
		t.Fatalf("restore while m1 and m2 serve: %v, want a PeersServingError naming m1, m2", err)
	}
	t.Logf("refused: %v", err)
	if after := siblings(t, cfg.DataDir); !slices.Equal(before, after) {
		t.Errorf("refused restore changed the data dir's neighbourhood: %v, was %v", after, before)
	}

	broken := filepath.Join(tc.dir, "broken.db")
	if err := os.WriteFile(broken, []byte("not a snapshot, not even 512 bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctxT(t, 30*time.Second), broken, cfg, RestoreOptions{MoveAside: true, Force: true}); err == nil {
		t.Fatal("restore of a broken snapshot succeeded")
	} else {
		t.Logf("broken snapshot: %v", err)
	}
	if _, err := Restore(ctxT(t, 30*time.Second), filepath.Join(tc.dir, "missing.db"), cfg, RestoreOptions{MoveAside: true, Force: true}); err == nil {
		t.Fatal("restore of a missing snapshot succeeded")
	}
	if after := siblings(t, cfg.DataDir); !slices.Equal(before, after) {
		t.Errorf("failed restore changed the data dir's neighbourhood: %v, was %v", after, before)
	}
	// m0 still has its data: it restarts into the running cluster.
	tc.start(0)
	if got := mustGet(t, tc.members[0].Client(), "k"); got != "v" {
		t.Errorf("m0 reads %q after the failed restores, want v", got)
	}
	tc.stop(0)

	aside, err := Restore(ctxT(t, 30*time.Second), snap, cfg, RestoreOptions{MoveAside: true, Force: true})
	if err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	if !strings.HasPrefix(aside, cfg.DataDir+".before-restore-") {
		t.Errorf("old data moved to %q, want %s.before-restore-<time>", aside, cfg.DataDir)
	}
	if _, err := os.Stat(filepath.Join(aside, "member", "wal")); err != nil {
		t.Errorf("old data not kept aside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "member", "wal")); err != nil {
		t.Errorf("restored data not in place: %v", err)
	}
	for _, n := range siblings(t, cfg.DataDir) {
		if strings.Contains(n, ".restoring-") {
			t.Errorf("leftover %s", n)
		}
	}
}

// An empty member whose peers do not answer at all (a formed cluster's
// members still down or restarting) waits and names them instead of
// bootstrapping a new cluster: the deterministic form of the race that let
// TestEmptyMemberWaitsInsteadOfBootstrappingWhenAFormedClusterLacksQuorum
// bootstrap when it probed before its peers listened.
func TestEmptyMemberWaitsForSilentPeersInsteadOfBootstrapping(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	for i := range tc.members {
		tc.stop(i)
	}
	if err := os.RemoveAll(tc.cfgs[2].DataDir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := tc.members[2].Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "waiting for m0") || !strings.Contains(err.Error(), "m1") {
		t.Fatalf("empty member with both peers silent: %v, want it to wait and name m0 and m1", err)
	}
	t.Logf("start error: %v", err)
	if _, err := os.Stat(filepath.Join(tc.cfgs[2].DataDir, "member")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("m2 bootstrapped a data dir anyway (stat: %v)", err)
	}
}

// First boot with one master missing: two empty members see each other
// empty (a quorum of three), form the cluster, and the third joins later.
func TestTwoEmptyMembersOfThreeFormTheClusterAndTheThirdJoinsLater(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll(0, 1)
	mustPut(t, tc.members[0].Client(), "k", "v")
	tc.start(2)
	v, l, names := votingMembers(t, tc.members[0])
	if v != 3 || l != 0 {
		t.Errorf("%d voters, %d learners (%v); want 3 voters", v, l, names)
	}
	if got := mustGet(t, tc.members[2].Client(), "k"); got != "v" {
		t.Errorf("late member reads %q, want v", got)
	}
}
