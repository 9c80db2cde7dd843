package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The snapshot list and fetch commands read --config (and their own flags)
// anywhere on the line, and a configuration without etcd.backup.s3 makes
// --s3, fetch and restore s3:// a configuration error that says what to
// set.
func TestBackupCommandsFlagsAndAnUnconfiguredStore(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "nowhere.yaml")
	for _, args := range [][]string{
		{"etcd", "snapshot", "list", "--s3", "--config", missing},
		{"etcd", "snapshot", "--config", missing, "list", "--s3"},
		{"etcd", "--config", missing, "snapshot", "fetch", "m1-20261204T000000Z.db", "-o", "/tmp/x"},
		{"etcd", "snapshot", "fetch", "-o", "/tmp/x", "m1-20261204T000000Z.db", "--config=" + missing},
		{"etcd", "restore", "s3://m1-20261204T000000Z.db", "--config", missing},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitBadConfig || !strings.Contains(string(out), missing) {
			t.Errorf("masterd %s: %v, %q; want exit 2 naming %s", strings.Join(args, " "), err, out, missing)
		}
	}
	cfg := filepath.Join(dir, "masterd.yaml")
	if err := os.WriteFile(cfg, []byte(`name: m1
peers: [{name: m1, address: 127.0.0.1}]
clusterKeyFile: `+dir+`/cluster.key
dataDir: `+dir+`/data
vip: {enabled: false}
kubernetes: {mode: none}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"etcd", "snapshot", "list", "--s3", "--config", cfg},
		{"etcd", "snapshot", "fetch", "m1-20261204T000000Z.db", "--config", cfg},
		{"etcd", "restore", "s3://m1-20261204T000000Z.db", "--config", cfg},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitBadConfig || !strings.Contains(string(out), "etcd.backup.s3 is not configured") {
			t.Errorf("masterd %s: %v, %q; want exit 2 saying etcd.backup.s3 is not configured", strings.Join(args, " "), err, out)
		}
	}
	// No snapshot yet: the local list is a header and no row.
	out, err := exec.Command(bin, "etcd", "snapshot", "list", "--config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "snapshots in "+dir+"/data/snapshots:") || strings.Count(string(out), "\n") != 2 {
		t.Errorf("masterd etcd snapshot list with no snapshots: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"etcd", "snapshot", "list", "--help"}, {"etcd", "snapshot", "fetch", "--help"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage: masterd etcd snapshot") {
			t.Errorf("masterd %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
