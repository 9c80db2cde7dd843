package election

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/masterd/masterd/internal/freeport"
)

// recorder collects callback events of all drivers of a test in one
// timeline and tracks which node holds the vip role.
type recorder struct {
	mu       sync.Mutex
	events   []recEvent
	holding  map[string]uint64    // node -> term, between Started and Stopped
	deadline map[string]time.Time // node -> last renewed deadline
	overlap  []string
	// ctx is the context OnStartedLeading got, per node.
	ctx map[string]context.Context
}

type recEvent struct {
	at   time.Time
	node string
	kind string
	term uint64
}

func newRecorder() *recorder {
	return &recorder{holding: map[string]uint64{}, deadline: map[string]time.Time{}, ctx: map[string]context.Context{}}
}

func (r *recorder) callbacks(node string) Callbacks {
	return Callbacks{
		OnStartedLeading: func(ctx context.Context, role string, term uint64) {
			r.mu.Lock()
			defer r.mu.Unlock()
			now := time.Now()
			if ctx.Err() != nil {
				r.overlap = append(r.overlap, fmt.Sprintf("%s started term %d with its context already cancelled", node, term))
			}
			r.ctx[node] = ctx
			for other, t := range r.holding {
				// Another node still holds: only acceptable if its lease
				// (what the kernel fence enforces) already ran out.
				if other != node && now.Before(r.deadline[other]) {
					r.overlap = append(r.overlap, fmt.Sprintf("%s started term %d while %s holds term %d until %v", node, term, other, t, r.deadline[other].Sub(now)))
				}
			}
			r.holding[node] = term
			r.events = append(r.events, recEvent{now, node, "started", term})
		},
		OnStoppedLeading: func(_ context.Context, role string, term uint64) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			// The term's context ends before its release starts.
			if ctx := r.ctx[node]; ctx == nil || ctx.Err() == nil {
				r.overlap = append(r.overlap, fmt.Sprintf("%s stopped term %d with the context of OnStartedLeading not cancelled", node, term))
			}
			delete(r.holding, node)
			r.events = append(r.events, recEvent{time.Now(), node, "stopped", term})
			return nil
		},
		OnRenewed: func(role string, term uint64, deadline time.Time) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.deadline[node] = deadline
		},
	}
}

// waitStarted waits for a "started" event after since by a node other than
// not, and returns it.
func (r *recorder) waitStarted(t testing.TB, since time.Time, not string, timeout time.Duration) recEvent {
	t.Helper()
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		r.mu.Lock()
		for _, e := range r.events {
			if e.kind == "started" && e.at.After(since) && e.node != not {
				r.mu.Unlock()
				return e
			}
		}
		r.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("no leader started within %v", timeout)
	return recEvent{}
}

type cluster struct {
	t       testing.TB
	rec     *recorder
	peers   []Peer
	key     []byte
	drivers map[string]*Driver
	regs    map[string]*prometheus.Registry
	dirs    map[string]string
}

func freePort(t testing.TB) int {
	t.Helper()
	return freeport.TCPAndUDP(t)
}

func testKey(t testing.TB) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newCluster(t testing.TB, n int) *cluster {
	c := &cluster{t: t, rec: newRecorder(), key: testKey(t), drivers: map[string]*Driver{},
		regs: map[string]*prometheus.Registry{}, dirs: map[string]string{}}
	for i := range n {
		c.peers = append(c.peers, Peer{Name: fmt.Sprintf("m%d", i+1), Addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))})
	}
	for _, p := range c.peers {
		c.dirs[p.Name] = t.TempDir()
	}
	return c
}

func (c *cluster) config(name string, keys [][]byte) DriverConfig {
	var p Peer
	for _, q := range c.peers {
		if q.Name == name {
			p = q
		}
	}
	_, port, _ := net.SplitHostPort(p.Addr)
	cfg := DefaultDriverConfig()
	cfg.Name = name
	cfg.BindAddr = "127.0.0.1"
	fmt.Sscan(port, &cfg.BindPort)
	cfg.AdvertiseAddr = "127.0.0.1"
	cfg.Peers = c.peers
	cfg.Keys = keys
	cfg.Label = "test-cluster"
	cfg.StateDir = c.dirs[name]
	cfg.Roles = map[string]Timing{RoleVIP: DefaultVIPTiming()}
	cfg.RejoinInterval = 200 * time.Millisecond
	return cfg
}

func (c *cluster) start(name string) *Driver {
	c.t.Helper()
	reg := prometheus.NewRegistry()
	cfg := c.config(name, [][]byte{c.key})
	cfg.Registerer = reg
	if os.Getenv("ELECTION_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	d, err := NewDriver(cfg, c.rec.callbacks(name))
	if err != nil {
		c.t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.drivers[name] = d
	c.regs[name] = reg
	c.t.Cleanup(d.Kill)
	return d
}

func (c *cluster) startAll() {
	for _, p := range c.peers {
		c.start(p.Name)
	}
}

func (c *cluster) leaders() []string {
	var ls []string
	for name, d := range c.drivers {
		if s := d.Status(); s.Roles[RoleVIP].Leader {
			ls = append(ls, name)
		}
	}
	sort.Strings(ls)
	return ls
}

func (c *cluster) waitLeader(timeout time.Duration) string {
	c.t.Helper()
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		if ls := c.leaders(); len(ls) == 1 {
			return ls[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no single leader within %v: %v", timeout, c.leaders())
	return ""
}

func (c *cluster) checkNoOverlap() {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	if len(c.rec.overlap) > 0 {
		c.t.Fatalf("two holders: %v", c.rec.overlap)
	}
}

func TestDriversElectOneLeaderOverEncryptedMemberlist(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	l := c.waitLeader(10 * time.Second)
	// Members see each other through encrypted gossip.
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		alive := 0
		for _, m := range c.drivers[l].Status().Members {
			if m.State == "alive" {
				alive++
			}
		}
		if alive == 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := c.drivers[l].Status()
	if len(st.Members) != 3 {
		t.Fatalf("members %+v", st.Members)
	}
	time.Sleep(time.Second) // a healthy leader keeps the role
	if ls := c.leaders(); !slices.Equal(ls, []string{l}) {
		t.Fatalf("leaders %v after a second, want [%s]", ls, l)
	}
	if v := testutil.ToFloat64(c.drivers[l].met.leader.WithLabelValues(RoleVIP)); v != 1 {
		t.Fatalf("masterd_role_leader = %v on the leader", v)
	}
	for name, reg := range c.regs {
		n, err := testutil.GatherAndCount(reg, "masterd_election_messages_total")
		if err != nil || n == 0 {
			t.Fatalf("%s: no election message metrics (%v)", name, err)
		}
	}
	c.checkNoOverlap()
}

func TestDriverGracefulStopHandsTheRoleOver(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	l := c.waitLeader(10 * time.Second)
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	if err := c.drivers[l].Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := c.rec.waitStarted(t, t0, l, 5*time.Second)
	t.Logf("graceful handover %s -> %s: %v from Stop to OnStartedLeading", l, e.node, e.at.Sub(t0))
	c.rec.mu.Lock()
	var stopped time.Time
	for _, ev := range c.rec.events {
		if ev.node == l && ev.kind == "stopped" {
			stopped = ev.at
		}
	}
	c.rec.mu.Unlock()
	if stopped.IsZero() || !stopped.Before(e.at) {
		t.Fatalf("old leader stopped at %v, new leader started at %v", stopped, e.at)
	}
	c.checkNoOverlap()
}

func TestDriverKilledLeaderIsReplacedAfterItsLease(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	l := c.waitLeader(10 * time.Second)
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	c.drivers[l].Kill()
	e := c.rec.waitStarted(t, t0, l, 5*time.Second)
	c.rec.mu.Lock()
	dl := c.rec.deadline[l]
	c.rec.mu.Unlock()
	t.Logf("killed leader %s replaced by %s after %v (old lease deadline was %v after the kill)", l, e.node, e.at.Sub(t0), dl.Sub(t0))
	if !e.at.After(dl) {
		t.Fatalf("new leader started %v before the killed leader's deadline", dl.Sub(e.at))
	}
	c.rec.mu.Lock()
	killedCtx := c.rec.ctx[l]
	c.rec.mu.Unlock()
	if killedCtx == nil || killedCtx.Err() == nil {
		t.Fatalf("the killed leader's OnStartedLeading context is not cancelled (%v)", killedCtx)
	}
	c.checkNoOverlap()
}

func TestDriverWithAWrongKeyCannotJoinAndIsCounted(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	c.waitLeader(10 * time.Second)
	intruder := Peer{Name: "m4", Addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	c.peers = append(c.peers, intruder)
	c.dirs["m4"] = t.TempDir()
	cfg := c.config("m4", [][]byte{testKey(t)})
	d, err := NewDriver(cfg, Callbacks{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Kill)
	time.Sleep(1500 * time.Millisecond)
	rejected := 0.0
	for _, dr := range c.drivers {
		rejected += testutil.ToFloat64(dr.met.rejected.WithLabelValues("decrypt"))
		for _, m := range dr.Status().Members {
			if m.Name == "m4" {
				t.Fatalf("intruder with a wrong key became a member: %+v", m)
			}
		}
	}
	if rejected == 0 {
		t.Fatal("no decrypt rejections counted")
	}
	if ls := c.leaders(); len(ls) != 1 {
		t.Fatalf("leaders %v", ls)
	}
	t.Logf("decrypt rejections counted: %v", rejected)
}

func TestDriverSecondKeyIsAcceptedForRotation(t *testing.T) {
	c := newCluster(t, 3)
	newKey := testKey(t)
	for _, p := range c.peers {
		keys := [][]byte{c.key, newKey}
		if p.Name == "m3" {
			keys = [][]byte{newKey, c.key} // already rotated: encrypts with the new key
		}
		cfg := c.config(p.Name, keys)
		d, err := NewDriver(cfg, c.rec.callbacks(p.Name))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Kill)
		c.drivers[p.Name] = d
	}
	c.waitLeader(10 * time.Second)
	end := time.Now().Add(5 * time.Second)
	for time.Now().Before(end) && len(c.drivers["m1"].Status().Members) < 3 {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(c.drivers["m1"].Status().Members); n != 3 {
		t.Fatalf("%d members with mixed primary keys, want 3", n)
	}
}

func TestDriverConfigValidateReportsEveryProblem(t *testing.T) {
	cfg := DefaultDriverConfig()
	cfg.BindAddr = "not-an-ip"
	cfg.AdvertiseAddr = "0.0.0.0"
	cfg.Keys = [][]byte{[]byte("short")}
	cfg.Peers = []Peer{{Name: "a", Addr: "nope"}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"name", "bindAddr", "advertiseAddr", "peers[0].addr", "keys[0]", "label", "stateDir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestStateFileSurvivesRestartAndBumpsIncarnation(t *testing.T) {
	dir := t.TempDir()
	want := stateFile{Incarnation: 7, Roles: map[string]RoleState{RoleVIP: {MaxTerm: 9, VotedFor: "m2", LastTerm: 8, LeaseDuration: time.Second}}}
	if err := saveState(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(dir)
	if err != nil || got.Incarnation != 7 || got.Roles[RoleVIP] != want.Roles[RoleVIP] {
		t.Fatalf("loaded %+v, %v", got, err)
	}
	os.WriteFile(dir+"/"+stateFileName, []byte("{garbage"), 0o600)
	if _, err := loadState(dir); err == nil {
		t.Fatal("corrupt state accepted")
	}
}

func TestMetaRoundTripAndRejectsGarbage(t *testing.T) {
	in := map[string]Eligibility{RoleVIP: {Healthy: true, Priority: -3}, RoleScheduler: {Priority: 7}}
	out, ok := decodeMeta(encodeMeta(in))
	if !ok || len(out) != 2 || out[RoleVIP] != in[RoleVIP] || out[RoleScheduler] != in[RoleScheduler] {
		t.Fatalf("round trip %v -> %v", in, out)
	}
	for _, b := range [][]byte{nil, {2, 0}, {1, 1}, {1, 1, 3, 'v', 'i', 'p', 2, 0, 0, 0, 0}, append(encodeMeta(in), 0),
		{1, 2, 3, 'v', 'i', 'p', 1, 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 0}, {1, 2, 1, 'a', 1, 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 0}} {
		if _, ok := decodeMeta(b); ok {
			t.Errorf("accepted %x", b)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(map[string]Eligibility{RoleVIP: {Healthy: true}}))
	f.Add(encodeMeta(map[string]Eligibility{RoleVIP: {Healthy: true}, RoleScheduler: {Priority: -2}, RoleControllerManager: {}}))
	// Roles out of order, and a role twice: both refused.
	f.Add([]byte{1, 2, 3, 'v', 'i', 'p', 1, 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 0})
	f.Add([]byte{1, 2, 1, 'a', 1, 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, ok := decodeMeta(b); ok && !bytes.Equal(encodeMeta(m), b) {
			t.Fatalf("accepted %x, re-encodes differently to %x", b, encodeMeta(m))
		}
	})
}

// Failover on loopback with the default vip timings (800ms/500ms/100ms):
//
//	go test ./election -run '^$' -bench Failover -benchtime 10x
//
// reports the mean, min and max from the leader's Stop (graceful) or Kill
// (transport closed, no release) to the new leader's OnStartedLeading.
func BenchmarkFailoverGracefulHandover(b *testing.B) { benchFailover(b, true) }
func BenchmarkFailoverKilledLeader(b *testing.B)     { benchFailover(b, false) }

func benchFailover(b *testing.B, graceful bool) {
	var total, lo, hi time.Duration
	for i := 0; b.Loop(); i++ {
		c := newCluster(b, 3)
		c.startAll()
		l := c.waitLeader(10 * time.Second)
		time.Sleep(time.Duration(200+i*37%100) * time.Millisecond) // vary the heartbeat phase
		t0 := time.Now()
		if graceful {
			go c.drivers[l].Stop(context.Background())
		} else {
			c.drivers[l].Kill()
		}
		e := c.rec.waitStarted(b, t0, l, 5*time.Second)
		d := e.at.Sub(t0)
		total += d
		if lo == 0 || d < lo {
			lo = d
		}
		hi = max(hi, d)
		c.checkNoOverlap()
		for _, dr := range c.drivers {
			dr.Kill()
		}
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/failover")
	b.ReportMetric(float64(lo.Microseconds())/1000, "min-ms")
	b.ReportMetric(float64(hi.Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
}

func TestDriverRestartedLeaderRejoinsAsFollowerWithANewIncarnation(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	l := c.waitLeader(10 * time.Second)
	c.drivers[l].Kill()
	t0 := time.Now()
	e := c.rec.waitStarted(t, t0, l, 5*time.Second)
	delete(c.drivers, l)
	before, _ := loadState(c.dirs[l])
	d := c.start(l) // same state dir and port
	after, _ := loadState(c.dirs[l])
	if after.Incarnation <= before.Incarnation {
		t.Fatalf("incarnation %d after restart, was %d", after.Incarnation, before.Incarnation)
	}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if testutil.ToFloat64(d.met.messages.WithLabelValues("release", "out")) >= 2 {
			break
		}
	}
	if n := testutil.ToFloat64(d.met.messages.WithLabelValues("release", "out")); n < 2 {
		t.Fatalf("restarted leader sent %v releases of its persisted term, want 2", n)
	}
	end := time.Now().Add(3 * time.Second)
	for time.Now().Before(end) {
		if s := d.Status().Roles[RoleVIP]; s.Holder == e.node {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := d.Status().Roles[RoleVIP]; s.Holder != e.node || s.Leader {
		t.Fatalf("restarted node sees %+v, want follower of %s", s, e.node)
	}
	if ls := c.leaders(); !slices.Equal(ls, []string{e.node}) {
		t.Fatalf("leaders %v, want [%s]", ls, e.node)
	}
	c.checkNoOverlap()
}

func TestDriverUnhealthyLeaderHandsOverToAHealthyPeer(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	l := c.waitLeader(10 * time.Second)
	t0 := time.Now()
	c.drivers[l].SetHealthy(RoleVIP, false)
	e := c.rec.waitStarted(t, t0, l, 5*time.Second)
	t.Logf("unhealthy leader %s handed over to %s after %v", l, e.node, e.at.Sub(t0))
	for _, m := range c.drivers[e.node].Status().Members {
		if m.Name == l && m.Eligibility[RoleVIP].Healthy {
			t.Fatalf("status shows the unhealthy %s as healthy: %+v", l, m)
		}
	}
	if e.at.Sub(t0) < DefaultVIPTiming().LeaseDuration {
		t.Fatalf("handed over after %v, before the health hysteresis of a lease", e.at.Sub(t0))
	}
	time.Sleep(2 * time.Second) // the unhealthy node does not take the role back
	if ls := c.leaders(); !slices.Equal(ls, []string{e.node}) {
		t.Fatalf("leaders %v, want [%s]", ls, e.node)
	}
	c.checkNoOverlap()
}

func TestDriverSlowUnitStopDoesNotDelayTheVIPRole(t *testing.T) {
	c := newCluster(t, 3)
	unit := Timing{LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 400 * time.Millisecond,
		DetectSlack: 200 * time.Millisecond, ReleaseSlack: 600 * time.Millisecond}
	var mu sync.Mutex
	var log []string
	var inStop, renewedDuringStop atomic.Int32
	for _, p := range c.peers {
		name := p.Name
		cfg := c.config(name, [][]byte{c.key})
		cfg.Roles = map[string]Timing{RoleVIP: DefaultVIPTiming(), RoleScheduler: unit}
		d, err := NewDriver(cfg, Callbacks{
			OnStartedLeading: func(_ context.Context, role string, term uint64) {
				mu.Lock()
				log = append(log, name+" started "+role)
				mu.Unlock()
			},
			OnStoppedLeading: func(_ context.Context, role string, term uint64) error {
				mu.Lock()
				log = append(log, name+" stopped "+role)
				mu.Unlock()
				if role == RoleScheduler {
					inStop.Add(1)
					time.Sleep(500 * time.Millisecond) // a slow unit kill
					inStop.Add(-1)
				}
				return nil
			},
			OnRenewed: func(role string, term uint64, deadline time.Time) {
				if role == RoleVIP && inStop.Load() > 0 {
					renewedDuringStop.Add(1)
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Kill)
		c.drivers[name] = d
	}
	var l string
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) && l == "" {
		for name, d := range c.drivers {
			s := d.Status()
			if s.Roles[RoleVIP].Leader && s.Roles[RoleScheduler].Leader {
				l = name
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if l == "" {
		t.Fatal("no node leads both roles")
	}
	c.drivers[l].SetHealthy(RoleScheduler, false)
	end = time.Now().Add(10 * time.Second)
	for time.Now().Before(end) && c.drivers[l].Status().Roles[RoleScheduler].Leader {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(log, l+" stopped "+RoleScheduler) {
		t.Fatalf("scheduler never handed over: %v", log)
	}
	if slices.Contains(log, l+" stopped "+RoleVIP) || !c.drivers[l].Status().Roles[RoleVIP].Leader {
		t.Fatalf("the vip role was lost while the scheduler stopped slowly: %v", log)
	}
	if renewedDuringStop.Load() == 0 {
		t.Fatal("no vip renewal was delivered while the scheduler's stop callback ran")
	}
}

func TestDriverOfAnotherClusterLabelNeverMerges(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	c.waitLeader(10 * time.Second)
	other := Peer{Name: "x1", Addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	c.peers = append(c.peers, other)
	c.dirs["x1"] = t.TempDir()
	cfg := c.config("x1", [][]byte{c.key}) // same key, other cluster name
	cfg.Label = "another-cluster"
	d, err := NewDriver(cfg, Callbacks{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Kill)
	time.Sleep(1500 * time.Millisecond)
	rejected := 0.0
	for _, dr := range c.drivers {
		rejected += testutil.ToFloat64(dr.met.rejected.WithLabelValues("label"))
		for _, m := range dr.Status().Members {
			if m.Name == "x1" {
				t.Fatalf("a node of another cluster became a member: %+v", m)
			}
		}
	}
	if rejected == 0 {
		t.Fatal("no label rejections counted")
	}
}
