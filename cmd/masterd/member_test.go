package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterd/masterd/agent"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// memberCluster is real masterd daemons on 127.0.0.5x (no VIP, no kube
// units), started from the binary, for the membership commands.
type memberCluster struct {
	t    *testing.T
	bin  string
	dir  string
	seed []*daemon
	ds   map[string]*daemon
}

func (mc *memberCluster) writeConfig(d *daemon, peers []*daemon) string {
	var b strings.Builder
	for _, p := range peers {
		fmt.Fprintf(&b, "  - {name: %s, address: %s}\n", p.name, p.addr)
	}
	cfg := filepath.Join(mc.dir, d.name+".yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`name: %s
peers:
%sclusterKeyFile: %s/cluster.key
dataDir: %s/%s
gossip: {port: 17947}
etcd: {clientPort: 12479, peerPort: 12480}
vip: {enabled: false}
kubernetes: {mode: none}
roles:
  scheduler: {leaseDuration: 7s, renewDeadline: 2s, retryPeriod: 500ms}
  controllerManager: {leaseDuration: 7s, renewDeadline: 2s, retryPeriod: 500ms}
metrics: {listen: "%s"}
`, d.name, b.String(), mc.dir, mc.dir, d.name, d.metrics)), 0o644); err != nil {
		mc.t.Fatal(err)
	}
	return cfg
}

func newDaemon(i int) *daemon {
	return &daemon{name: fmt.Sprintf("m%d", i), addr: fmt.Sprintf("127.0.0.%d", 50+i), metrics: fmt.Sprintf("127.0.0.%d:19991", 50+i)}
}

func (mc *memberCluster) start(d *daemon, peers []*daemon) {
	cfg := mc.writeConfig(d, peers)
	d.stderr = &lockedBuffer{}
	d.cmd = exec.Command(mc.bin, "run", "--config", cfg, "--log-level", "info")
	d.cmd.Stderr = d.stderr
	d.exited = make(chan error, 1)
	if err := d.cmd.Start(); err != nil {
		mc.t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	mc.ds[d.name] = d
}

func (mc *memberCluster) stop(d *daemon) {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Kill()
	<-d.exited
}

// masterd runs the binary with args against master name's configuration.
func (mc *memberCluster) masterd(name string, args ...string) (string, error) {
	args = append(args, "--config", filepath.Join(mc.dir, name+".yaml"))
	out, err := exec.Command(mc.bin, args...).CombinedOutput()
	return string(out), err
}

// startMemberCluster runs masterd init in a new directory and starts the
// three seed masters m1..m3 from the binary; the cleanup stops every daemon
// and, on failure, logs the tail of each one's stderr.
func startMemberCluster(t *testing.T) *memberCluster {
	t.Helper()
	mc := &memberCluster{t: t, bin: buildBinary(t), dir: t.TempDir(), ds: map[string]*daemon{}}
	if out, err := exec.Command(mc.bin, "init", "--dir", mc.dir).CombinedOutput(); err != nil {
		t.Fatalf("masterd init: %v\n%s", err, out)
	}
	for i := 1; i <= 3; i++ {
		mc.seed = append(mc.seed, newDaemon(i))
	}
	t.Cleanup(func() {
		for _, d := range mc.ds {
			mc.stop(d)
		}
		if t.Failed() {
			for _, d := range mc.ds {
				t.Logf("--- %s stderr (tail):\n%s", d.name, tail(d.stderr.String(), 30))
			}
		}
	})
	for _, d := range mc.seed {
		mc.start(d, mc.seed)
	}
	return mc
}

// poll fails the test unless ok holds within 120s.
func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 120s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// etcdClient is a client of master name's etcd member, closed with the test.
func (mc *memberCluster) etcdClient(name string) *clientv3.Client {
	mc.t.Helper()
	cfg, err := agent.LoadConfig(filepath.Join(mc.dir, name+".yaml"))
	if err != nil {
		mc.t.Fatal(err)
	}
	cli, err := agent.EtcdClient(cfg)
	if err != nil {
		mc.t.Fatal(err)
	}
	mc.t.Cleanup(func() { cli.Close() })
	return cli
}

type membershipView struct {
	Epoch  uint64   `json:"epoch"`
	Voters []string `json:"voters"`
	Old    []string `json:"old"`
}

// electionMembership is the membership d's election counts with.
func (d *daemon) electionMembership() (membershipView, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+d.metrics+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return membershipView{}, false, err
	}
	defer resp.Body.Close()
	var st struct {
		Ready    bool `json:"ready"`
		Sections struct {
			Election struct {
				Membership membershipView `json:"membership"`
			} `json:"election"`
		} `json:"sections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return membershipView{}, false, err
	}
	return st.Sections.Election.Membership, st.Ready, nil
}

// Grow 3→4 and shrink 4→3 through the CLI with real daemons, with a client
// writing through etcd all along; bad input (an address in use, an unknown
// name, a second change while one is in progress) is refused with a clear
// error and changes nothing; every acknowledged write is readable after, and
// every daemon's election ends on the final membership with one leader per
// role.
func TestMemberAddRemoveThroughTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four daemons")
	}
	mc := startMemberCluster(t)
	waitMembership := func(names []string, epoch uint64, voters int) {
		t.Helper()
		deadline := time.Now().Add(120 * time.Second)
		for {
			ok := true
			var views []string
			for _, n := range names {
				m, ready, err := mc.ds[n].electionMembership()
				views = append(views, fmt.Sprintf("%s: %+v ready=%v err=%v", n, m, ready, err))
				ok = ok && err == nil && ready && m.Epoch == epoch && len(m.Voters) == voters && len(m.Old) == 0
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("elections not on epoch %d with %d voters: %v", epoch, voters, views)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitMembership([]string{"m1", "m2", "m3"}, 1, 3)

	// A client writes through m1's etcd member all along.
	wcli := mc.etcdClient("m1")
	var mu sync.Mutex
	acked := map[string]bool{}
	var maxGap time.Duration
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		last := time.Now()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			k := fmt.Sprintf("/test/w/%06d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := wcli.Put(ctx, k, "v")
			cancel()
			if err == nil {
				mu.Lock()
				acked[k] = true
				maxGap = max(maxGap, time.Since(last))
				mu.Unlock()
				last = time.Now()
			}
		}
	}()

	// Bad input: each a clear error, nothing changed.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"member", "add", "m4", "127.0.0.52"}, "address 127.0.0.52 already in use by master m2"},
		{[]string{"member", "add", "m2", "127.0.0.54"}, "name already in use"},
		{[]string{"member", "remove", "m9"}, `no master named "m9"`},
		{[]string{"member", "remove", "m1"}, "run it on another master"},
		{[]string{"member", "add", "m4", "not-an-ip"}, `address "not-an-ip"`},
	} {
		out, err := mc.masterd("m1", tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("masterd %s: %v\n%s\nwant a failure saying %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
	if out, err := mc.masterd("m1", "member", "list"); err != nil || !strings.Contains(out, "epoch 1\n") || strings.Contains(out, "change in progress") {
		t.Fatalf("member list after refused changes: %v\n%s", err, out)
	}

	// Grow 3→4.
	addStart := time.Now()
	out, err := mc.masterd("m1", "member", "add", "m4", "127.0.0.54", "--wait=false")
	if err != nil || !strings.Contains(out, "joint membership epoch 2") || !strings.Contains(out, "{name: m4, address: 127.0.0.54}") {
		t.Fatalf("member add m4: %v\n%s", err, out)
	}
	t.Logf("member add:\n%s", out)
	if out, err := mc.masterd("m2", "member", "remove", "m3"); err == nil || !strings.Contains(out, "a change is already in progress: add m4 (127.0.0.54)") {
		t.Errorf("remove during an add: %v\n%s", err, out)
	}
	if out, err := mc.masterd("m1", "member", "list"); err != nil || !strings.Contains(out, "change in progress: add m4") || !strings.Contains(out, "joining") {
		t.Errorf("member list during the add: %v\n%s", err, out)
	}
	m4 := newDaemon(4)
	mc.start(m4, append(append([]*daemon{}, mc.seed...), m4))
	if out, err := mc.masterd("m1", "member", "wait", "--timeout", "3m"); err != nil || !strings.Contains(out, "epoch 3") {
		t.Fatalf("member wait for the add: %v\n%s", err, out)
	}
	addTook := time.Since(addStart)
	waitMembership([]string{"m1", "m2", "m3", "m4"}, 3, 4)

	// Shrink 4→3: remove m3 (waits).
	removeStart := time.Now()
	out, err = mc.masterd("m2", "member", "remove", "m3", "--timeout", "3m")
	if err != nil || !strings.Contains(out, "done in") {
		t.Fatalf("member remove m3: %v\n%s", err, out)
	}
	removeTook := time.Since(removeStart)
	t.Logf("member remove:\n%s", out)
	mc.stop(mc.ds["m3"])
	delete(mc.ds, "m3")
	waitMembership([]string{"m1", "m2", "m4"}, 5, 3)
	if out, err := mc.masterd("m1", "member", "list"); err != nil || !strings.Contains(out, "epoch 5") || strings.Contains(out, "m3") {
		t.Errorf("member list after the remove: %v\n%s", err, out)
	}
	// The removed m3, started again with a wiped disk, is refused before its
	// etcd member would register itself with the cluster.
	if err := os.RemoveAll(filepath.Join(mc.dir, "m3")); err != nil {
		t.Fatal(err)
	}
	m3 := newDaemon(3)
	mc.start(m3, mc.seed)
	select {
	case err := <-m3.exited:
		if err == nil || !strings.Contains(m3.stderr.String(), "not in the agreed membership") {
			t.Errorf("removed m3 started with a wiped disk: exit %v, want a refusal naming the membership:\n%s", err, tail(m3.stderr.String(), 10))
		}
	case <-time.After(90 * time.Second):
		t.Fatal("removed m3 with a wiped disk still runs after 90s")
	}
	if out, err := mc.masterd("m1", "etcd", "members"); err != nil || strings.Count(out, "https://") != 3 || strings.Contains(out, "127.0.0.53") {
		t.Errorf("etcd members after the refused m3: %v\n%s", err, out)
	}

	close(stop)
	<-writerDone
	// Every acknowledged write reads back through the new master.
	c4 := mc.etcdClient("m4")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c4.Get(ctx, "/test/w/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = true
	}
	missing := 0
	for k := range acked {
		if !have[k] {
			missing++
		}
	}
	if missing > 0 || len(acked) == 0 {
		t.Errorf("%d of %d acknowledged writes missing on m4", missing, len(acked))
	}
	// One leader per role among the remaining masters.
	deadline := time.Now().Add(60 * time.Second)
	for {
		count := map[string]int{}
		for _, d := range mc.ds {
			roles, err := d.roles()
			if err != nil {
				continue
			}
			for role, v := range roles {
				if v.Leader {
					count[role]++
				}
			}
		}
		if count["scheduler"] == 1 && count["controller-manager"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single leader per role after the changes: %v", count)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("grow 3→4 finished %.1fs after member add (m4 started right after it), shrink 4→3 took %.1fs; %d acknowledged writes, all present; longest gap between acknowledged writes %.2fs",
		addTook.Seconds(), removeTook.Seconds(), len(acked), maxGap.Seconds())
}

// Two of three masters lost for good (SIGKILL): masterd member recover on the
// survivor is refused while its daemon runs, then turns its data into a
// one-member cluster and a one-voter membership; the survivor restarts, holds
// every role and every acknowledged write, and a fresh master joins it by
// the add flow and reads those writes.
func TestMemberRecoverThroughTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemons")
	}
	mc := startMemberCluster(t)
	cfg1, err := agent.LoadConfig(filepath.Join(mc.dir, "m1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cli *clientv3.Client
	deadline := time.Now().Add(120 * time.Second)
	var keys []string
	for len(keys) < 100 {
		if cli == nil {
			cli, _ = agent.EtcdClient(cfg1)
		}
		if cli != nil {
			k := fmt.Sprintf("/test/acked/%03d", len(keys))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if _, err := cli.Put(ctx, k, "v"); err == nil {
				keys = append(keys, k)
			}
			cancel()
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes acknowledged in 120s", len(keys))
		}
		if len(keys) == 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	cli.Close()
	mc.stop(mc.ds["m2"])
	mc.stop(mc.ds["m3"])
	delete(mc.ds, "m2")
	delete(mc.ds, "m3")

	if out, err := mc.masterd("m1", "member", "recover"); err == nil || !strings.Contains(out, "masterd runs on this host") {
		t.Fatalf("recover while the daemon runs: %v\n%s", err, out)
	}
	m1 := mc.ds["m1"]
	m1.cmd.Process.Signal(os.Interrupt)
	select {
	case <-m1.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("m1 did not stop")
	}
	out, err := mc.masterd("m1", "member", "recover")
	if err != nil || !strings.Contains(out, "epoch 2, voters m1") {
		t.Fatalf("member recover: %v\n%s", err, out)
	}
	t.Logf("member recover:\n%s", out)
	mc.start(newDaemon(1), mc.seed)

	// m1 alone holds every role.
	deadline = time.Now().Add(120 * time.Second)
	for {
		roles, err := mc.ds["m1"].roles()
		if err == nil && roles["scheduler"].Leader && roles["controller-manager"].Leader {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recovered m1 does not hold every role: %v %v", roles, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, err = mc.masterd("m1", "member", "add", "m5", "127.0.0.55", "--wait=false")
	if err != nil {
		t.Fatalf("member add m5: %v\n%s", err, out)
	}
	m5 := newDaemon(5)
	mc.start(m5, []*daemon{mc.ds["m1"], m5})
	if out, err := mc.masterd("m1", "member", "wait", "--timeout", "3m"); err != nil || !strings.Contains(out, "epoch 4, voters m1,m5") {
		t.Fatalf("member wait for the add of m5: %v\n%s", err, out)
	}
	c5 := mc.etcdClient("m5")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c5.Get(ctx, "/test/acked/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != int64(len(keys)) {
		t.Fatalf("fresh master m5 reads %v of %d acknowledged writes: %v", resp, len(keys), err)
	}
}

// A snapshot restored with masterd etcd restore makes a one-member etcd
// cluster while the snapshot's membership lists three masters: the restored
// master publishes itself alone at a new epoch, holds every role and serves
// the snapshot's writes.
func TestRestoredSnapshotMakesTheMasterTheOnlyVoter(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemons")
	}
	mc := startMemberCluster(t)
	poll(t, "every master on epoch 1 with 3 voters", func() bool {
		for _, d := range mc.ds {
			m, ready, err := d.electionMembership()
			if err != nil || !ready || m.Epoch != 1 || len(m.Voters) != 3 {
				return false
			}
		}
		return true
	})
	cli := mc.etcdClient("m1")
	for i := range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.Put(ctx, fmt.Sprintf("/test/snap/%02d", i), "v")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	cli.Close()
	snap := filepath.Join(mc.dir, "snap.db")
	if out, err := mc.masterd("m1", "etcd", "snapshot", "save", snap); err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	for _, d := range mc.ds {
		mc.stop(d)
	}
	if out, err := mc.masterd("m1", "etcd", "restore", snap); err != nil {
		t.Fatalf("etcd restore: %v\n%s", err, out)
	}
	mc.ds = map[string]*daemon{}
	mc.start(newDaemon(1), mc.seed)
	m1 := mc.ds["m1"]
	poll(t, "restored m1 alone on a new epoch holding every role", func() bool {
		m, ready, err := m1.electionMembership()
		roles, rerr := m1.roles()
		return err == nil && rerr == nil && ready && m.Epoch >= 2 && len(m.Voters) == 1 && m.Voters[0] == "m1" &&
			roles["scheduler"].Leader && roles["controller-manager"].Leader
	})
	cli = mc.etcdClient("m1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/test/snap/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 50 {
		t.Fatalf("restored master reads %v of 50 writes: %v", resp, err)
	}
	if out, err := mc.masterd("m1", "member", "list"); err != nil || !strings.Contains(out, "m1") || strings.Contains(out, "m2") {
		t.Errorf("member list after the restore: %v\n%s", err, out)
	}
}

// masterd member replace m3 m4 ADDRESS: m3 goes (remove, waited for), m4 at a
// new name and address comes (add, waited for once m4 runs).
func TestMemberReplaceThroughTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemons")
	}
	mc := startMemberCluster(t)
	poll(t, "every master ready on epoch 1", func() bool {
		for _, d := range mc.ds {
			if m, ready, err := d.electionMembership(); err != nil || !ready || m.Epoch != 1 {
				return false
			}
		}
		return true
	})
	replace := exec.Command(mc.bin, "member", "replace", "m3", "m4", "127.0.0.54", "--timeout", "3m", "--config", filepath.Join(mc.dir, "m1.yaml"))
	out := &lockedBuffer{}
	replace.Stdout, replace.Stderr = out, out
	start := time.Now()
	if err := replace.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- replace.Wait() }()
	// Once the add of m4 is published, m3 is out: stop it, start m4.
	poll(t, "replace reaches the add of m4", func() bool { return strings.Contains(out.String(), "adding m4") })
	mc.stop(mc.ds["m3"])
	delete(mc.ds, "m3")
	m4 := newDaemon(4)
	mc.start(m4, []*daemon{mc.seed[0], mc.seed[1], m4})
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "epoch 5, voters m1,m2,m4") {
			t.Fatalf("member replace: %v\n%s", err, out.String())
		}
	case <-time.After(4 * time.Minute):
		replace.Process.Kill()
		t.Fatalf("member replace did not finish:\n%s", out.String())
	}
	t.Logf("member replace m3 m4 took %.1fs:\n%s", time.Since(start).Seconds(), out.String())
	poll(t, "m1, m2, m4 on epoch 5 with 3 voters", func() bool {
		for _, d := range mc.ds {
			if m, ready, err := d.electionMembership(); err != nil || !ready || m.Epoch != 5 || len(m.Voters) != 3 || len(m.Old) != 0 {
				return false
			}
		}
		return true
	})
}
