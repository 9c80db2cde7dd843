package units

import (
	"os"
	"path/filepath"
	"testing"
)

// killCgroup tells a group it killed from one it cannot kill itself: a
// group gone is empty (killed), a directory without cgroup.kill (cgroup
// v1, an old kernel) or no group at all leaves the kill to systemd.
func TestKillCgroupWithoutCgroupKillLeavesTheKillToSystemd(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, dir string
		killed    bool
	}{
		{"no control group", "", false},
		{"a group without cgroup.kill", dir, false},
		{"a group removed", filepath.Join(dir, "gone"), true},
	} {
		killed, err := killCgroup(tc.dir)
		if err != nil || killed != tc.killed {
			t.Errorf("%s: killed %v (%v), want %v", tc.name, killed, err, tc.killed)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if killed, err := killCgroup(dir); err != nil || !killed {
		t.Errorf("a group with cgroup.kill: killed %v (%v), want true", killed, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.kill")); string(b) != "1" {
		t.Errorf("cgroup.kill holds %q, want 1", b)
	}
}
