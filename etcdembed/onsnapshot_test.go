package etcdembed

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// An automatic snapshot is handed to Config.OnSnapshot once written, with
// its path, the time in its name and whether the member led the cluster (a
// one-member cluster: it does); the file is complete when the hook runs.
func TestOnSnapshotGetsEachAutomaticSnapshot(t *testing.T) {
	tc := newTestCluster(t, 1)
	var got []SavedSnapshot
	var sizes []int64
	tc.cfgs[0].OnSnapshot = func(s SavedSnapshot) {
		got = append(got, s)
		fi, err := os.Stat(s.Path)
		if err != nil {
			t.Errorf("OnSnapshot(%s): the file is not there: %v", s.Path, err)
			return
		}
		sizes = append(sizes, fi.Size())
	}
	tc.replace(0, tc.cfgs[0])
	tc.start(0)
	m := tc.members[0]
	before := time.Now().UTC().Truncate(time.Second)
	p, err := m.periodicSnapshot(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("OnSnapshot called %d times for one snapshot", len(got))
	}
	s := got[0]
	if s.Path != p || filepath.Base(p) != "etcd-"+s.Taken.Format("20060102T150405Z")+".db" {
		t.Errorf("OnSnapshot got %+v; snapshot written to %s", s, p)
	}
	if s.Taken.Before(before) || s.Taken.After(time.Now()) || s.Taken.Location() != time.UTC {
		t.Errorf("Taken %v is not the UTC time of the snapshot (started after %v)", s.Taken, before)
	}
	if !s.Leader {
		t.Error("the only member of a cluster was not reported as its leader")
	}
	if sizes[0] < 4096 {
		t.Errorf("snapshot file %d bytes when the hook ran: not a complete bolt database", sizes[0])
	}
}
