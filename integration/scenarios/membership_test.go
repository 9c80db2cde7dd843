package scenarios

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/integration/lab"
	"github.com/vishvananda/netns"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// dialIn dials TCP from the network namespace nsName (the lab's client):
// the socket stays in that namespace after the thread goes back.
func dialIn(nsName string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			orig, err := netns.Get()
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			defer orig.Close()
			ns, err := netns.GetFromName(nsName)
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, fmt.Errorf("netns %s: %w", nsName, err)}
				return
			}
			defer ns.Close()
			if err := netns.Set(ns); err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread() // else the thread ends with the goroutine
			}
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// etcdFromClient is an etcd client in the lab's client namespace, with the
// client certificate master m generated, to the given masters.
func etcdFromClient(t *testing.T, l *lab.Lab, m *lab.Master, to ...*lab.Master) *clientv3.Client {
	t.Helper()
	f := agent.EtcdFiles(agent.Config{DataDir: m.Host().Path("/var/lib/masterd")})
	tc, err := (transport.TLSInfo{CertFile: f.EtcdClient.Cert, KeyFile: f.EtcdClient.Key, TrustedCAFile: f.EtcdCA}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	var eps []string
	for _, p := range to {
		eps = append(eps, fmt.Sprintf("https://%s:2379", p.Addr))
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tc, DialTimeout: 3 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dialIn(l.ClientNS()))}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// writer puts a key every 20 ms and remembers the acknowledged ones, when
// each was acknowledged and the longest time between two acknowledgements.
type writer struct {
	mu     sync.Mutex
	acked  []string
	at     []time.Time
	maxGap time.Duration
	stop   chan struct{}
	done   chan struct{}
}

func startWriter(cli *clientv3.Client) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		last := time.Now()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			k := fmt.Sprintf("/scenario/membership/%06d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := cli.Put(ctx, k, "v")
			cancel()
			if err == nil {
				w.mu.Lock()
				w.acked = append(w.acked, k)
				w.at = append(w.at, time.Now())
				w.maxGap = max(w.maxGap, time.Since(last))
				w.mu.Unlock()
				last = time.Now()
			}
		}
	}()
	return w
}

func (w *writer) Stop() ([]string, time.Duration) {
	close(w.stop)
	<-w.done
	return w.acked, w.maxGap
}

// Last is when the last write was acknowledged (zero: none).
func (w *writer) Last() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.at) == 0 {
		return time.Time{}
	}
	return w.at[len(w.at)-1]
}

// Gap is the longest time without an acknowledgement that overlaps
// [from, to] (from the last acknowledgement before from, or from, to the
// first one after to, or now).
func (w *writer) Gap(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev := from
	var g time.Duration
	for _, a := range w.at {
		if !a.After(from) {
			prev = a
			continue
		}
		g = max(g, a.Sub(prev))
		prev = a
		if a.After(to) {
			return g
		}
	}
	return max(g, time.Since(prev))
}

// missingWrites returns how many of the acknowledged keys the client does
// not read back (one linearizable range read).
func missingWrites(t *testing.T, ctx context.Context, cli *clientv3.Client, acked []string) int {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := cli.Get(rctx, "/scenario/membership/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatalf("read the acknowledged writes back: %v", err)
	}
	have := map[string]bool{}
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = true
	}
	missing := 0
	for _, k := range acked {
		if !have[k] {
			missing++
		}
	}
	return missing
}

// Replace a master on real systemd hosts with the membership commands: m3 is
// removed (3→2), its disk wiped, and it is added back as a fresh master
// (2→3), while a client writes through etcd and the VIP is sampled every
// 10 ms. Bad input is refused and changes nothing. Checks: no sample with two
// VIP holders, every acknowledged write readable, every master on the final
// membership. Runs kube-less (kubernetes.mode: none): what it is about is
// etcd, the elections and the VIP.
func TestMembershipReplaceOnRealHosts(t *testing.T) {
	o := options(t)
	o.Prefix = fmt.Sprintf("scmem%d", os.Getpid()%1000000)
	o.KubeBinDir = ""
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	s := upLab(t, ctx, o, 5*time.Minute)
	figure(t, "lab up and ready in %.1fs", time.Since(start).Seconds())
	ms := s.Masters()
	if len(ms) != 3 {
		t.Fatalf("lab has %d masters, want 3", len(ms))
	}
	m1, m2, m3 := ms[0], ms[1], ms[2]
	member := func(m *lab.Master, args ...string) (string, error) {
		out, err := m.Exec(ctx, append([]string{"masterd", "member"}, args...)...)
		return string(out), err
	}

	// Bad input: a clear error each, nothing changed.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "m4", m2.Addr.String()}, "already in use by master " + m2.Name},
		{[]string{"remove", "m9"}, `no master named "m9"`},
	} {
		if out, err := member(m1, tc.args...); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("masterd member %s: %v\n%s\nwant %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
	if out, err := member(m1, "list"); err != nil || !strings.Contains(out, "epoch 1\n") {
		t.Fatalf("member list: %v\n%s", err, out)
	}

	mon, err := s.MonitorVIP(10 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Stop()
	w := startWriter(etcdFromClient(t, s.Lab, m1, m1, m2))
	time.Sleep(time.Second)

	// 3→2: remove m3, then stop it for good.
	t0 := time.Now()
	out, err := member(m1, "remove", m3.Name, "--timeout", "3m")
	if err != nil {
		t.Fatalf("member remove %s: %v\n%s", m3.Name, err, out)
	}
	removeTook := time.Since(t0)
	t.Logf("member remove %s:\n%s", m3.Name, out)
	if err := m3.StopMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m3.Exec(ctx, "sh", "-c", "rm -rf /var/lib/masterd/* /var/lib/masterd/.[!.]*"); err != nil {
		t.Fatal(err)
	}

	// 2→3: m3 back as a fresh master (empty disk, same name and address).
	t1 := time.Now()
	out, err = member(m1, "add", m3.Name, m3.Addr.String(), "--wait=false")
	if err != nil {
		t.Fatalf("member add %s: %v\n%s", m3.Name, err, out)
	}
	if out, err := member(m2, "remove", m1.Name); err == nil || !strings.Contains(out, "a change is already in progress: add "+m3.Name) {
		t.Errorf("a second change during the add: %v\n%s", err, out)
	}
	if err := m3.StartMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := member(m1, "wait", "--timeout", "5m"); err != nil || !strings.Contains(out, "epoch 5, voters "+m1.Name+","+m2.Name+","+m3.Name) {
		t.Fatalf("member wait for the add of %s: %v\n%s", m3.Name, err, out)
	}
	addTook := time.Since(t1)
	s.waitReady(t, ctx, 5*time.Minute)
	time.Sleep(time.Second)
	acked, gap := w.Stop()
	rep := mon.Stop()
	if rep.Err != nil {
		t.Errorf("VIP monitor: %v", rep.Err)
	}
	if rep.Dual > 0 {
		t.Errorf("%d of %d samples with two VIP holders", rep.Dual, rep.Samples)
	}

	// Every acknowledged write reads back through the fresh m3.
	missing := missingWrites(t, ctx, etcdFromClient(t, s.Lab, m1, m3), acked)
	if missing > 0 || len(acked) == 0 {
		t.Errorf("%d of %d acknowledged writes missing through m3", missing, len(acked))
	}
	for _, m := range s.Masters() {
		if out, err := member(m, "list"); err != nil || !strings.Contains(out, "epoch 5\n") || strings.Contains(out, "change in progress") {
			t.Errorf("member list on %s: %v\n%s", m.Name, err, out)
		}
	}
	figure(t, "remove m3 (3→2) %.1fs, add a fresh m3 (2→3) %.1fs after member add; VIP %d samples, %d with two holders, %d with none; %d acknowledged writes, %d missing; longest gap between acknowledged writes %.2fs",
		removeTook.Seconds(), addTook.Seconds(), rep.Samples, rep.Dual, rep.None, len(acked), missing, gap.Seconds())
}
