package fence

// A copy of vip/lab_test.go (the lead may lift both into one helper).
// A small network-namespace lab for tests: one bridge namespace and N host
// namespaces, each with eth0 (a veth whose peer is a port of the bridge),
// an IPv4 /24 and an IPv6 /64 address. Everything is removed in t.Cleanup,
// also when the test fails. Names carry the package prefix and the test
// process's PID so parallel packages and runs do not collide.

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

const labPrefix = "fent"

var labSeq atomic.Int32

type lab struct {
	t      testing.TB
	bridge string
	hosts  []*labHost
}

type labHost struct {
	lab  *lab
	NS   string // ip netns name
	V4   netip.Prefix
	V6   netip.Prefix
	MAC  net.HardwareAddr
	nsfd netns.NsHandle
}

func requireRoot(t testing.TB) {
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

func run(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out)
}

// newLab builds n hosts on one bridge. Host i has 10.<net>.0.<i+1>/24 and
// fd<net>::<i+1>/64 where net is unique per lab in this process.
func newLab(t testing.TB, n int) *lab {
	t.Helper()
	requireRoot(t)
	seq := labSeq.Add(1)
	base := fmt.Sprintf("%s-%d-%d", labPrefix, os.Getpid(), seq)
	l := &lab{t: t, bridge: base + "-br"}
	t.Cleanup(l.close)
	run(t, "ip", "netns", "add", l.bridge)
	run(t, "ip", "-n", l.bridge, "link", "set", "lo", "up")
	run(t, "ip", "-n", l.bridge, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", l.bridge, "link", "set", "br0", "up")
	for i := range n {
		h := &labHost{lab: l, NS: fmt.Sprintf("%s-%c", base, 'a'+i)}
		h.V4 = netip.MustParsePrefix(fmt.Sprintf("10.%d.0.%d/24", 100+seq%100, i+1))
		h.V6 = netip.MustParsePrefix(fmt.Sprintf("fd%02x::%d/64", seq%256, i+1))
		l.hosts = append(l.hosts, h)
		run(t, "ip", "netns", "add", h.NS)
		port := fmt.Sprintf("p%d", i)
		run(t, "ip", "-n", l.bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
		run(t, "ip", "-n", l.bridge, "link", "set", port, "master", "br0", "up")
		run(t, "ip", "netns", "exec", h.NS, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
		run(t, "ip", "-n", h.NS, "link", "set", "lo", "up")
		run(t, "ip", "-n", h.NS, "link", "set", "eth0", "up")
		run(t, "ip", "-n", h.NS, "addr", "add", h.V4.String(), "dev", "eth0")
		run(t, "ip", "-n", h.NS, "addr", "add", h.V6.String(), "dev", "eth0", "nodad")
		fd, err := netns.GetFromName(h.NS)
		if err != nil {
			t.Fatalf("open netns %s: %v", h.NS, err)
		}
		h.nsfd = fd
		hd := h.handle()
		link, err := hd.LinkByName("eth0")
		if err != nil {
			t.Fatalf("eth0 in %s: %v", h.NS, err)
		}
		h.MAC = link.Attrs().HardwareAddr
	}
	return l
}

func (l *lab) close() {
	for _, h := range l.hosts {
		if h.nsfd.IsOpen() {
			h.nsfd.Close()
		}
		if out, err := exec.Command("ip", "netns", "delete", h.NS).CombinedOutput(); err != nil {
			l.t.Logf("cleanup: ip netns delete %s: %v: %s", h.NS, err, bytes.TrimSpace(out))
		}
	}
	if out, err := exec.Command("ip", "netns", "delete", l.bridge).CombinedOutput(); err != nil {
		l.t.Logf("cleanup: ip netns delete %s: %v: %s", l.bridge, err, bytes.TrimSpace(out))
	}
}

// In runs f on an OS thread switched into the host's namespace. Sockets f
// opens stay in that namespace; goroutines f starts do not.
func (h *labHost) In(f func() error) {
	t := h.lab.t
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
func (h *labHost) Exec(argv ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", h.NS}, argv...)...).CombinedOutput()
	return string(out), err
}

// MustExec runs a command inside the host's namespace and fails the test on
// error.
func (h *labHost) MustExec(argv ...string) string {
	h.lab.t.Helper()
	out, err := h.Exec(argv...)
	if err != nil {
		h.lab.t.Fatalf("in %s: %s: %v: %s", h.NS, strings.Join(argv, " "), err, strings.TrimSpace(out))
	}
	return out
}

// handle returns a netlink handle bound to the host's namespace.
func (h *labHost) handle() *netlink.Handle {
	h.lab.t.Helper()
	hd, err := netlink.NewHandleAt(h.nsfd)
	if err != nil {
		h.lab.t.Fatalf("netlink handle in %s: %v", h.NS, err)
	}
	h.lab.t.Cleanup(hd.Close)
	return hd
}

// Addrs lists the host's addresses on eth0 of the given family.
func (h *labHost) Addrs(family int) []netlink.Addr {
	h.lab.t.Helper()
	hd := h.handle()
	link, err := hd.LinkByName("eth0")
	if err != nil {
		h.lab.t.Fatalf("eth0 in %s: %v", h.NS, err)
	}
	as, err := hd.AddrList(link, family)
	if err != nil {
		h.lab.t.Fatalf("addresses in %s: %v", h.NS, err)
	}
	return as
}

// Neighbour returns the MAC of the host's neighbour entry for ip, nil when
// there is none (or it is incomplete).
func (h *labHost) Neighbour(ip netip.Addr) net.HardwareAddr {
	h.lab.t.Helper()
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	ns, err := h.handle().NeighList(0, family)
	if err != nil {
		h.lab.t.Fatalf("neighbours in %s: %v", h.NS, err)
	}
	for _, n := range ns {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && len(n.HardwareAddr) == 6 {
			return n.HardwareAddr
		}
	}
	return nil
}
