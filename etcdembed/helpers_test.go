package etcdembed

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
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
)

// testPKI is a throw-away CA with one server/peer certificate (SANs
// 127.0.0.1, localhost; server and client auth) shared by all members, and
// masterd's client certificate. TODO: switch to package pki once it lands.
type testPKI struct {
	CAFile, CertFile, KeyFile, ClientCertFile, ClientKeyFile string
}

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t testing.TB, cn string) keyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{cert, key}
}

var serial int64 = 10
var serialMu sync.Mutex

func (ca keyPair) issue(t testing.TB, cn string, server bool) keyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serialMu.Lock()
	serial++
	sn := serial
	serialMu.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{cert, key}
}

func (kp keyPair) write(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kp.cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(kp.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func newTestPKI(t testing.TB, dir, caName string) testPKI {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca := newCA(t, caName)
	var p testPKI
	p.CAFile, _ = ca.write(t, dir, "ca")
	p.CertFile, p.KeyFile = ca.issue(t, "etcd-member", true).write(t, dir, "member")
	p.ClientCertFile, p.ClientKeyFile = ca.issue(t, "masterd", false).write(t, dir, "client")
	return p
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
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
	pki     testPKI
	peers   []Peer
	cfgs    []Config
	members []*Member
}

func newTestCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	dir := t.TempDir()
	tc := &testCluster{t: t, dir: dir, pki: newTestPKI(t, filepath.Join(dir, "pki"), "masterd test CA")}
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
	cfg.TLS = TLS{
		CAFile:         tc.pki.CAFile,
		ServerCertFile: tc.pki.CertFile, ServerKeyFile: tc.pki.KeyFile,
		PeerCertFile: tc.pki.CertFile, PeerKeyFile: tc.pki.KeyFile,
		ClientCertFile: tc.pki.ClientCertFile, ClientKeyFile: tc.pki.ClientKeyFile,
	}
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
	info := transport.TLSInfo{CertFile: tc.pki.ClientCertFile, KeyFile: tc.pki.ClientKeyFile, TrustedCAFile: tc.pki.CAFile}
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
