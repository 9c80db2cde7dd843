package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/masterd/masterd/internal/kubetest"
)

// Does a running kube-apiserver (and the embedded etcd) pick up a renewed
// certificate without a restart? The answer decides whether masterd
// restarts the apiserver after a renewal (agent/pki.go): it does not, because
// this test shows both serve the new serving certificate read from disk, and
// the apiserver presents the renewed kubelet client certificate to a kubelet
// (a TLS stand-in that records it) on its next connection.

const reloadChildEnv = "PKI_RELOAD_TEST_CHILD"

func TestKubeAPIServerAndEtcdServeARenewedCertificateWithoutRestart(t *testing.T) {
	if os.Getenv(reloadChildEnv) != "" {
		t.Skip("child process")
	}
	bin := kubeBin(t)
	kubetest.RunChild(t, fmt.Sprintf("pki-%d-reload", os.Getpid()), "TestReloadChild", reloadChildEnv+"="+bin)
}

// servedCertSerial reads the serial of the certificate served at addr.
func servedCertSerial(addr string) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func TestReloadChild(t *testing.T) {
	bin := os.Getenv(reloadChildEnv)
	if bin == "" {
		t.Skip("runs only inside TestKubeAPIServerAndEtcdServeARenewedCertificateWithoutRestart's network namespace")
	}
	s, p := testSecret(t), testParams()
	p.Peers = p.Peers[:1]
	p.LeafValidity, p.RenewBefore = 24*time.Hour, time.Hour
	dir := filepath.Join(t.TempDir(), "pki")
	f := mustEnsure(t, dir, s, p, time.Now())

	kubetest.StartEtcd(t, etcdTLS(f))
	proxy := newEtcdProxy(t, f)
	exited := kubetest.StartProc(t, bin,
		"--advertise-address=10.10.0.1", "--bind-address=0.0.0.0", "--secure-port=6443",
		"--etcd-servers=https://10.10.0.1:2381", "--etcd-cafile="+f.EtcdCA,
		"--etcd-certfile="+f.APIServerEtcdClient.Cert, "--etcd-keyfile="+f.APIServerEtcdClient.Key,
		"--client-ca-file="+f.KubeCA.Cert,
		"--tls-cert-file="+f.APIServer.Cert, "--tls-private-key-file="+f.APIServer.Key,
		"--kubelet-client-certificate="+f.APIServerKubeletClient.Cert, "--kubelet-client-key="+f.APIServerKubeletClient.Key,
		"--service-account-key-file="+f.ServiceAccountPub, "--service-account-signing-key-file="+f.ServiceAccountKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/12", "--authorization-mode=Node,RBAC",
		"--cert-dir="+t.TempDir())
	admin := kubeClient(t, f.AdminConf)
	waitFor(t, "kube-apiserver ready", exited, func() bool {
		code, _ := admin.call("GET", "/readyz", "", nil)
		return code == 200
	})
	kubelet := fakeKubelet(t, f)
	kubeletBefore := kubelet.clientSerial(t, admin)
	if want := fileSerial(t, f.APIServerKubeletClient.Cert); kubeletBefore != want {
		t.Fatalf("apiserver presents kubelet client serial %s, want %s", kubeletBefore, want)
	}
	const apiAddr, etcdAddr = "10.10.0.1:6443", "10.10.0.1:2379"
	apiBefore, err := servedCertSerial(apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	etcdBefore, err := servedCertSerial(etcdAddr)
	if err != nil {
		t.Fatal(err)
	}

	// Renew: every leaf is now within RenewBefore of its expiry.
	p.RenewBefore = p.LeafValidity - time.Second
	renewed := mustEnsure(t, dir, s, p, time.Now())
	if _, ok := changedNames(renewed)["apiserver.crt"]; !ok {
		t.Fatalf("renewal did not rewrite apiserver.crt: %v", renewed.Changes)
	}
	wantAPI, wantEtcd := fileSerial(t, f.APIServer.Cert), fileSerial(t, f.EtcdServer.Cert)
	if wantAPI == apiBefore || wantEtcd == etcdBefore {
		t.Fatal("renewal kept the serials")
	}
	waitFor(t, "kube-apiserver serves the renewed certificate", exited, func() bool {
		got, err := servedCertSerial(apiAddr)
		return err == nil && got == wantAPI
	})
	t.Logf("kube-apiserver (same PID) serves serial %s, was %s", wantAPI, apiBefore)
	got, err := servedCertSerial(etcdAddr)
	if err != nil || got != wantEtcd {
		t.Fatalf("etcd serves serial %s (%v), want the renewed %s", got, err, wantEtcd)
	}
	t.Logf("embedded etcd serves serial %s, was %s", wantEtcd, etcdBefore)
	if code, body := admin.call("GET", "/readyz", "", nil); code != 200 {
		t.Fatalf("apiserver after renewal: %d %s", code, body)
	}
	// The kubelet client certificate (--kubelet-client-certificate) is
	// reloaded too: a new connection to a kubelet presents the renewed one
	// (polled: the reload follows a file watch).
	wantKubelet := fileSerial(t, f.APIServerKubeletClient.Cert)
	var presented string
	for i := 0; i < 60; i++ {
		if presented = kubelet.clientSerial(t, admin); presented == wantKubelet {
			break
		}
		time.Sleep(time.Second)
	}
	if presented != wantKubelet {
		t.Fatalf("apiserver presents kubelet client serial %q to a new connection, want the renewed %s (was %s)", presented, wantKubelet, kubeletBefore)
	}
	t.Logf("kube-apiserver (same PID) presents kubelet client serial %s, was %s", presented, kubeletBefore)

	// The etcd client certificate (--etcd-certfile): the proxy cuts the
	// apiserver's etcd connections; the ones it makes anew present the
	// renewed certificate.
	wantEtcdClient := fileSerial(t, f.APIServerEtcdClient.Cert)
	proxy.mu.Lock()
	etcdClientBefore := proxy.first
	proxy.mu.Unlock()
	proxy.cut()
	var etcdClient string
	waitFor(t, "kube-apiserver reconnects to etcd", exited, func() bool {
		select {
		case etcdClient = <-proxy.serials:
			return true
		default:
			return false
		}
	})
	if etcdClient != wantEtcdClient {
		t.Fatalf("apiserver presents etcd client serial %s on a new connection, want the renewed %s (was %s)", etcdClient, wantEtcdClient, etcdClientBefore)
	}
	waitFor(t, "kube-apiserver ready after the etcd reconnect", exited, func() bool {
		code, _ := admin.call("GET", "/readyz", "", nil)
		return code == 200
	})
	select {
	case err := <-exited:
		t.Fatalf("kube-apiserver exited during the test: %v", err)
	default:
	}
	t.Logf("kube-apiserver (same PID) presents etcd client serial %s, was %s", etcdClient, etcdClientBefore)
}

// kubeletStandIn is a TLS server on 10.10.0.1:10250 standing in for a
// kubelet: it records the client certificate the apiserver presents.
type kubeletStandIn struct {
	serials chan string
}

func fakeKubelet(t *testing.T, f *Files) *kubeletStandIn {
	t.Helper()
	pair := keyPair(t, f.APIServer) // any serving certificate: the apiserver does not verify kubelets here
	k := &kubeletStandIn{serials: make(chan string, 16)}
	ln, err := tls.Listen("tcp", "10.10.0.1:10250", &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			select {
			case k.serials <- cs.PeerCertificates[0].SerialNumber.String():
			default:
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Connection: close, so each proxied request makes a new handshake.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Write([]byte("ok"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	node := `{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},"status":{"addresses":[{"type":"InternalIP","address":"10.10.0.1"}],"daemonEndpoints":{"kubeletEndpoint":{"Port":10250}}}}`
	admin := kubeClient(t, f.AdminConf)
	if code, body := admin.call("POST", "/api/v1/nodes", "", []byte(node)); code != http.StatusCreated {
		t.Fatalf("create node: %d %s", code, body)
	}
	return k
}

// clientSerial makes the apiserver reach the kubelet (node proxy) on a new
// connection and returns the serial of the client certificate it presented.
func (k *kubeletStandIn) clientSerial(t *testing.T, admin *kubeHTTP) string {
	t.Helper()
	for len(k.serials) > 0 {
		<-k.serials
	}
	// The apiserver may try a connection the stand-in just closed: a 503
	// then, and the next try dials anew.
	for try := 1; ; try++ {
		code, body := admin.call("GET", "/api/v1/nodes/n1/proxy/healthz", "", nil)
		if code == http.StatusOK {
			break
		}
		if try == 5 {
			t.Fatalf("node proxy: %d %s", code, body)
		}
	}
	select {
	case s := <-k.serials:
		return s
	default:
		return "" // the apiserver reused a connection: no handshake
	}
}

func fileSerial(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCertPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// etcdProxy terminates the apiserver's TLS to etcd on 10.10.0.1:2381,
// records the client certificate it presents, and relays to etcd on 2379.
type etcdProxy struct {
	serials chan string
	first   string // the serial of the first connection

	mu    sync.Mutex
	conns []net.Conn
}

func newEtcdProxy(t *testing.T, f *Files) *etcdProxy {
	t.Helper()
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(f.EtcdCA)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(caPEM)
	upstream := &tls.Config{Certificates: []tls.Certificate{keyPair(t, f.APIServerEtcdClient)}, RootCAs: pool, NextProtos: []string{"h2"}}
	p := &etcdProxy{serials: make(chan string, 64)}
	ln, err := tls.Listen("tcp", "10.10.0.1:2381", &tls.Config{
		Certificates: []tls.Certificate{keyPair(t, f.EtcdServer)},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{"h2"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			s := cs.PeerCertificates[0].SerialNumber.String()
			p.mu.Lock()
			if p.first == "" {
				p.first = s
			}
			p.mu.Unlock()
			select {
			case p.serials <- s:
			default:
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.relay(c, upstream)
		}
	}()
	return p
}

func (p *etcdProxy) relay(c net.Conn, upstream *tls.Config) {
	if err := c.(*tls.Conn).Handshake(); err != nil {
		c.Close()
		return
	}
	u, err := tls.Dial("tcp", "10.10.0.1:2379", upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, u)
	p.mu.Unlock()
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
}

// cut closes every relayed connection and empties the recorded serials.
func (p *etcdProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for len(p.serials) > 0 {
		<-p.serials
	}
	for _, c := range conns {
		c.Close()
	}
}
