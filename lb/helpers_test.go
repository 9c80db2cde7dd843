package lb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testPKI is a CA and one serving certificate valid for every address the
// tests use (the VIP-like listen addresses and the backends on 127.0.0.x).
type testPKI struct {
	pool    *x509.CertPool
	server  tls.Certificate
	caPEM   []byte
	certPEM []byte
	keyPEM  []byte
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
	pkiErr  error
)

func getPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = makePKI() })
	if pkiErr != nil {
		t.Fatalf("make test pki: %v", pkiErr)
	}
	return pkiVal
}

func makePKI() (*testPKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lb-test-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER) // signs the leaf below
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for i := 1; i < 255; i++ {
		ips = append(ips, net.IPv4(127, 0, 0, byte(i)))
	}
	ips = append(ips, net.ParseIP("10.99.0.1"), net.ParseIP("10.98.0.2"), net.ParseIP("fd00:99::1"), net.IPv6loopback)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	p := &testPKI{
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	return p, p.parse()
}

// parse fills pool and server from the PEM fields.
func (p *testPKI) parse() error {
	p.pool = x509.NewCertPool()
	if !p.pool.AppendCertsFromPEM(p.caPEM) {
		return fmt.Errorf("no CA certificate in PEM")
	}
	var err error
	p.server, err = tls.X509KeyPair(p.certPEM, p.keyPEM)
	return err
}

// writeFiles stores the PKI in dir as ca.pem, cert.pem, key.pem.
func (p *testPKI) writeFiles(dir string) error {
	for name, data := range map[string][]byte{"ca.pem": p.caPEM, "cert.pem": p.certPEM, "key.pem": p.keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// testBackend stands in for a kube-apiserver. On one port it speaks:
//   - TLS (first byte 0x16), then the protocol below inside TLS;
//   - "GET <path> ..." : an HTTP/1.1 answer, 200 "ok" when ready, else 503;
//   - "WHO\n"    : its name, then echoes every line until EOF;
//   - "SINK\n"   : reads to EOF, answers "n=<bytes>\n" and closes;
//   - "REVERSE\n": writes "bye\n", half-closes, reads to EOF and records it;
//   - "STREAM\n" : writes its name, then data forever.
type testBackend struct {
	name  string
	ln    net.Listener
	tlsc  *tls.Config
	ready atomic.Bool

	readyz   atomic.Int64 // readiness requests answered
	accepted atomic.Int64 // traffic connections (not readiness checks)

	mu       sync.Mutex
	reversed []byte // what a REVERSE connection received after the half-close
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

func startBackend(t testing.TB, name, addr string) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("backend %s: listen %s: %v", name, addr, err)
	}
	b := newBackend(name, ln, getPKI(t).server)
	t.Cleanup(b.close)
	return b
}

func newBackend(name string, ln net.Listener, cert tls.Certificate) *testBackend {
	b := &testBackend{
		name:  name,
		ln:    ln,
		tlsc:  &tls.Config{Certificates: []tls.Certificate{cert}},
		conns: map[net.Conn]struct{}{},
	}
	b.ready.Store(true)
	b.wg.Add(1)
	go b.serve()
	return b
}

func (b *testBackend) addrPort() netip.AddrPort {
	return b.ln.Addr().(*net.TCPAddr).AddrPort()
}

func (b *testBackend) close() {
	_ = b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *testBackend) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer func() {
				b.mu.Lock()
				delete(b.conns, c)
				b.mu.Unlock()
				_ = c.Close()
			}()
			b.handle(c)
		}()
	}
}

type halfCloser interface{ CloseWrite() error }

func (b *testBackend) handle(raw net.Conn) {
	var c net.Conn = raw
	br := bufio.NewReader(raw)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	if first[0] == 0x16 {
		tc := tls.Server(&peekedConn{Conn: raw, r: br}, b.tlsc)
		c, br = tc, bufio.NewReader(tc)
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return
	}
	switch {
	case strings.HasPrefix(line, "GET "):
		for { // headers
			h, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if h == "\r\n" || h == "\n" {
				break
			}
		}
		b.readyz.Add(1)
		status, body := "200 OK", "ok"
		if !b.ready.Load() {
			status, body = "503 Service Unavailable", "not ready"
		}
		fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", status, len(body), body)
		return
	case line == "WHO\n":
		b.accepted.Add(1)
		fmt.Fprintf(c, "%s\n", b.name)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, l); err != nil {
				return
			}
		}
	case line == "SINK\n":
		b.accepted.Add(1)
		n, err := io.Copy(io.Discard, br)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "n=%d\n", n)
	case line == "REVERSE\n":
		b.accepted.Add(1)
		_, _ = io.WriteString(c, "bye\n")
		hc, ok := c.(halfCloser)
		if !ok || hc.CloseWrite() != nil {
			return
		}
		got, _ := io.ReadAll(br)
		b.mu.Lock()
		b.reversed = got
		b.mu.Unlock()
	case line == "STREAM\n":
		b.accepted.Add(1)
		fmt.Fprintf(c, "%s\n", b.name)
		chunk := bytes.Repeat([]byte("x"), 4096)
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// testConfig is a balancer config for tests: listen on listen (port 0),
// fast checks, the test CA.
func testConfig(t testing.TB, listen string, backends ...*testBackend) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = netip.MustParseAddrPort(listen)
	for _, b := range backends {
		cfg.Backends = append(cfg.Backends, Backend{Name: b.name, Address: b.addrPort()})
	}
	// Fast, but with room for a TLS handshake on a loaded machine under
	// -race: a check timing out would take a backend down mid-test.
	cfg.HealthCheck.Interval = 500 * time.Millisecond
	cfg.HealthCheck.Timeout = 500 * time.Millisecond
	cfg.HealthCheck.CA = getPKI(t).pool
	cfg.DialTimeout = time.Second
	return cfg
}

// startBalancer builds and runs a balancer; the test's cleanup stops it and
// checks Run returned nil.
func startBalancer(t testing.TB, cfg Config, hook func(name string, ok, up bool)) (*Balancer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	b, err := New(cfg, reg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b.onCheck = hook
	errc := make(chan error, 1)
	go func() { errc <- b.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = b.Close()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return b, reg
}

// waitFor polls cond until it holds or a generous deadline passes (a guard
// against hangs, not a timing assertion).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitAllUp(t testing.TB, b *Balancer) {
	t.Helper()
	waitFor(t, "all backends up", func() bool {
		for _, s := range b.Status() {
			if !s.Up {
				return false
			}
		}
		return true
	})
}

// who opens a plain connection through the balancer, asks the backend's
// name and returns the open connection and its reader.
func who(t testing.TB, addr netip.AddrPort) (string, *net.TCPConn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("dial balancer: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "WHO\n"); err != nil {
		t.Fatalf("write WHO: %v", err)
	}
	r := bufio.NewReader(c)
	name, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read backend name: %v", err)
	}
	return strings.TrimSpace(name), c, r
}

// echo sends line over c and checks it comes back.
func echo(t testing.TB, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatalf("echo write: %v", err)
	}
	got, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("echo read: %v", err)
	}
	if got != line+"\n" {
		t.Fatalf("echo: got %q, want %q", got, line)
	}
}

func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
