package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// in runs fn on a thread inside ns; the thread is discarded afterwards.
func in(t *testing.T, ns netns.NsHandle, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: Go discards the thread
		if err := netns.Set(ns); err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// lab is two network namespaces joined by a veth pair: the server
// (10.77.0.1) and a client host with a listed address (10.77.0.2) and an
// unlisted one (10.77.0.3).
type lab struct {
	server, client netns.NsHandle
	name           string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	removeStaleNamespaces(t)
	l := &lab{name: fmt.Sprintf("fw%d", os.Getpid())}
	mk := func(suffix string) netns.NsHandle {
		var h netns.NsHandle
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			var err error
			h, err = netns.NewNamed(l.name + suffix)
			done <- err
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close(); netns.DeleteNamed(l.name + suffix) })
		return h
	}
	l.server, l.client = mk("s"), mk("c")
	in(t, l.server, func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: l.name + "a"}, PeerName: l.name + "b"}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		peer, err := netlink.LinkByName(l.name + "b")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetNsFd(peer, int(l.client)); err != nil {
			return err
		}
		return setup(veth, "10.77.0.1/24")
	})
	in(t, l.client, func() error {
		link, err := netlink.LinkByName(l.name + "b")
		if err != nil {
			return err
		}
		return setup(link, "10.77.0.2/24", "10.77.0.3/24")
	})
	return l
}

func setup(link netlink.Link, addrs ...string) error {
	for _, a := range addrs {
		ad, err := netlink.ParseAddr(a)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(link, ad); err != nil {
			return err
		}
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	return netlink.LinkSetUp(link)
}

// dialTCP connects from src to the server's port and says whether it could.
func (l *lab) dialTCP(t *testing.T, src string, port int) error {
	var derr error
	in(t, l.client, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", fmt.Sprintf("10.77.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		derr = err
		return nil
	})
	return derr
}

// udpRoundTrip sends a datagram from src and waits for the echo.
func (l *lab) udpRoundTrip(t *testing.T, src string, port int) error {
	var rerr error
	in(t, l.client, func() error {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP("10.77.0.1"), Port: port})
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			rerr = err
			return nil
		}
		buf := make([]byte, 8)
		_, rerr = c.Read(buf)
		return nil
	})
	return rerr
}

// From a host outside the list, the protected TCP (etcd peer, gossip) and
// UDP (gossip) ports are silent; from a listed address they answer; an
// unprotected port answers anyone; Remove opens them again. The table's
// counter shows the drops (a dial that fails for another reason would not
// count).
func TestOnlyListedHostsReachTheProtectedPorts(t *testing.T) {
	l := newLab(t)
	var fw *Firewall
	accepted := make(chan string, 100)
	in(t, l.server, func() error {
		for _, p := range []int{2380, 7946, 6443} {
			ln, err := net.Listen("tcp", fmt.Sprintf("10.77.0.1:%d", p))
			if err != nil {
				return err
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					ra, la := c.RemoteAddr().(*net.TCPAddr), c.LocalAddr().(*net.TCPAddr)
					accepted <- fmt.Sprintf("%s->%d", ra.IP, la.Port)
					c.Close()
				}
			}()
		}
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("10.77.0.1"), Port: 7946})
		if err != nil {
			return err
		}
		t.Cleanup(func() { u.Close() })
		go func() {
			buf := make([]byte, 64)
			for {
				n, a, err := u.ReadFromUDP(buf)
				if err != nil {
					return
				}
				u.WriteToUDP(buf[:n], a)
			}
		}()
		cfg := DefaultConfig()
		cfg.TCPPorts, cfg.UDPPorts = []uint16{2380, 7946}, []uint16{7946}
		fw, err = New(cfg)
		if err != nil {
			return err
		}
		return fw.Apply([]netip.Addr{netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("fd00::2")})
	})
	t.Cleanup(func() { fw.Remove() })
	out, err := exec.Command("ip", "netns", "exec", l.name+"s", "nft", "list", "table", "inet", "masterd_allow").CombinedOutput()
	t.Logf("nft list:\n%s (%v)", out, err)

	for _, p := range []int{2380, 7946, 6443} {
		if err := l.dialTCP(t, "10.77.0.2", p); err != nil {
			t.Errorf("listed 10.77.0.2 -> tcp %d: %v", p, err)
		}
	}
	if err := l.udpRoundTrip(t, "10.77.0.2", 7946); err != nil {
		t.Errorf("listed 10.77.0.2 -> udp 7946: %v", err)
	}
	if err := l.dialTCP(t, "10.77.0.3", 6443); err != nil {
		t.Errorf("unlisted 10.77.0.3 -> unprotected tcp 6443: %v", err)
	}
	for _, p := range []int{2380, 7946} {
		if err := l.dialTCP(t, "10.77.0.3", p); err == nil {
			t.Errorf("unlisted 10.77.0.3 reached tcp %d", p)
		}
	}
	if err := l.udpRoundTrip(t, "10.77.0.3", 7946); err == nil {
		t.Error("unlisted 10.77.0.3 got an answer on udp 7946")
	}
	var dropped uint64
	in(t, l.server, func() error {
		var err error
		dropped, err = fw.Dropped()
		return err
	})
	t.Logf("dropped %d packets", dropped)
	if dropped < 3 {
		t.Errorf("table counted %d drops, want at least one per refused attempt (3)", dropped)
	}
	// Whatever the listeners accepted so far.
	for len(accepted) > 0 {
		if a := <-accepted; a == "10.77.0.3->2380" || a == "10.77.0.3->7946" {
			t.Errorf("a protected port accepted a connection from %s", a)
		}
	}

	// Re-apply without 10.77.0.2: now it is refused too; Remove opens all.
	in(t, l.server, func() error { return fw.Apply([]netip.Addr{netip.MustParseAddr("10.77.0.1")}) })
	if err := l.dialTCP(t, "10.77.0.2", 2380); err == nil {
		t.Error("10.77.0.2 still reaches tcp 2380 after leaving the list")
	}
	in(t, l.server, func() error { return fw.Remove() })
	if err := l.dialTCP(t, "10.77.0.3", 2380); err != nil {
		t.Errorf("after Remove, 10.77.0.3 -> tcp 2380: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{Table: "", TCPPorts: []uint16{0}}.Validate()
	for _, want := range []string{"table", "port 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want it to name %s", err, want)
		}
	}
	if err := (Config{Table: "t"}).Validate(); err == nil || !strings.Contains(err.Error(), "at least one") {
		t.Errorf("no ports: %v", err)
	}
}

// removeStaleNamespaces deletes the namespaces a killed run of these tests
// left behind (fw<pid>s, fw<pid>c of a process that no longer exists): a
// killed test process never runs its cleanups.
func removeStaleNamespaces(t *testing.T) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "fw") || len(name) < 4 {
			continue
		}
		suffix := name[len(name)-1]
		pid, err := strconv.Atoi(name[2 : len(name)-1])
		if err != nil || (suffix != 's' && suffix != 'c') || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its run is still going
		}
		if err := netns.DeleteNamed(name); err != nil {
			t.Logf("stale namespace %s: %v", name, err)
		} else {
			t.Logf("removed namespace %s of a run that is gone (pid %d)", name, pid)
		}
	}
}
