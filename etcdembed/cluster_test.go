package etcdembed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.etcd.io/etcd/client/pkg/v3/transport"
)

func votingMembers(t *testing.T, m *Member) (voters, learners int, names []string) {
	t.Helper()
	list, err := m.Members(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, mem := range list {
		if mem.IsLearner {
			learners++
		} else {
			voters++
		}
		names = append(names, mem.Name)
	}
	return voters, learners, names
}

func TestThreeMembersFormAClusterAndAcceptWritesThroughAnyMember(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	for i := range tc.members {
		mustPut(t, tc.client(i), fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
	}
	for j := range tc.members {
		cli := tc.members[j].Client()
		for i := range tc.members {
			if got, want := mustGet(t, cli, fmt.Sprintf("k%d", i)), fmt.Sprintf("v%d", i); got != want {
				t.Errorf("member %d reads k%d = %q, want %q", j, i, got, want)
			}
		}
	}
	if v, l, _ := votingMembers(t, tc.members[0]); v != 3 || l != 0 {
		t.Errorf("members: %d voters, %d learners; want 3, 0", v, l)
	}
	leaders := 0
	for i, m := range tc.members {
		if err := m.Health(ctxT(t, 10*time.Second)); err != nil {
			t.Errorf("member %d unhealthy: %v", i, err)
		}
		if got := testutil.ToFloat64(m.met.healthy); got != 1 {
			t.Errorf("member %d: masterd_etcd_member_healthy = %v, want 1", i, got)
		}
		if m.IsLeader() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d members believe they lead, want 1", leaders)
	}
}

func TestStoppedMemberRestartsWithItsData(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	mustPut(t, tc.members[2].Client(), "before", "1")
	id := tc.members[2].ID()
	tc.stop(2)
	if err := tc.members[2].Health(ctxT(t, 5*time.Second)); err == nil {
		t.Error("stopped member reports healthy")
	}
	mustPut(t, tc.members[0].Client(), "during", "2")
	tc.start(2)
	if got := tc.members[2].ID(); got != id {
		t.Errorf("restarted member has ID %x, want its old ID %x", got, id)
	}
	cli := tc.members[2].Client()
	if got := mustGet(t, cli, "before"); got != "1" {
		t.Errorf("before = %q after restart, want 1", got)
	}
	if got := mustGet(t, cli, "during"); got != "2" {
		t.Errorf("during = %q after restart, want 2 (written while stopped)", got)
	}
}

func TestMemberWithWipedDataDirRejoinsAsLearnerAndIsPromoted(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	mustPut(t, tc.members[0].Client(), "survives", "yes")
	old := tc.members[1].ID()
	tc.stop(1)
	if err := os.RemoveAll(tc.cfgs[1].DataDir); err != nil {
		t.Fatal(err)
	}
	tc.start(1)
	if got := tc.members[1].ID(); got == old || got == 0 {
		t.Errorf("replaced member has ID %x, want a new ID (old %x)", got, old)
	}
	v, l, names := votingMembers(t, tc.members[0])
	if v != 3 || l != 0 {
		t.Errorf("after replacement: %d voters, %d learners (%v); want 3 voters, 0 learners", v, l, names)
	}
	if got := mustGet(t, tc.members[1].Client(), "survives"); got != "yes" {
		t.Errorf("replaced member reads %q, want yes", got)
	}
	mustPut(t, tc.members[1].Client(), "after", "ok")
}

func TestNewMemberJoinsAsLearnerIsPromotedAndCanBeRemoved(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	mustPut(t, tc.members[0].Client(), "old", "data")
	i := tc.addPeer()
	tc.start(i)
	v, l, names := votingMembers(t, tc.members[0])
	if v != 4 || l != 0 {
		t.Fatalf("after join: %d voters, %d learners (%v); want 4, 0", v, l, names)
	}
	if got := mustGet(t, tc.members[i].Client(), "old"); got != "data" {
		t.Errorf("new member reads %q, want data", got)
	}
	tc.stop(i)
	if err := tc.members[0].RemoveMember(ctxT(t, 10*time.Second), tc.peers[i].Name); err != nil {
		t.Fatal(err)
	}
	if v, _, names := votingMembers(t, tc.members[0]); v != 3 {
		t.Errorf("after remove: %d voters (%v), want 3", v, names)
	}
	if err := tc.members[0].RemoveMember(ctxT(t, 10*time.Second), "nosuch"); err == nil {
		t.Error("removing an unknown member succeeded")
	}
	if err := tc.members[0].RemoveMember(ctxT(t, 10*time.Second), tc.peers[0].Name); err == nil {
		t.Error("a member removed itself")
	}
}

func TestQuorumLossFailsWritesAndClusterRecoversWhenAMemberReturns(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	cli := tc.members[0].Client()
	mustPut(t, cli, "k", "1")
	tc.stop(1)
	tc.stop(2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err := cli.Put(ctx, "k", "lost?")
	cancel()
	if err == nil {
		t.Fatal("put without quorum succeeded")
	}
	if err := tc.members[0].Health(ctxT(t, 5*time.Second)); err == nil {
		t.Error("member without quorum reports healthy")
	}
	tc.start(1)
	mustPut(t, cli, "k", "2")
	if got := mustGet(t, tc.members[1].Client(), "k"); got != "2" {
		t.Errorf("k = %q after recovery, want 2", got)
	}
}

func TestClientsWithoutCertificateOrFromAnotherCAAreRejected(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.startAll()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(tc.cfgs[0].TLS.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	foreign := nodeTLS(t, testSecret(t), filepath.Join(tc.dir, "foreign"), "m0", loopback)
	foreignInfo := transport.TLSInfo{CertFile: foreign.ClientCertFile, KeyFile: foreign.ClientKeyFile, TrustedCAFile: tc.cfgs[0].TLS.CAFile}
	foreignTLS, err := foreignInfo.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		tls  *tls.Config
	}{
		{"no client certificate", &tls.Config{RootCAs: pool}},
		{"certificate from another CA", foreignTLS},
	} {
		t.Run(c.name, func(t *testing.T) {
			cli := tc.clientWithTLS(c.tls, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if _, err := cli.Put(ctx, "intruder", "x"); err == nil {
				t.Fatal("put accepted")
			}
		})
	}
	if got := mustGet(t, tc.members[0].Client(), "intruder"); got != "" {
		t.Errorf("intruder = %q, want absent", got)
	}
	// The peer port rejects such clients too.
	u := tc.cfgs[0].peerURL(tc.peers[0])
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool})
	if err == nil {
		// TLS 1.3 reports a missing client certificate on first read.
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("peer port accepted a client without certificate: %v", err)
	}
}

func TestSnapshotSaveAndRestoreRoundTrip(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	cli := tc.members[0].Client()
	for i := 0; i < 100; i++ {
		mustPut(t, cli, fmt.Sprintf("key/%03d", i), fmt.Sprintf("value-%d", i))
	}
	path := filepath.Join(tc.dir, "backup", "snap.db")
	if err := tc.members[1].Snapshot(ctxT(t, 30*time.Second), path); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(tc.members[1].met.snapshots.WithLabelValues("ok")); got != 1 {
		t.Errorf("snapshots_total{result=ok} = %v, want 1", got)
	}
	// Disaster: restore into a fresh one-member cluster.
	rc := newTestCluster(t, 1)
	rc.cfgs[0].ClusterToken = "restored"
	if _, err := Restore(ctxT(t, 30*time.Second), path, rc.cfgs[0], RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctxT(t, 30*time.Second), path, rc.cfgs[0], RestoreOptions{}); err == nil {
		t.Error("restore into a non-empty data dir succeeded")
	}
	rc.replace(0, rc.cfgs[0])
	m := rc.members[0]
	rc.start(0)
	rcli := m.Client()
	for i := 0; i < 100; i++ {
		if got, want := mustGet(t, rcli, fmt.Sprintf("key/%03d", i)), fmt.Sprintf("value-%d", i); got != want {
			t.Fatalf("restored key/%03d = %q, want %q", i, got, want)
		}
	}
	// The restored cluster accepts a new member that joins it.
	j := rc.addPeer()
	cfg := rc.cfgs[j]
	cfg.ClusterToken = "restored"
	rc.replace(j, cfg)
	rc.start(j)
	if got := mustGet(t, rc.members[j].Client(), "key/042"); got != "value-42" {
		t.Errorf("member joined after restore reads %q, want value-42", got)
	}
}

func TestPeriodicSnapshotsKeepTheNewest(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"etcd-20260101T000000Z.db", "etcd-20260102T000000Z.db", "etcd-20260103T000000Z.db", "other.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := pruneSnapshots(dir, 2); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := "etcd-20260102T000000Z.db etcd-20260103T000000Z.db other.txt"
	if strings.Join(got, " ") != want {
		t.Errorf("after prune: %v, want %s", got, want)
	}

	tc := newTestCluster(t, 1)
	tc.cfgs[0].SnapshotRetention = 1
	tc.replace(0, tc.cfgs[0])
	m := tc.members[0]
	tc.start(0)
	p1, err := m.periodicSnapshot(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(p1) != filepath.Join(tc.dir, "m0", "snapshots") {
		t.Errorf("snapshot written to %s, want <data dir>/../snapshots", p1)
	}
	time.Sleep(1100 * time.Millisecond) // names have one-second resolution
	p2, err := m.periodicSnapshot(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("older snapshot %s kept with retention 1 (stat: %v)", p1, err)
	}
	if _, err := os.Stat(p2); err != nil {
		t.Errorf("newest snapshot missing: %v", err)
	}
}

func TestStartReportsATakenPortClearly(t *testing.T) {
	tc := newTestCluster(t, 1)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", tc.cfgs[0].ClientPort))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = tc.members[0].Start(ctxT(t, 30*time.Second))
	if err == nil || !strings.Contains(err.Error(), "port taken") {
		t.Fatalf("start with the client port taken: %v, want an error saying port taken", err)
	}
}

func TestStartWithoutQuorumFailsWithAnExplanation(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.members[0].cfg.ProgressInterval = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- tc.members[0].Start(ctx) }()
	// Health answers during a Start instead of waiting for it.
	if err := tc.members[0].Health(context.Background()); err == nil {
		t.Error("a starting member reports healthy")
	}
	select {
	case <-started:
		t.Error("Health returned only after Start gave up")
	default:
	}
	err := <-started
	if err == nil || !strings.Contains(err.Error(), "quorum unreachable") {
		t.Fatalf("start alone of a 3-member cluster: %v, want a quorum unreachable error", err)
	}
	t.Logf("start error: %v", err)
	if tc.members[0].Client() != nil {
		t.Error("a failed start left the member running")
	}
}

func TestDataDirOfAnotherClusterIsReported(t *testing.T) {
	// Cluster "other" runs once on the same addresses and is stopped; then
	// cluster "masterd" forms there, and its third member starts on the data
	// dir left by the other cluster's third member.
	tc := newTestCluster(t, 3)
	for i := range tc.cfgs {
		cfg := tc.cfgs[i]
		cfg.ClusterToken = "other"
		cfg.DataDir = filepath.Join(tc.dir, "other", tc.peers[i].Name)
		tc.replace(i, cfg)
	}
	tc.startAll()
	for i := range tc.members {
		tc.stop(i)
	}
	foreign := tc.cfgs[2].DataDir
	for i := range tc.cfgs {
		tc.replace(i, tc.config(i))
	}
	tc.startAll(0, 1)
	cfg := tc.config(2)
	cfg.DataDir = foreign
	cfg.ProgressInterval = time.Second
	tc.replace(2, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	err := tc.members[2].Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "another cluster") {
		t.Fatalf("start with a foreign data dir: %v, want an error naming another cluster", err)
	}
	t.Logf("start error: %v", err)
	mustPut(t, tc.members[0].Client(), "still", "writable")
}

func TestTwoMembersInOneProcessShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	tc := newTestCluster(t, 2)
	for i := range tc.cfgs {
		tc.cfgs[i].Registerer = reg
		m, err := New(tc.cfgs[i])
		if err != nil {
			t.Fatalf("member %d on a shared registry: %v", i, err)
		}
		tc.members[i] = m
	}
}

func TestEmptyMemberWaitsInsteadOfBootstrappingWhenAFormedClusterLacksQuorum(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	mustPut(t, tc.members[0].Client(), "committed", "1")
	for i := range tc.members {
		tc.stop(i)
	}
	// m0 restarts from its data alone: it cannot serve without quorum.
	m0ctx, m0cancel := context.WithCancel(context.Background())
	m0done := make(chan error, 1)
	go func() { m0done <- tc.members[0].Start(m0ctx) }()
	t.Cleanup(func() { m0cancel(); <-m0done })
	// m2's disk is replaced meanwhile.
	if err := os.RemoveAll(tc.cfgs[2].DataDir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := tc.members[2].Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "wait for quorum of the existing etcd cluster") {
		t.Fatalf("start with an empty data dir beside a quorumless formed cluster: %v, want it to wait for quorum", err)
	}
	t.Logf("start error: %v", err)
	if _, err := os.Stat(filepath.Join(tc.cfgs[2].DataDir, "member")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("m2 bootstrapped a data dir anyway (stat: %v)", err)
	}
	// With m1 back, the cluster serves again and m2 rejoins as a new member.
	tc.start(1)
	if err := <-m0done; err != nil {
		t.Fatalf("m0 after quorum returned: %v", err)
	}
	m0done <- nil
	tc.start(2)
	if got := mustGet(t, tc.members[2].Client(), "committed"); got != "1" {
		t.Errorf("rejoined m2 reads %q, want 1", got)
	}
}

// recordHandler keeps every log record's message, for assertions.
type recordHandler struct {
	mu   *sync.Mutex
	msgs *[]string
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.msgs = append(*h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

func (h recordHandler) seen(msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(*h.msgs, msg)
}

func TestStoppingTheLeaderHandsLeadershipToAnotherMember(t *testing.T) {
	tc := newTestCluster(t, 3)
	rec := recordHandler{mu: &sync.Mutex{}, msgs: &[]string{}}
	for i := range tc.cfgs {
		cfg := tc.cfgs[i]
		cfg.Logger = slog.New(rec)
		tc.replace(i, cfg)
	}
	tc.startAll()
	leader := -1
	for i, m := range tc.members {
		if m.IsLeader() {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no leader")
	}
	tc.stop(leader)
	if !rec.seen("leadership transfer finished") {
		t.Errorf("the leader stopped without transferring leadership; log: %v", *rec.msgs)
	}
	other := tc.members[(leader+1)%3]
	mustPut(t, other.Client(), "after", "transfer")
}
