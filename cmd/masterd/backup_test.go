package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/s3"
)

// Off-host backups as an operator runs them, against a real S3-compatible
// server (SeaweedFS, integration/s3): a one-master masterd with automatic
// snapshots every minute and etcd.backup.s3 on uploads its first periodic
// snapshot (the daemon's hook, counted in /metrics); `masterd etcd snapshot
// list --s3` shows it and `list` the local file; `fetch` copies it with its
// checksum verified; each mistake gets an error naming it; with masterd
// stopped, `masterd etcd restore s3://NAME` restores it and masterd starts
// from it with the writes made before the snapshot and none after. Flags
// come before and after the arguments.
func TestBackupToS3ThroughTheDaemonAndTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real S3 server and masterd")
	}
	srv := s3.Start(t)
	srv.MakeBucket(t, "etcd-backups")
	l := &etcdLab{t: t, bin: buildBinary(t), dir: t.TempDir()}
	m1 := &daemon{name: "m1", addr: "127.0.0.1", metrics: "127.0.0.1:19996"}
	l.ds = []*daemon{m1}
	t.Cleanup(func() {
		if m1.cmd != nil && m1.cmd.ProcessState == nil {
			m1.cmd.Process.Kill()
			<-m1.exited
		}
		if t.Failed() && m1.stderr != nil {
			t.Logf("--- m1 stderr (tail):\n%s", tail(m1.stderr.String(), 40))
		}
	})
	if out, err := exec.Command(l.bin, "init", "--dir", l.dir).CombinedOutput(); err != nil {
		t.Fatalf("masterd init: %v\n%s", err, out)
	}
	creds := filepath.Join(l.dir, "backup-s3.credentials")
	s3.WriteCredentials(t, creds, srv.AccessKeyID, srv.SecretAccessKey)
	config := func(path, endpoint, bucket, credentials string) {
		t.Helper()
		err := os.WriteFile(path, []byte(fmt.Sprintf(`name: m1
peers: [{name: m1, address: 127.0.0.1}]
clusterKeyFile: %s/cluster.key
dataDir: %s/m1
gossip: {port: 17966, clusterName: backuptest}
etcd:
  clientPort: 12479
  peerPort: 12480
  snapshotInterval: 1m
  backup:
    s3: {enabled: true, endpoint: "%s", insecure: true, bucket: %s, prefix: masterd, credentialsFile: %s, retention: 5}
vip: {enabled: false}
kubernetes: {mode: none}
metrics: {listen: "%s"}
`, l.dir, l.dir, endpoint, bucket, credentials, m1.metrics)), 0o644)
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg := l.config(m1)
	config(cfg, srv.Endpoint, "etcd-backups", creds)

	l.start(m1)
	l.waitMembers(m1, 1)
	cli := l.client(m1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	for i := 0; i < 20; i++ {
		if _, err := cli.Put(ctx, fmt.Sprintf("backup/%02d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	cancel()

	// 1. The first periodic snapshot (a minute after the start) reaches
	// the store: list --s3 shows it, under the cluster's directory.
	nameRE := regexp.MustCompile(`(?m)^(m1-\d{8}T\d{6}Z\.db)\s+(\d+)\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+m1$`)
	var name, listOut string
	deadline := time.Now().Add(3 * time.Minute)
	for name == "" {
		code, out, errOut := l.masterd("etcd", "snapshot", "list", "--s3", "--config", cfg)
		if code != 0 {
			t.Fatalf("masterd etcd snapshot list --s3: exit %d\n%s%s", code, out, errOut)
		}
		if m := nameRE.FindStringSubmatch(out); m != nil {
			name, listOut = m[1], out
		} else if time.Now().After(deadline) {
			t.Fatalf("no snapshot uploaded within 3 minutes of a 1m snapshot interval; list --s3:\n%s", out)
		} else {
			time.Sleep(2 * time.Second)
		}
	}
	t.Logf("list --s3:\n%s", listOut)
	if !strings.Contains(listOut, "snapshots in s3://etcd-backups/masterd/backuptest/:") {
		t.Errorf("list --s3 does not say where: %s", listOut)
	}
	if metrics := scrape(t, m1.metrics); !strings.Contains(metrics, "masterd_backup_uploads_total 1") ||
		!regexp.MustCompile(`(?m)^masterd_backup_last_success_timestamp_seconds [1-9]`).MatchString(metrics) ||
		!strings.Contains(metrics, "masterd_backup_upload_failures_total 0") {
		t.Errorf("/metrics after the first upload:\n%s", grepLines(metrics, "masterd_backup_"))
	}
	if _, err := cli.Put(context.Background(), "backup/after-snapshot", "x"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := l.masterd("etcd", "--config", cfg, "snapshot", "list")
	if code != 0 || !regexp.MustCompile(`(?m)^etcd-\d{8}T\d{6}Z\.db\s+\d+\s+\d{4}-`).MatchString(out) || !strings.Contains(out, filepath.Join(l.dir, "m1", "snapshots")) {
		t.Errorf("masterd etcd snapshot list (local): exit %d\n%s%s", code, out, errOut)
	}

	// 2. fetch, flags after and before the name.
	dst := filepath.Join(l.dir, "fetched.db")
	code, out, errOut = l.masterd("etcd", "snapshot", "fetch", name, "-o", dst, "--config", cfg)
	if code != 0 || !strings.Contains(out, "sha256") || !strings.Contains(out, "verified") {
		t.Fatalf("masterd etcd snapshot fetch NAME -o FILE: exit %d\n%s%s", code, out, errOut)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() < 4096 {
		t.Errorf("fetched file: %v, %v", fi, err)
	}
	dst2 := filepath.Join(l.dir, "fetched2.db")
	if code, out, errOut := l.masterd("etcd", "snapshot", "fetch", "--config", cfg, "--output", dst2, name); code != 0 {
		t.Errorf("masterd etcd snapshot fetch --config X --output Y NAME: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := l.masterd("etcd", "snapshot", "fetch", name, "-o", dst, "--config", cfg); code == 0 || !strings.Contains(errOut, dst+" exists") {
		t.Errorf("fetch over an existing file: exit %d, %s", code, errOut)
	}

	// 3. Mistakes, each named.
	wrongCreds := filepath.Join(l.dir, "wrong.credentials")
	s3.WriteCredentials(t, wrongCreds, srv.AccessKeyID, "not-the-secret")
	looseCreds := filepath.Join(l.dir, "loose.credentials")
	s3.WriteCredentials(t, looseCreds, srv.AccessKeyID, srv.SecretAccessKey)
	os.Chmod(looseCreds, 0o644)
	bad := func(name string) string { return filepath.Join(l.dir, name+".yaml") }
	config(bad("wrongcreds"), srv.Endpoint, "etcd-backups", wrongCreds)
	config(bad("loose"), srv.Endpoint, "etcd-backups", looseCreds)
	config(bad("nobucket"), srv.Endpoint, "no-such-bucket", creds)
	config(bad("unreachable"), "http://127.0.0.1:9", "etcd-backups", creds)
	config(bad("https"), "http://127.0.0.1:9", "Bad_Bucket", creds)
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"etcd", "snapshot", "fetch", "m1-20000101T000000Z.db", "--config", cfg}, 1,
			[]string{`no snapshot "m1-20000101T000000Z.db" in s3://etcd-backups/masterd/backuptest/`}},
		{[]string{"etcd", "snapshot", "fetch", "latest", "--config", cfg}, 1, []string{`"latest" is not a snapshot name`}},
		{[]string{"etcd", "snapshot", "list", "--s3", "--config", bad("wrongcreds")}, 1,
			[]string{"refused the credentials from " + wrongCreds, "SignatureDoesNotMatch"}},
		{[]string{"etcd", "snapshot", "list", "--s3", "--config", bad("loose")}, 1, []string{looseCreds, "chmod 600"}},
		{[]string{"etcd", "snapshot", "list", "--s3", "--config", bad("nobucket")}, 1, []string{`bucket "no-such-bucket" does not exist at ` + srv.Endpoint}},
		{[]string{"etcd", "snapshot", "fetch", name, "--config", bad("unreachable")}, 1, []string{"endpoint http://127.0.0.1:9 unreachable"}},
		{[]string{"etcd", "snapshot", "list", "--s3", "--config", bad("https")}, 2, []string{"etcd.backup.s3.bucket", "Bad_Bucket"}},
		{[]string{"etcd", "snapshot", "fetch", "--config", cfg}, 2, []string{"usage: masterd etcd snapshot fetch NAME"}},
		{[]string{"etcd", "snapshot", "list", "extra", "--config", cfg}, 2, []string{`unexpected argument "extra"`}},
	} {
		code, out, errOut := l.masterd(c.args...)
		ok := code == c.code
		for _, w := range c.want {
			ok = ok && strings.Contains(errOut, w)
		}
		if !ok {
			t.Errorf("masterd %s: exit %d (want %d), stderr %q, stdout %q; want %q", strings.Join(c.args, " "), code, c.code, errOut, out, c.want)
		}
		if strings.Contains(out+errOut, srv.SecretAccessKey) {
			t.Errorf("masterd %s printed the secret key", strings.Join(c.args, " "))
		}
	}

	// 4. Restore from the store: refused while masterd runs, then done
	// with it stopped; masterd starts from the snapshot.
	if code, out, errOut := l.masterd("etcd", "restore", "s3://"+name, "--config", cfg); code == 0 || !strings.Contains(errOut, "refusing to restore") {
		t.Errorf("restore s3://NAME under a running masterd: exit %d\n%s%s", code, out, errOut)
	}
	l.stop(m1)
	code, out, errOut = l.masterd("etcd", "restore", "--config", cfg, "s3://"+name)
	t.Logf("restore s3://%s: exit %d\n%s%s", name, code, out, errOut)
	if code != 0 || !strings.Contains(out, "fetched s3://etcd-backups/masterd/backuptest/"+name) || !strings.Contains(out, "restored s3://"+name+" into") {
		t.Fatalf("masterd etcd restore s3://NAME: exit %d\n%s%s", code, out, errOut)
	}
	if left, _ := filepath.Glob(filepath.Join(l.dir, "m1", ".restore-s3-*")); len(left) > 0 {
		t.Errorf("the fetched copy was left behind: %v", left)
	}
	l.start(m1)
	l.waitMembers(m1, 1)
	rcli := l.client(m1)
	for i := 0; i < 20; i++ {
		if got, want := kvGet(t, rcli, fmt.Sprintf("backup/%02d", i)), fmt.Sprintf("v%d", i); got != want {
			t.Fatalf("restored backup/%02d = %q, want %q", i, got, want)
		}
	}
	if got := kvGet(t, rcli, "backup/after-snapshot"); got != "" {
		t.Errorf("the restored cluster has a write made after the snapshot: %q", got)
	}
}

// scrape returns the /metrics text of addr.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, ln := range strings.Split(s, "\n") {
		if strings.Contains(ln, sub) {
			out = append(out, ln)
		}
	}
	return strings.Join(out, "\n")
}
