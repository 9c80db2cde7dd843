package etcdembed

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/masterd/masterd/internal/freeport"
	"github.com/masterd/masterd/pki"
)

// testSecret is one cluster secret (etcd CA) from package pki, as masterd
// init makes it.
func testSecret(t testing.TB) *pki.Secret {
	t.Helper()
	s, err := pki.GenerateSecret(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// nodeTLS runs pki.Ensure for one node into dir and returns its etcd files.
func nodeTLS(t testing.TB, s *pki.Secret, dir, name string, addr netip.Addr) TLS {
	t.Helper()
	p := pki.DefaultParams()
	p.NodeName, p.NodeAddress = name, addr
	p.Peers = []pki.Peer{{Name: name, Address: addr}}
	f, err := pki.Ensure(dir, s, p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return TLS{
		CAFile:         f.EtcdCA,
		ServerCertFile: f.EtcdServer.Cert, ServerKeyFile: f.EtcdServer.Key,
		PeerCertFile: f.EtcdPeer.Cert, PeerKeyFile: f.EtcdPeer.Key,
		ClientCertFile: f.EtcdClient.Cert, ClientKeyFile: f.EtcdClient.Key,
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) uint16 {
	t.Helper()
	return uint16(freeport.TCP(t))
}

var loopback = netip.MustParseAddr("127.0.0.1")

// testLogger discards logs unless ETCDEMBED_TEST_LOG is set (to a slog
// level name: debug, info, warn).
func testLogger(t testing.TB) *slog.Logger {
	lv := os.Getenv("ETCDEMBED_TEST_LOG")
	if lv == "" {
		return slog.New(slog.DiscardHandler)
	}
	var l slog.Level
	_ = l.UnmarshalText([]byte(lv))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// testCluster is n members on 127.0.0.1 with distinct ports and real TLS.
type testCluster struct {
	t       testing.TB
	dir     string
	secret  *pki.Secret
	tls     map[string]TLS // by member name
	peers   []Peer
	cfgs    []Config
	members []*Member
}

func newTestCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	dir := t.TempDir()
	tc := &testCluster{t: t, dir: dir, secret: testSecret(t), tls: map[string]TLS{}}
	for i := 0; i < n; i++ {
		tc.peers = append(tc.peers, Peer{Name: fmt.Sprintf("m%d", i), Address: loopback,
			PeerPort: freePort(t), ClientPort: freePort(t)})
	}
	for i := 0; i < n; i++ {
		tc.addConfig(i)
	}
	return tc
}

// config returns the configuration of member i given the cluster's peers.
func (tc *testCluster) config(i int) Config {
	p := tc.peers[i]
	cfg := DefaultConfig()
	cfg.Name = p.Name
	cfg.DataDir = filepath.Join(tc.dir, p.Name, "etcd")
	cfg.Address = p.Address
	cfg.ClientPort, cfg.PeerPort = p.ClientPort, p.PeerPort
	cfg.Members = append([]Peer(nil), tc.peers...)
	if _, ok := tc.tls[p.Name]; !ok {
		tc.tls[p.Name] = nodeTLS(tc.t, tc.secret, filepath.Join(tc.dir, p.Name, "pki"), p.Name, p.Address)
	}
	cfg.TLS = tc.tls[p.Name]
	cfg.SnapshotInterval = 0
	cfg.ReadyTimeout = 90 * time.Second
	cfg.ProgressInterval = 5 * time.Second
	cfg.Logger = testLogger(tc.t).With("test_member", p.Name)
	cfg.Registerer = prometheus.NewRegistry()
	return cfg
}

func (tc *testCluster) addConfig(i int) {
	tc.t.Helper()
	tc.cfgs = append(tc.cfgs, Config{})
	tc.members = append(tc.members, nil)
	tc.replace(i, tc.config(i))
}

// replace makes member i a new (stopped) Member with cfg; a running former
// member i must have been stopped.
func (tc *testCluster) replace(i int, cfg Config) {
	tc.t.Helper()
	m, err := New(cfg)
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.cfgs[i], tc.members[i] = cfg, m
	tc.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = m.Stop(ctx)
	})
}

// addPeer extends the cluster by one member (not started) and returns its index.
func (tc *testCluster) addPeer() int {
	tc.peers = append(tc.peers, Peer{Name: fmt.Sprintf("m%d", len(tc.peers)), Address: loopback,
		PeerPort: freePort(tc.t), ClientPort: freePort(tc.t)})
	i := len(tc.peers) - 1
	tc.addConfig(i)
	return i
}

// startAll starts members idx (all when empty) concurrently, as masters do at
// first boot, and fails the test if any Start fails.
func (tc *testCluster) startAll(idx ...int) {
	tc.t.Helper()
	if len(idx) == 0 {
		for i := range tc.members {
			idx = append(idx, i)
		}
	}
	errs := make([]error, len(tc.members))
	var wg sync.WaitGroup
	for _, i := range idx {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			errs[i] = tc.members[i].Start(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tc.t.Fatalf("start member %d: %v", i, err)
		}
	}
}

func (tc *testCluster) start(i int) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := tc.members[i].Start(ctx); err != nil {
		tc.t.Fatalf("start member %d: %v", i, err)
	}
}

func (tc *testCluster) stop(i int) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tc.members[i].Stop(ctx); err != nil {
		tc.t.Fatalf("stop member %d: %v", i, err)
	}
}

// endpoint is member i's client URL.
func (tc *testCluster) endpoint(i int) string {
	u := tc.cfgs[i].clientURL(tc.peers[i])
	return u.String()
}

// client returns a client with masterd's certificate for the given members'
// endpoints; closed at the end of the test.
func (tc *testCluster) client(idx ...int) *clientv3.Client {
	tc.t.Helper()
	f := tc.cfgs[0].TLS
	info := transport.TLSInfo{CertFile: f.ClientCertFile, KeyFile: f.ClientKeyFile, TrustedCAFile: f.CAFile}
	tlsc, err := info.ClientConfig()
	if err != nil {
		tc.t.Fatal(err)
	}
	return tc.clientWithTLS(tlsc, idx...)
}

func (tc *testCluster) clientWithTLS(tlsc *tls.Config, idx ...int) *clientv3.Client {
	tc.t.Helper()
	var eps []string
	for _, i := range idx {
		eps = append(eps, tc.endpoint(i))
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tlsc, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t testing.TB, cli *clientv3.Client, k, v string) {
	t.Helper()
	if _, err := cli.Put(ctxT(t, 10*time.Second), k, v); err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
}

func mustGet(t testing.TB, cli *clientv3.Client, k string) string {
	t.Helper()
	resp, err := cli.Get(ctxT(t, 10*time.Second), k)
	if err != nil {
		t.Fatalf("get %s: %v", k, err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}
