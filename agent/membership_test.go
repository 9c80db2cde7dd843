package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterd/masterd/etcdembed"
	"github.com/masterd/masterd/pki"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func threeMasters() Config {
	cfg := DefaultConfig()
	cfg.Name = "m1"
	for i := 1; i <= 3; i++ {
		cfg.Peers = append(cfg.Peers, Peer{Name: fmt.Sprintf("m%d", i), Address: netip.MustParseAddr(fmt.Sprintf("10.0.0.%d", i))})
	}
	cfg.VIP.Enabled, cfg.VIP.Address = true, netip.MustParseAddr("10.0.0.100")
	return cfg
}

func TestPlanAddRefusesBadInputNamingWhatIsWrong(t *testing.T) {
	cfg := threeMasters()
	r := SeedMembership(cfg)
	joint, err := planAdd(r, cfg, "m4", "10.0.0.4", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, addr string
		rec        MembershipRecord
		want       string
	}{
		{"m2", "10.0.0.9", r, "name already in use"},
		{"m4", "10.0.0.2", r, "address 10.0.0.2 already in use by master m2"},
		{"m4", "10.0.0.300", r, `address "10.0.0.300"`},
		{"M4!", "10.0.0.4", r, `name "M4!"`},
		{"m4", "0.0.0.0", r, "must be a unicast address"},
		{"m4", "10.0.0.100", r, "is the VIP"},
		{"m5", "10.0.0.5", joint, "a change is already in progress: add m4 (10.0.0.4)"},
	} {
		_, err := planAdd(tc.rec, cfg, tc.name, tc.addr, time.Now())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("add %s %s: %v, want an error containing %q", tc.name, tc.addr, err, tc.want)
		}
	}
	if joint.Epoch != 2 || len(joint.Voters) != 4 || len(joint.Old) != 3 || !joint.Election().Joint() {
		t.Errorf("joint record of an add: %+v", joint)
	}
	if f := planFinal(joint); f.Epoch != 3 || len(f.Voters) != 4 || f.Old != nil || f.Change != nil {
		t.Errorf("final record of an add: %+v", f)
	}
}

func TestPlanRemoveRefusesAChangeThatLosesQuorum(t *testing.T) {
	cfg := threeMasters()
	r := SeedMembership(cfg)
	all := map[string]bool{"m1": true, "m2": true, "m3": true}
	for _, tc := range []struct {
		remove string
		live   map[string]bool
		want   string // "" = allowed
	}{
		{"m3", all, ""},
		{"m3", map[string]bool{"m1": true, "m2": true}, ""},               // removing a dead master
		{"m2", map[string]bool{"m1": true, "m2": true}, "lose quorum"},    // m1 alone of m1, m3
		{"m3", map[string]bool{"m1": true}, "only 1 of 3 masters answer"}, // no quorum to change anything
		{"m9", all, `no master named "m9"`},
		{"m1", all, "runs on; run it on another master"},
	} {
		_, err := planRemove(r, cfg, tc.remove, tc.live, time.Now())
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("remove %s with live %v: %v, want %q", tc.remove, tc.live, err, tc.want)
		}
	}
}

func TestSettledQuorumNeedsAMajorityOfBothSetsOfAJointMembership(t *testing.T) {
	cfg := threeMasters()
	j, err := planAdd(SeedMembership(cfg), cfg, "m4", "10.0.0.4", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		settled map[string]uint64
		want    bool
	}{
		{map[string]uint64{"m1": 2, "m2": 2, "m3": 2}, true},           // 3 of 4, 3 of 3
		{map[string]uint64{"m1": 2, "m2": 2, "m4": 2}, true},           // 3 of 4, 2 of 3
		{map[string]uint64{"m1": 2, "m4": 2}, false},                   // 2 of 4
		{map[string]uint64{"m1": 2, "m2": 1, "m3": 1, "m4": 2}, false}, // m2, m3 settled an older epoch
	} {
		if got, missing := settledQuorum(j, tc.settled); got != tc.want {
			t.Errorf("settled %v: %v (missing %v), want %v", tc.settled, got, missing, tc.want)
		}
	}
}

// etcdMasters runs real etcd members for masters on 127.0.0.3x, configured
// from agent Configs exactly as the daemon does (EtcdMemberConfig).
type etcdMasters struct {
	t      *testing.T
	dir    string
	secret *pki.Secret
	ports  [2]int
	peers  []Peer

	mu      sync.Mutex // startAll starts the members concurrently
	cfgs    map[string]Config
	members map[string]*etcdembed.Member
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newEtcdMasters(t *testing.T, n int) *etcdMasters {
	s, err := pki.GenerateSecret(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	em := &etcdMasters{t: t, dir: t.TempDir(), secret: s, cfgs: map[string]Config{}, members: map[string]*etcdembed.Member{},
		ports: [2]int{freeTCPPort(t), freeTCPPort(t)}}
	for i := 1; i <= n; i++ {
		em.peers = append(em.peers, Peer{Name: fmt.Sprintf("m%d", i), Address: netip.MustParseAddr(fmt.Sprintf("127.0.0.%d", 30+i))})
	}
	return em
}

// config is master name's Config; its peers are the seed list plus itself.
func (em *etcdMasters) config(name string, addr netip.Addr) Config {
	cfg := DefaultConfig()
	cfg.Name, cfg.Address = name, addr
	cfg.Peers = append([]Peer(nil), em.peers...)
	found := false
	for _, p := range cfg.Peers {
		found = found || p.Name == name
	}
	if !found {
		cfg.Peers = append(cfg.Peers, Peer{Name: name, Address: addr})
	}
	cfg.DataDir = filepath.Join(em.dir, name)
	cfg.Etcd.ClientPort, cfg.Etcd.PeerPort = em.ports[0], em.ports[1]
	cfg.Etcd.SnapshotInterval = 0
	cfg.VIP.Enabled = false
	return cfg
}

func (em *etcdMasters) start(name string, addr netip.Addr) {
	em.t.Helper()
	if err := em.tryStart(name, addr); err != nil {
		em.t.Fatal(err)
	}
}

// tryStart starts master name's etcd member; it may run on any goroutine
// (t.Fatal may not).
func (em *etcdMasters) tryStart(name string, addr netip.Addr) error {
	cfg := em.config(name, addr)
	p := pki.DefaultParams()
	p.NodeName, p.NodeAddress = name, addr
	p.Peers = []pki.Peer{{Name: name, Address: addr}}
	files, err := pki.Ensure(filepath.Join(cfg.DataDir, "pki"), em.secret, p, time.Now())
	if err != nil {
		return fmt.Errorf("pki of %s: %w", name, err)
	}
	ec := EtcdMemberConfig(cfg, files)
	ec.ReadyTimeout = 90 * time.Second
	m, err := etcdembed.New(ec)
	if err != nil {
		return fmt.Errorf("etcd of %s: %w", name, err)
	}
	em.mu.Lock()
	em.cfgs[name], em.members[name] = cfg, m
	em.mu.Unlock()
	em.t.Cleanup(func() { em.stop(name) })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		return fmt.Errorf("start etcd of %s: %w", name, err)
	}
	return nil
}

// startAll starts every seed master's member at once (each waits for a
// quorum to be ready).
func (em *etcdMasters) startAll() {
	em.t.Helper()
	errs := make(chan error, len(em.peers))
	for _, p := range em.peers {
		go func() { errs <- em.tryStart(p.Name, p.Address) }()
	}
	var all []error
	for range em.peers {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	if err := errors.Join(all...); err != nil {
		em.t.Fatal(err)
	}
}

func (em *etcdMasters) stop(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	em.mu.Lock()
	m := em.members[name]
	em.mu.Unlock()
	_ = m.Stop(ctx)
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// settleAll reports, for every master of the record's sets, that its
// election settled the record's epoch: what each daemon's membership
// component does once its election.Driver says Settled (exercised with real
// daemons in cmd/masterd).
func settleAll(t *testing.T, cli *clientv3.Client, r MembershipRecord, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := ReportSettled(testCtx(t, 5*time.Second), cli, n, r.Epoch); err != nil {
			t.Fatal(err)
		}
	}
}

// Against real etcd members: grow 3→4 (joint epoch, learner, the new member
// joins and promotes itself, the elections settle, final epoch) with a second
// change refused meanwhile, then shrink 4→3 (joint, settle, etcd remove,
// final), then a remove that would lose quorum is refused and changes nothing.
func TestAddAndRemoveMasterAgainstRealEtcd(t *testing.T) {
	em := newEtcdMasters(t, 3)
	em.startAll()
	cfg := em.cfgs["m1"]
	cli := em.members["m1"].Client()
	r, _, err := EnsureMembership(testCtx(t, 10*time.Second), cli, cfg)
	if err != nil || r.Epoch != 1 || len(r.Voters) != 3 {
		t.Fatalf("seeded membership: %v, %v", r, err)
	}

	// Bad input changes nothing.
	if _, err := AddMaster(testCtx(t, 10*time.Second), cli, cfg, "m4", "127.0.0.32"); err == nil || !strings.Contains(err.Error(), "already in use by master m2") {
		t.Fatalf("add with m2's address: %v", err)
	}
	if _, err := RemoveMaster(testCtx(t, 10*time.Second), cli, cfg, "m9"); err == nil || !strings.Contains(err.Error(), `no master named "m9"`) {
		t.Fatalf("remove of an unknown name: %v", err)
	}
	if now, _, _, _ := ReadMembership(testCtx(t, 10*time.Second), cli); now.Epoch != 1 || now.Change != nil {
		t.Fatalf("bad input changed the membership: %v", now)
	}

	m4 := netip.MustParseAddr("127.0.0.34")
	j, err := AddMaster(testCtx(t, 30*time.Second), cli, cfg, "m4", m4.String())
	if err != nil {
		t.Fatalf("add m4: %v", err)
	}
	if j.Epoch != 2 || j.Change == nil || len(j.Old) != 3 || len(j.Voters) != 4 {
		t.Fatalf("after add: %v", j)
	}
	// The same add again resumes (idempotent); another change is refused.
	if again, err := AddMaster(testCtx(t, 30*time.Second), cli, cfg, "m4", m4.String()); err != nil || again.Epoch != 2 {
		t.Fatalf("repeated add: %v, %v", again, err)
	}
	var busy *ChangeInProgressError
	if _, err := RemoveMaster(testCtx(t, 10*time.Second), cli, cfg, "m3"); !errors.As(err, &busy) || !strings.Contains(err.Error(), "add m4 (127.0.0.34)") {
		t.Fatalf("remove during an add: %v, want a refusal naming the add", err)
	}
	if _, w, err := AdvanceMembership(testCtx(t, 10*time.Second), cli, cfg); err != nil || !strings.Contains(w, "m4 to start") {
		t.Fatalf("advance before m4 runs: waiting %q, %v", w, err)
	}

	em.start("m4", m4)
	if _, w, err := AdvanceMembership(testCtx(t, 10*time.Second), cli, cfg); err != nil || !strings.Contains(w, "settle epoch 2") {
		t.Fatalf("advance before the elections settled: waiting %q, %v", w, err)
	}
	settleAll(t, cli, j, "m1", "m2", "m3")
	var progress []string
	f, err := WaitMembership(testCtx(t, 30*time.Second), cli, cfg, j.Epoch+1, func(s string) { progress = append(progress, s) })
	if err != nil {
		t.Fatalf("wait for the add: %v (progress %v)", err, progress)
	}
	if f.Epoch != 3 || f.Change != nil || f.Old != nil || f.Voters["m4"] != "127.0.0.34" {
		t.Fatalf("final membership of the add: %v", f)
	}
	if err := etcdembed.Healthy(testCtx(t, 20*time.Second), cli); err != nil {
		t.Fatalf("etcd after the add: %v", err)
	}

	// Shrink 4→3: remove m3.
	j, err = RemoveMaster(testCtx(t, 30*time.Second), cli, cfg, "m3")
	if err != nil {
		t.Fatalf("remove m3: %v", err)
	}
	if j.Epoch != 4 || len(j.Voters) != 3 || len(j.Old) != 4 {
		t.Fatalf("joint record of the remove: %v", j)
	}
	settleAll(t, cli, j, "m1", "m2", "m4")
	f, err = WaitMembership(testCtx(t, 30*time.Second), cli, cfg, j.Epoch+1, nil)
	if err != nil || f.Epoch != 5 || f.Contains("m3") {
		t.Fatalf("final membership of the remove: %v, %v", f, err)
	}
	if st, err := etcdembed.StateOf(testCtx(t, 10*time.Second), cli, EtcdMemberConfig(cfg, nil), etcdembed.Peer{Name: "m3", Address: netip.MustParseAddr("127.0.0.33")}); err != nil || st != etcdembed.MemberAbsent {
		t.Fatalf("m3 in etcd after its removal: %v, %v", st, err)
	}
	em.stop("m3")

	// m2 and m4 down for a moment: removing m2 would leave m1 alone of
	// {m1, m4}.
	em.stop("m4")
	_, err = RemoveMaster(testCtx(t, 30*time.Second), cli, cfg, "m2")
	if err == nil || !strings.Contains(err.Error(), "lose quorum") {
		t.Fatalf("remove m2 with m4 down: %v, want a quorum refusal", err)
	}
	t.Logf("refused: %v", err)
	if now, _, _, _ := ReadMembership(testCtx(t, 10*time.Second), cli); now.Epoch != 5 || now.Change != nil {
		t.Fatalf("refused remove changed the membership: %v", now)
	}
}

// An add whose new master never comes can be aborted: back to the old voters
// at a new epoch, the learner gone from etcd.
func TestAbortAnAddWhoseMasterNeverCame(t *testing.T) {
	em := newEtcdMasters(t, 3)
	em.startAll()
	cfg := em.cfgs["m1"]
	cli := em.members["m1"].Client()
	if _, err := AddMaster(testCtx(t, 30*time.Second), cli, cfg, "m4", "127.0.0.34"); err != nil {
		t.Fatal(err)
	}
	back, err := AbortChange(testCtx(t, 30*time.Second), cli, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if back.Epoch != 3 || back.Change != nil || back.Contains("m4") || len(back.Voters) != 3 {
		t.Fatalf("after abort: %v", back)
	}
	if err := etcdembed.Healthy(testCtx(t, 20*time.Second), cli); err != nil {
		t.Fatalf("etcd after the abort (learner must be gone): %v", err)
	}
	if _, err := AbortChange(testCtx(t, 10*time.Second), cli, cfg); err == nil || !strings.Contains(err.Error(), "no change in progress") {
		t.Fatalf("second abort: %v", err)
	}
}

// Two of three masters lost for good: the survivor is recovered from its own
// data, its membership is itself alone at a new epoch, the acknowledged
// writes are there, and a fresh master joins by the add flow.
func TestRecoverSurvivorThenAddAFreshMaster(t *testing.T) {
	em := newEtcdMasters(t, 3)
	em.startAll()
	cfg := em.cfgs["m1"]
	cli := em.members["m1"].Client()
	if _, _, err := EnsureMembership(testCtx(t, 10*time.Second), cli, cfg); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := cli.Put(testCtx(t, 5*time.Second), fmt.Sprintf("k/%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	em.stop("m2")
	em.stop("m3")
	em.stop("m1")
	r, err := RecoverSurvivor(testCtx(t, 60*time.Second), cfg, false)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if r.Epoch != 2 || len(r.Voters) != 1 || r.Voters["m1"] != "127.0.0.31" {
		t.Fatalf("membership after recover: %v", r)
	}
	em.start("m1", netip.MustParseAddr("127.0.0.31"))
	cli = em.members["m1"].Client()
	resp, err := cli.Get(testCtx(t, 10*time.Second), "k/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 50 {
		t.Fatalf("acknowledged writes after recover: %d of 50, %v", resp.Count, err)
	}
	m5 := netip.MustParseAddr("127.0.0.35")
	j, err := AddMaster(testCtx(t, 30*time.Second), cli, cfg, "m5", m5.String())
	if err != nil {
		t.Fatalf("add a fresh master: %v", err)
	}
	em.start("m5", m5)
	settleAll(t, cli, j, "m1", "m5")
	f, err := WaitMembership(testCtx(t, 30*time.Second), cli, cfg, j.Epoch+1, nil)
	if err != nil || len(f.Voters) != 2 || f.Change != nil {
		t.Fatalf("membership after the add: %v, %v", f, err)
	}
	c5 := em.members["m5"].Client()
	resp, err = c5.Get(testCtx(t, 10*time.Second), "k/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 50 {
		t.Fatalf("fresh master reads %d of 50 writes, %v", resp.Count, err)
	}
}
