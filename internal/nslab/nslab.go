// Package nslab is a small network-namespace lab for tests of packages that
// talk netlink and raw packets (vip, fence): one bridge namespace and N host
// namespaces, each with eth0 (a veth whose peer is a port of the bridge), an
// IPv4 /24 and an IPv6 /64 address. Everything is removed in t.Cleanup, also
// when the test fails. Names carry a caller prefix and the test process's PID
// so parallel packages and runs do not collide. It needs root.
package nslab

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var labSeq atomic.Int32

// Lab is one bridge and its hosts.
type Lab struct {
	T      testing.TB
	Bridge string // the bridge's namespace
	Hosts  []*Host
}

// Host is one namespace on the bridge.
type Host struct {
	Lab  *Lab
	NS   string // ip netns name
	V4   netip.Prefix
	V6   netip.Prefix
	MAC  net.HardwareAddr
	nsfd netns.NsHandle
}

// RequireRoot skips the test unless it runs as root with iproute2.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veths and a bridge")
	}
	for _, tool := range []string{"ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (iproute2)", tool)
		}
	}
}

// Run runs a command and fails the test on error.
func Run(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out)
}

// New builds n hosts on one bridge. Host i has 10.<net>.0.<i+1>/24 and
// fd<net>::<i+1>/64 where net is unique per lab in this process.
func New(t testing.TB, prefix string, n int) *Lab {
	t.Helper()
	RequireRoot(t)
	seq := labSeq.Add(1)
	base := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq)
	l := &Lab{T: t, Bridge: base + "-br"}
	t.Cleanup(l.Close)
	Run(t, "ip", "netns", "add", l.Bridge)
	Run(t, "ip", "-n", l.Bridge, "link", "set", "lo", "up")
	Run(t, "ip", "-n", l.Bridge, "link", "add", "br0", "type", "bridge")
	Run(t, "ip", "-n", l.Bridge, "link", "set", "br0", "up")
	for i := range n {
		h := &Host{Lab: l, NS: fmt.Sprintf("%s-%c", base, 'a'+i)}
		h.V4 = netip.MustParsePrefix(fmt.Sprintf("10.%d.0.%d/24", 100+seq%100, i+1))
		h.V6 = netip.MustParsePrefix(fmt.Sprintf("fd%02x::%d/64", seq%256, i+1))
		l.Hosts = append(l.Hosts, h)
		Run(t, "ip", "netns", "add", h.NS)
		port := fmt.Sprintf("p%d", i)
		Run(t, "ip", "-n", l.Bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
		Run(t, "ip", "-n", l.Bridge, "link", "set", port, "master", "br0", "up")
		Run(t, "ip", "netns", "exec", h.NS, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
		Run(t, "ip", "-n", h.NS, "link", "set", "lo", "up")
		Run(t, "ip", "-n", h.NS, "link", "set", "eth0", "up")
		Run(t, "ip", "-n", h.NS, "addr", "add", h.V4.String(), "dev", "eth0")
		Run(t, "ip", "-n", h.NS, "addr", "add", h.V6.String(), "dev", "eth0", "nodad")
		fd, err := netns.GetFromName(h.NS)
		if err != nil {
			t.Fatalf("open netns %s: %v", h.NS, err)
		}
		h.nsfd = fd
		hd := h.Handle()
		link, err := hd.LinkByName("eth0")
		if err != nil {
			t.Fatalf("eth0 in %s: %v", h.NS, err)
		}
		h.MAC = link.Attrs().HardwareAddr
	}
	return l
}

// Close deletes the namespaces (t.Cleanup calls it).
func (l *Lab) Close() {
	for _, h := range l.Hosts {
		if h.nsfd.IsOpen() {
			h.nsfd.Close()
		}
		if out, err := exec.Command("ip", "netns", "delete", h.NS).CombinedOutput(); err != nil {
			l.T.Logf("cleanup: ip netns delete %s: %v: %s", h.NS, err, bytes.TrimSpace(out))
		}
	}
	if out, err := exec.Command("ip", "netns", "delete", l.Bridge).CombinedOutput(); err != nil {
		l.T.Logf("cleanup: ip netns delete %s: %v: %s", l.Bridge, err, bytes.TrimSpace(out))
	}
}

// In runs f on an OS thread switched into the host's namespace. Sockets f
// opens stay in that namespace; goroutines f starts do not.
func (h *Host) In(f func() error) {
	t := h.Lab.T
	t.Helper()
	done := make(chan struct{})
	var failed error
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// The thread is not unlocked: if switching back failed it must die
		// with the goroutine rather than serve others in the wrong netns.
		orig, err := netns.Get()
		if err != nil {
			failed = err
			return
		}
		defer orig.Close()
		if err := netns.Set(h.nsfd); err != nil {
			failed = err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			failed = err
			return
		}
		runtime.UnlockOSThread()
		failed = ferr
	}()
	<-done
	if failed != nil {
		t.Fatalf("in netns %s: %v", h.NS, failed)
	}
}

// Exec runs a command inside the host's namespace.
func (h *Host) Exec(argv ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", h.NS}, argv...)...).CombinedOutput()
	return string(out), err
}

// MustExec runs a command inside the host's namespace and fails the test on
// error.
func (h *Host) MustExec(argv ...string) string {
	h.Lab.T.Helper()
	out, err := h.Exec(argv...)
	if err != nil {
		h.Lab.T.Fatalf("in %s: %s: %v: %s", h.NS, strings.Join(argv, " "), err, strings.TrimSpace(out))
	}
	return out
}

// Handle returns a netlink handle bound to the host's namespace.
func (h *Host) Handle() *netlink.Handle {
	h.Lab.T.Helper()
	hd, err := netlink.NewHandleAt(h.nsfd)
	if err != nil {
		h.Lab.T.Fatalf("netlink handle in %s: %v", h.NS, err)
	}
	h.Lab.T.Cleanup(hd.Close)
	return hd
}

// Addrs lists the host's addresses on eth0 of the given family.
func (h *Host) Addrs(family int) []netlink.Addr {
	h.Lab.T.Helper()
	hd := h.Handle()
	link, err := hd.LinkByName("eth0")
	if err != nil {
		h.Lab.T.Fatalf("eth0 in %s: %v", h.NS, err)
	}
	as, err := hd.AddrList(link, family)
	if err != nil {
		h.Lab.T.Fatalf("addresses in %s: %v", h.NS, err)
	}
	return as
}

// Neighbour returns the MAC of the host's neighbour entry for ip, nil when
// there is none (or it is incomplete).
func (h *Host) Neighbour(ip netip.Addr) net.HardwareAddr {
	h.Lab.T.Helper()
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	ns, err := h.Handle().NeighList(0, family)
	if err != nil {
		h.Lab.T.Fatalf("neighbours in %s: %v", h.NS, err)
	}
	for _, n := range ns {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && len(n.HardwareAddr) == 6 {
			return n.HardwareAddr
		}
	}
	return nil
}
