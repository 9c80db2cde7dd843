package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/masterd/masterd/pki"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdLab is a loopback cluster of real masterd daemons (127.0.0.1-3) for
// the etcd commands; ports differ from the election test's.
type etcdLab struct {
	t   *testing.T
	bin string
	dir string
	ds  []*daemon
}

func newEtcdLab(t *testing.T) *etcdLab {
	t.Helper()
	l := &etcdLab{t: t, bin: buildBinary(t), dir: t.TempDir()}
	if out, err := exec.Command(l.bin, "init", "--dir", l.dir).CombinedOutput(); err != nil {
		t.Fatalf("masterd init: %v\n%s", err, out)
	}
	for i := 1; i <= 3; i++ {
		l.ds = append(l.ds, &daemon{name: fmt.Sprintf("m%d", i), addr: fmt.Sprintf("127.0.0.%d", i), metrics: fmt.Sprintf("127.0.0.%d:19991", i)})
	}
	var peers strings.Builder
	for _, d := range l.ds {
		fmt.Fprintf(&peers, "  - {name: %s, address: %s}\n", d.name, d.addr)
	}
	for _, d := range l.ds {
		if err := os.WriteFile(l.config(d), []byte(fmt.Sprintf(`name: %s
peers:
%sclusterKeyFile: %s/cluster.key
dataDir: %s/%s
gossip: {port: 17956}
etcd: {clientPort: 12479, peerPort: 12480}
vip: {enabled: false}
kubernetes: {mode: none}
metrics: {listen: "%s"}
`, d.name, peers.String(), l.dir, l.dir, d.name, d.metrics)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range l.ds {
			if d.cmd != nil && d.cmd.ProcessState == nil {
				d.cmd.Process.Kill()
				<-d.exited
			}
		}
		if t.Failed() {
			for _, d := range l.ds {
				if d.stderr != nil {
					t.Logf("--- %s stderr (tail):\n%s", d.name, tail(d.stderr.String(), 30))
				}
			}
		}
	})
	return l
}

func (l *etcdLab) config(d *daemon) string { return filepath.Join(l.dir, d.name+".yaml") }

// start runs `masterd run` for d.
func (l *etcdLab) start(d *daemon) {
	l.t.Helper()
	d.stderr = &lockedBuffer{}
	d.cmd = exec.Command(l.bin, "run", "--config", l.config(d), "--log-level", "info")
	d.cmd.Stderr = d.stderr
	d.exited = make(chan error, 1)
	if err := d.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
}

// stop SIGTERMs d and waits for its exit.
func (l *etcdLab) stop(d *daemon) {
	l.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			l.t.Fatalf("%s exit after SIGTERM: %v", d.name, err)
		}
	case <-time.After(60 * time.Second):
		l.t.Fatalf("%s did not exit within 60s of SIGTERM", d.name)
	}
}

// masterd runs the CLI and returns its exit code, stdout and stderr.
func (l *etcdLab) masterd(args ...string) (int, string, string) {
	l.t.Helper()
	cmd := exec.Command(l.bin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		l.t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// waitMembers waits until `masterd etcd members` through d lists n voting
// members, each started (named), and returns its output.
func (l *etcdLab) waitMembers(d *daemon, n int) string {
	l.t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		code, out, errOut := l.masterd("etcd", "members", "--config", l.config(d))
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code == 0 && len(lines) == n+1 {
			ok := true
			for _, ln := range lines[1:] {
				f := strings.Fields(ln)
				if len(f) < 4 || f[len(f)-1] != "false" || !strings.HasPrefix(f[1], "m") {
					ok = false
				}
			}
			if ok {
				return out
			}
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("etcd members through %s: want %d voters; last: exit %d\n%s%s", d.name, n, code, out, errOut)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// client is an etcd client of d's member with d's own client certificate.
func (l *etcdLab) client(d *daemon) *clientv3.Client {
	l.t.Helper()
	f := pki.FilesIn(filepath.Join(l.dir, d.name, "pki"))
	tc, err := transport.TLSInfo{CertFile: f.EtcdClient.Cert, KeyFile: f.EtcdClient.Key, TrustedCAFile: f.EtcdCA}.ClientConfig()
	if err != nil {
		l.t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"https://" + d.addr + ":12479"}, TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { cli.Close() })
	return cli
}

// dataEntries lists d's dataDir, to show a refused restore moved nothing.
func (l *etcdLab) dataEntries(d *daemon) []string {
	l.t.Helper()
	entries, err := os.ReadDir(filepath.Join(l.dir, d.name))
	if err != nil {
		l.t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func kvGet(t *testing.T, cli *clientv3.Client, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// The whole restore procedure through the CLI, as an operator runs it, on a
// snapshot of a running 3-master cluster: refused while masterd runs on the
// host (its data dir lock, naming the PID) and while other masters run etcd,
// each refusal moving nothing; --force restores anyway; with every master
// stopped a plain restore succeeds, and masterd starts from the restored
// data with every write acknowledged before the snapshot, and another master
// with its old data moved aside joins it. Flags come after the arguments
// throughout.
func TestEtcdRestoreThroughTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three daemons")
	}
	l := newEtcdLab(t)
	for _, d := range l.ds {
		l.start(d)
	}
	m1, m2, m3 := l.ds[0], l.ds[1], l.ds[2]
	t.Logf("members:\n%s", l.waitMembers(m1, 3))
	l.waitMembers(m2, 3)
	l.waitMembers(m3, 3)

	// Writes acknowledged through m1, snapshot taken through m2 (a
	// follower or the leader, either way it must hold them).
	cli := l.client(m1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 50; i++ {
		if _, err := cli.Put(ctx, fmt.Sprintf("restore/%02d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	snap := filepath.Join(l.dir, "snap.db")
	if code, out, errOut := l.masterd("etcd", "snapshot", "save", snap, "--config", l.config(m2)); code != 0 {
		t.Fatalf("masterd etcd snapshot save FILE --config: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := cli.Put(ctx, "restore/after-snapshot", "x"); err != nil {
		t.Fatal(err)
	}

	// 1. masterd runs on this host: refused, naming its PID; nothing moved.
	before := l.dataEntries(m1)
	code, out, errOut := l.masterd("etcd", "restore", snap, "--config", l.config(m1))
	t.Logf("restore under a running masterd: exit %d\n%s%s", code, out, errOut)
	if code == 0 || !strings.Contains(errOut, "refusing to restore") ||
		!strings.Contains(errOut, "process "+strconv.Itoa(m1.cmd.Process.Pid)) || !strings.Contains(errOut, "systemctl stop masterd") {
		t.Errorf("restore under a running masterd: exit %d, stderr %q; want a refusal naming pid %d and how to stop it", code, errOut, m1.cmd.Process.Pid)
	}
	if after := l.dataEntries(m1); !slices.Equal(before, after) || strings.Contains(out, "moved") {
		t.Errorf("refused restore changed %s/m1: %v, was %v", l.dir, after, before)
	}

	// 2. masterd stopped here, but m2 and m3 still run etcd: refused.
	l.stop(m1)
	before = l.dataEntries(m1)
	code, out, errOut = l.masterd("etcd", "restore", snap, "--config", l.config(m1))
	t.Logf("restore while peers run etcd: exit %d\n%s%s", code, out, errOut)
	if code == 0 || !strings.Contains(errOut, "refusing to restore") || !strings.Contains(errOut, "m2 (") ||
		!strings.Contains(errOut, "m3 (") || !strings.Contains(errOut, "--force") {
		t.Errorf("restore while m2 and m3 run etcd: exit %d, stderr %q; want a refusal naming m2, m3 and --force", code, errOut)
	}
	if after := l.dataEntries(m1); !slices.Equal(before, after) || strings.Contains(out, "moved") {
		t.Errorf("refused restore changed %s/m1: %v, was %v", l.dir, after, before)
	}

	// 3. --force restores anyway and keeps the old data aside.
	code, out, errOut = l.masterd("etcd", "restore", snap, "--force", "--config", l.config(m1))
	if code != 0 || !strings.Contains(out, "old etcd data moved to "+filepath.Join(l.dir, "m1", "etcd.before-restore-")) {
		t.Fatalf("restore --force: exit %d\n%s%s", code, out, errOut)
	}

	// 4. Every master stopped: a plain restore succeeds (it moves the
	// forced restore's data aside in turn).
	l.stop(m2)
	l.stop(m3)
	code, out, errOut = l.masterd("etcd", "restore", snap, "--config", l.config(m1))
	t.Logf("restore with every master stopped: exit %d\n%s%s", code, out, errOut)
	if code != 0 || !strings.Contains(out, "restored "+snap) {
		t.Fatalf("restore with every master stopped: exit %d\n%s%s", code, out, errOut)
	}
	var asides int
	for _, n := range l.dataEntries(m1) {
		if strings.HasPrefix(n, "etcd.before-restore-") {
			asides++
			if _, err := os.Stat(filepath.Join(l.dir, "m1", n, "member", "wal")); err != nil {
				t.Errorf("data moved aside to %s lacks its WAL: %v", n, err)
			}
		}
		if strings.Contains(n, ".restoring-") {
			t.Errorf("leftover %s", n)
		}
	}
	if asides != 2 {
		t.Errorf("%d old data dirs kept aside, want 2 (the original and the forced restore): %v", asides, l.dataEntries(m1))
	}

	// 5. masterd starts from the restored data as a one-member cluster with
	// every write acknowledged before the snapshot, none after it.
	l.start(m1)
	t.Logf("members after restore:\n%s", l.waitMembers(m1, 1))
	rcli := l.client(m1)
	for i := 0; i < 50; i++ {
		if got, want := kvGet(t, rcli, fmt.Sprintf("restore/%02d", i)), fmt.Sprintf("v%d", i); got != want {
			t.Fatalf("restored restore/%02d = %q, want %q", i, got, want)
		}
	}
	if got := kvGet(t, rcli, "restore/after-snapshot"); got != "" {
		t.Errorf("restored cluster has a write made after the snapshot: %q", got)
	}

	// 6. The next step the restore prints: on the restored master, add
	// another one back (masterd member add); it, its old etcd and election
	// state moved aside, joins the restored member (learner, then voter).
	for _, d := range []string{"etcd", "election"} {
		if err := os.Rename(filepath.Join(l.dir, "m2", d), filepath.Join(l.dir, "m2", d+".old")); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if code, out, errOut := l.masterd("member", "add", "m2", "127.0.0.2", "--wait=false", "--config", l.config(m1)); code != 0 {
		t.Fatalf("member add m2 on the restored m1: exit %d\n%s%s", code, out, errOut)
	}
	l.start(m2)
	t.Logf("members after m2 rejoined:\n%s", l.waitMembers(m1, 2))
	if got := kvGet(t, l.client(m2), "restore/42"); got != "v42" {
		t.Errorf("m2 rejoined the restored cluster and reads restore/42 = %q, want v42", got)
	}
}

// Flags are read before, between and after the arguments of every etcd
// subcommand: a --config anywhere is the one used (here a missing file, so
// the error names it), and a bad flag anywhere is a usage error.
func TestEtcdFlagsBeforeAndAfterArguments(t *testing.T) {
	bin := buildBinary(t)
	cfg := filepath.Join(t.TempDir(), "nowhere.yaml")
	for _, args := range [][]string{
		{"etcd", "--config", cfg, "members"},
		{"etcd", "members", "--config", cfg},
		{"etcd", "members", "--config=" + cfg},
		{"etcd", "snapshot", "save", "/tmp/x.db", "--config", cfg},
		{"etcd", "snapshot", "--config", cfg, "save", "/tmp/x.db"},
		{"etcd", "restore", "/tmp/x.db", "--config", cfg},
		{"etcd", "restore", "/tmp/x.db", "--force", "--config", cfg},
		{"etcd", "--force", "restore", "/tmp/x.db", "--config", cfg},
		{"etcd", "remove", "m3", "--config", cfg},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitBadConfig || !strings.Contains(string(out), cfg) {
			t.Errorf("masterd %s: %v, %q; want exit 2 naming %s", strings.Join(args, " "), err, out, cfg)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"etcd", "members", "--nope"}, "-nope"},
		{[]string{"etcd", "members", "--force", "--config", cfg}, "--force applies to restore only"},
		{[]string{"etcd", "restore", "--config", cfg}, "usage: masterd etcd restore FILE"},
		{[]string{"etcd", "restore", "a", "b", "--config", cfg}, "usage: masterd etcd restore FILE"},
		{[]string{"etcd", "--config", cfg}, "missing subcommand"},
		{[]string{"etcd", "frob", "--config", cfg}, `unknown subcommand "frob"`},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitBadConfig || !strings.Contains(string(out), c.want) {
			t.Errorf("masterd %s: %v, %q; want exit 2 saying %q", strings.Join(c.args, " "), err, out, c.want)
		}
	}
	for _, args := range [][]string{{"etcd", "--help"}, {"etcd", "restore", "--help"}, {"etcd", "help"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage: masterd etcd") || !strings.Contains(string(out), "-force") {
			t.Errorf("masterd %s: %v, %q", strings.Join(args, " "), err, out)
		}
	}
}
