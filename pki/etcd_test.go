package pki

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// inNetns runs fn on a thread inside a fresh network namespace (named
// pki-<pid>-<n>, removed on cleanup) whose loopback is up and carries addrs.
// Sockets created by fn live in that namespace whatever thread later uses them.
func inNetns(t *testing.T, addrs []netip.Addr, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	name := fmt.Sprintf("pki-%d-etcd", os.Getpid())
	done := make(chan error, 1)
	go func() {
		// The thread never leaves the namespace: it is not unlocked, so Go
		// discards it when this goroutine ends.
		runtime.LockOSThread()
		ns, err := netns.NewNamed(name)
		if err != nil {
			done <- err
			return
		}
		ns.Close()
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		for _, a := range addrs {
			if err == nil {
				err = netlink.AddrAdd(lo, &netlink.Addr{IPNet: netipNet(a)})
			}
		}
		if err != nil {
			done <- err
			return
		}
		fn()
		done <- nil
	}()
	t.Cleanup(func() { netns.DeleteNamed(name) })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func netipNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

// TestEtcdPeerTLSAcceptsOurPeerCertificates runs etcd's own TLS listener
// (with its check that a peer connects from an address its certificate
// names) on m1's peer certificate, and dials it with m2's peer certificate
// loaded through etcd's TLSInfo, from m2's address and from an address the
// certificate does not name.
func TestEtcdPeerTLSAcceptsOurPeerCertificates(t *testing.T) {
	s := testSecret(t)
	p1 := testParams()
	p2 := testParams()
	p2.NodeName, p2.NodeAddress = "m2", netip.MustParseAddr("10.10.0.2")
	f1 := mustEnsure(t, t.TempDir(), s, p1, time.Now())
	f2 := mustEnsure(t, t.TempDir(), s, p2, time.Now())
	foreign := mustEnsure(t, t.TempDir(), testSecret(t), p2, time.Now())
	stranger := netip.MustParseAddr("10.10.0.3")

	rejected := make(chan error, 10)
	serverInfo := &transport.TLSInfo{CertFile: f1.EtcdPeer.Cert, KeyFile: f1.EtcdPeer.Key, TrustedCAFile: f1.EtcdCA, ClientCertAuth: true,
		HandshakeFailure: func(_ *tls.Conn, err error) { rejected <- err }}
	clientCfg := func(f *Files) *tls.Config {
		info := transport.TLSInfo{CertFile: f.EtcdPeer.Cert, KeyFile: f.EtcdPeer.Key, TrustedCAFile: f.EtcdCA}
		cfg, err := info.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerName = "10.10.0.1"
		return cfg
	}
	type result struct{ fromM2, fromStranger, foreignCA error }
	var r result
	inNetns(t, []netip.Addr{p1.NodeAddress, p2.NodeAddress, stranger}, func() {
		ln, err := transport.NewListener("10.10.0.1:2380", "https", serverInfo)
		if err != nil {
			r.fromM2 = err
			return
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					io.Copy(c, c)
				}()
			}
		}()
		r.fromM2 = echo(p2.NodeAddress, clientCfg(f2))
		r.fromStranger = echo(stranger, clientCfg(f2))
		if r.fromStranger != nil {
			// etcd's listener says why it closed the connection.
			r.fromStranger = fmt.Errorf("%w (server: %v)", r.fromStranger, <-rejected)
		}
		r.foreignCA = echo(p2.NodeAddress, clientCfg(foreign))
	})
	t.Logf("from a stranger: %v; other cluster: %v", r.fromStranger, r.foreignCA)
	if r.fromM2 != nil {
		t.Errorf("m2 from its own address: %v", r.fromM2)
	}
	if r.fromStranger == nil || !strings.Contains(r.fromStranger.Error(), `"10.10.0.3" does not match any of DNSNames ["etcd-peer.masterd.invalid" "localhost" "m2"]`) {
		t.Errorf("etcd accepted m2's certificate from an address it does not name, or refused it for another reason: %v", r.fromStranger)
	}
	if r.foreignCA == nil {
		t.Error("etcd accepted a peer certificate of another cluster")
	}
}

// echo dials 10.10.0.1:2380 from src with cfg and round-trips one byte.
func echo(src netip.Addr, cfg *tls.Config) error {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", "10.10.0.1:2380", cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte{42}); err != nil {
		return err
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if buf[0] != 42 {
		return errors.New("echo returned another byte")
	}
	return nil
}
