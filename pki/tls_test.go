package pki

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func pool(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(data) {
		t.Fatalf("%s: no certificates", path)
	}
	return p
}

func keyPair(t *testing.T, p Pair) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func kubeconfigPair(t *testing.T, path string) tls.Certificate {
	t.Helper()
	kc := mustLoadKubeconfig(t, path)
	return tls.Certificate{Certificate: [][]byte{kc.cert.Raw}, PrivateKey: kc.key, Leaf: kc.cert}
}

// socketPair returns the two ends of a Unix stream socket pair: buffered
// like TCP (a side may send an alert while the other writes), but no network.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns[0], conns[1]
}

// handshake runs a real TLS handshake over an in-memory connection and
// echoes one byte, so that both sides have seen the other's verdict.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	now := func() time.Time { return t0.Add(time.Hour) }
	server.Time, client.Time = now, now
	a, b := socketPair(t)
	done := make(chan error, 1)
	go func() {
		s := tls.Server(a, server)
		defer s.Close()
		err := s.Handshake()
		if err == nil {
			buf := make([]byte, 1)
			if _, err = io.ReadFull(s, buf); err == nil {
				_, err = s.Write(buf)
			}
		}
		done <- err
	}()
	c := tls.Client(b, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		if _, clientErr = c.Write([]byte{42}); clientErr == nil {
			buf := make([]byte, 1)
			_, clientErr = io.ReadFull(c, buf)
		}
	}
	c.Close()
	return <-done, clientErr
}

func TestGeneratedIdentitiesTalkMutualTLS(t *testing.T) {
	p := testParams()
	f := mustEnsure(t, t.TempDir(), testSecret(t), p, t0)
	tests := []struct {
		name       string
		serverPair Pair
		serverCA   string
		clientCert tls.Certificate
		clientCA   string
		serverName string
	}{
		{"masterd reaches its etcd on 127.0.0.1", f.EtcdServer, f.EtcdCA, keyPair(t, f.EtcdClient), f.EtcdCA, "127.0.0.1"},
		{"the apiserver reaches etcd by node name", f.EtcdServer, f.EtcdCA, keyPair(t, f.APIServerEtcdClient), f.EtcdCA, "m1"},
		{"an etcd peer reaches another by address", f.EtcdPeer, f.EtcdCA, keyPair(t, f.EtcdPeer), f.EtcdCA, "10.10.0.1"},
		{"admin.conf reaches the apiserver on the VIP", f.APIServer, f.KubeCA.Cert, kubeconfigPair(t, f.AdminConf), f.KubeCA.Cert, "10.10.0.100"},
		{"a pod reaches the apiserver by service name", f.APIServer, f.KubeCA.Cert, kubeconfigPair(t, f.SchedulerConf), f.KubeCA.Cert, "kubernetes.default.svc.cluster.local"},
		{"the controller-manager reaches the apiserver by service IP", f.APIServer, f.KubeCA.Cert, kubeconfigPair(t, f.ControllerManagerConf), f.KubeCA.Cert, "10.96.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &tls.Config{
				Certificates: []tls.Certificate{keyPair(t, tt.serverPair)},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    pool(t, tt.serverCA),
			}
			cli := &tls.Config{Certificates: []tls.Certificate{tt.clientCert}, RootCAs: pool(t, tt.clientCA), ServerName: tt.serverName}
			if se, ce := handshake(t, srv, cli); se != nil || ce != nil {
				t.Fatalf("server: %v, client: %v", se, ce)
			}
		})
	}
}

func TestForeignIdentitiesAreRefused(t *testing.T) {
	p := testParams()
	f := mustEnsure(t, t.TempDir(), testSecret(t), p, t0)
	foreign := mustEnsure(t, t.TempDir(), testSecret(t), p, t0)
	srv := func(pair Pair, ca string) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{keyPair(t, pair)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool(t, ca)}
	}
	cli := func(c tls.Certificate, ca, name string) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{c}, RootCAs: pool(t, ca), ServerName: name}
	}
	t.Run("etcd refuses a client of another cluster", func(t *testing.T) {
		se, _ := handshake(t, srv(f.EtcdServer, f.EtcdCA), cli(keyPair(t, foreign.EtcdClient), f.EtcdCA, "m1"))
		if se == nil {
			t.Fatal("server accepted a foreign client certificate")
		}
	})
	t.Run("a client refuses an etcd of another cluster", func(t *testing.T) {
		_, ce := handshake(t, srv(foreign.EtcdServer, foreign.EtcdCA), cli(keyPair(t, f.EtcdClient), f.EtcdCA, "m1"))
		if ce == nil {
			t.Fatal("client accepted a foreign server certificate")
		}
	})
	t.Run("etcd refuses a kube CA client of the same cluster", func(t *testing.T) {
		se, _ := handshake(t, srv(f.EtcdServer, f.EtcdCA), cli(kubeconfigPair(t, f.AdminConf), f.EtcdCA, "m1"))
		if se == nil {
			t.Fatal("etcd accepted a certificate of the kubernetes CA")
		}
	})
	t.Run("a client refuses the apiserver under a name it does not carry", func(t *testing.T) {
		_, ce := handshake(t, srv(f.APIServer, f.KubeCA.Cert), cli(kubeconfigPair(t, f.AdminConf), f.KubeCA.Cert, "10.10.0.77"))
		if ce == nil {
			t.Fatal("client accepted the apiserver for an address not in its SANs")
		}
	})
	t.Run("a client certificate cannot serve", func(t *testing.T) {
		_, ce := handshake(t, srv(f.EtcdClient, f.EtcdCA), cli(keyPair(t, f.EtcdClient), f.EtcdCA, "masterd"))
		if ce == nil {
			t.Fatal("client accepted a client-only certificate as server")
		}
	})
}
