package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

// served returns the certificate presented on addr (the handshake may then
// fail for want of a client certificate; the server's is kept).
func served(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	var got *x509.Certificate
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			got = c
			return err
		}}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, _ := d.DialContext(ctx, "tcp", addr); conn != nil {
		conn.Close()
	}
	if got == nil {
		t.Fatalf("no certificate presented on %s", addr)
	}
	return got
}

// TestCertsRenewReachesTheRunningEtcd: masterd certs renew asks the running
// daemon, which reissues etcd's serving and peer certificates; its etcd
// serves the new ones on both ports at once (checked by a handshake), the
// cluster keeps its three members, and check-expiration says the served
// certificate is the file's. Without a daemon the command renews on disk.
func TestCertsRenewReachesTheRunningEtcd(t *testing.T) {
	l := newEtcdLab(t)
	for _, d := range l.ds {
		l.start(d)
	}
	l.waitMembers(l.ds[0], 3)
	m1 := l.ds[0]
	client, peer := m1.addr+":12479", m1.addr+":12480"
	oldClient, oldPeer := served(t, client), served(t, peer)

	code, out, errOut := l.masterd("certs", "check-expiration", "--config", l.config(m1))
	if code != 0 {
		t.Fatalf("check-expiration: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"CERTIFICATE", "RESIDUAL TIME", "etcd-server", "same, served on " + client, "same, served on " + peer, "etcd-ca", "self-signed"} {
		if !strings.Contains(out, want) {
			t.Errorf("check-expiration lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = l.masterd("certs", "renew", "etcd-server", "etcd-peer", "--config", l.config(m1))
	t.Logf("certs renew:\n%s%s", out, errOut)
	if code != 0 {
		t.Fatalf("certs renew: exit %d", code)
	}
	for _, want := range []string{"etcd-server renewed", "etcd-peer renewed", "etcd-server served on " + client, "etcd-peer served on " + peer} {
		if !strings.Contains(out, want) {
			t.Errorf("renew output lacks %q", want)
		}
	}
	newClient, newPeer := served(t, client), served(t, peer)
	if newClient.Equal(oldClient) || newPeer.Equal(oldPeer) {
		t.Errorf("etcd still serves the old certificate (client port renewed %v, peer port renewed %v)", !newClient.Equal(oldClient), !newPeer.Equal(oldPeer))
	}
	// The peers still talk to m1 over its renewed peer certificate.
	l.waitMembers(l.ds[1], 3)
	if _, err := l.client(l.ds[1]).Put(context.Background(), "/rotation-test", "after-renew"); err != nil {
		t.Fatalf("write after renew: %v", err)
	}
	code, out, _ = l.masterd("certs", "check-expiration", "--config", l.config(m1))
	if code != 0 || strings.Contains(out, "OLD") || !strings.Contains(out, "same, served on "+client) {
		t.Errorf("check-expiration after renew (exit %d):\n%s", code, out)
	}

	// Names are checked before anything is asked.
	for args, want := range map[string]string{"kube-ca": "is a CA", "apiserver.crt": "unknown certificate", "": "name a certificate or all"} {
		argv := []string{"certs", "renew", "--config", l.config(m1)}
		if args != "" {
			argv = append(argv, args)
		}
		code, _, errOut := l.masterd(argv...)
		if code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("certs renew %s: exit %d, stderr %q; want 2 and %q", args, code, errOut, want)
		}
	}

	// No daemon: renewed on disk, and served by the next start.
	l.stop(m1)
	code, out, errOut = l.masterd("certs", "renew", "etcd-server", "--config", l.config(m1))
	if code != 0 || !strings.Contains(out, "etcd-server.crt written (renewal requested)") || !strings.Contains(out, "masterd is not running here") {
		t.Fatalf("certs renew without daemon: exit %d\n%s%s", code, out, errOut)
	}
	l.start(m1)
	l.waitMembers(m1, 3)
	if served(t, client).Equal(newClient) {
		t.Error("the restarted etcd serves the certificate of before the on-disk renewal")
	}
}
