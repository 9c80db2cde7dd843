package vip

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

type family struct {
	name string
	nl   int
	vip  func(h *labHost) netip.Addr
}

var families = []family{
	{"ipv4", netlink.FAMILY_V4, func(h *labHost) netip.Addr { return h.V4.Masked().Addr().Next().Next().Next().Next() }},
	{"ipv6", netlink.FAMILY_V6, func(h *labHost) netip.Addr {
		a := h.V6.Masked().Addr().As16()
		a[15] = 0x64
		return netip.AddrFrom16(a)
	}},
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newManager creates a manager inside h's namespace with its own registry.
func newManager(t *testing.T, h *labHost, cfg Config, logs *syncBuffer) *Manager {
	t.Helper()
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var m *Manager
	h.In(func() error {
		var err error
		m, err = New(cfg, logger, prometheus.NewRegistry())
		return err
	})
	t.Cleanup(func() { m.Close() })
	return m
}

// runManager runs m.Run until the test ends.
func runManager(t *testing.T, m *Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond until it holds; limit bounds a failing test, it is not
// the property under test.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func vipAddrs(h *labHost, f family, vip netip.Addr) []netlink.Addr {
	var out []netlink.Addr
	for _, a := range h.Addrs(f.nl) {
		if p, ok := netipPrefix(a.IPNet); ok && p.Addr() == vip {
			out = append(out, a)
		}
	}
	return out
}

func TestAcquireAddsHostPrefixAndReleaseRemovesIt(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			l := newLab(t, 1)
			h := l.Hosts[0]
			vip := f.vip(h)
			m := newManager(t, h, DefaultConfig(vip), nil) // interface found by subnet
			ctx := context.Background()

			if err := m.Acquire(ctx); err != nil {
				t.Fatal(err)
			}
			as := vipAddrs(h, f, vip)
			if len(as) != 1 {
				t.Fatalf("after Acquire: %d copies of %s on eth0, want 1", len(as), vip)
			}
			if ones, bits := as[0].Mask.Size(); ones != bits {
				t.Errorf("prefix length %d, want %d", ones, bits)
			}
			if as[0].ValidLft <= 0 || as[0].ValidLft > 5 {
				t.Errorf("valid_lft %d, want (0, 5]", as[0].ValidLft)
			}
			if f.nl == netlink.FAMILY_V6 {
				if as[0].PreferedLft != 0 {
					t.Errorf("preferred_lft %d, want 0 (never a source address)", as[0].PreferedLft)
				}
				if as[0].Flags&unix.IFA_F_NODAD == 0 {
					t.Errorf("flags %#x lack IFA_F_NODAD", as[0].Flags)
				}
			}
			if !m.Owned() || value(m.m.owned) != 1 {
				t.Errorf("Owned()=%v metric=%v after Acquire", m.Owned(), value(m.m.owned))
			}
			if got := value(m.m.garpSent); got < 1 {
				t.Errorf("garp_sent_total %v after Acquire, want the first announcement sent", got)
			}

			if err := m.Acquire(ctx); err != nil {
				t.Fatalf("second Acquire: %v", err)
			}
			if n := len(vipAddrs(h, f, vip)); n != 1 {
				t.Fatalf("after second Acquire: %d copies, want 1", n)
			}
			if n := value(m.m.acquireDuration); n != 1 {
				t.Errorf("acquire duration has %v observations after two Acquires of one move, want 1", n)
			}

			if err := m.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if n := len(vipAddrs(h, f, vip)); n != 0 {
				t.Fatalf("after Release: %d copies, want 0", n)
			}
			if m.Owned() || value(m.m.owned) != 0 {
				t.Errorf("Owned()=%v metric=%v after Release", m.Owned(), value(m.m.owned))
			}
			if err := m.Release(ctx); err != nil {
				t.Fatalf("second Release: %v", err)
			}
		})
	}
}

func TestAcquireWithoutMatchingSubnetNamesTheProblem(t *testing.T) {
	l := newLab(t, 1)
	m := newManager(t, l.Hosts[0], DefaultConfig(netip.MustParseAddr("192.0.2.10")), nil)
	err := m.Acquire(context.Background())
	if err == nil || !strings.Contains(err.Error(), "set interface") {
		t.Fatalf("Acquire of a VIP outside every subnet: %v, want an error asking for the interface", err)
	}
	if m.Owned() {
		t.Fatal("Owned() after a failed Acquire")
	}
}

func TestCleanupRemovesStaleVIPFromEveryInterface(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			l := newLab(t, 1)
			h := l.Hosts[0]
			vip := f.vip(h)
			bits := "/32"
			if vip.Is6() {
				bits = "/128"
			}
			h.MustExec("ip", "link", "add", "x0", "type", "veth", "peer", "name", "x1")
			h.MustExec("ip", "addr", "add", vip.String()+bits, "dev", "eth0")
			h.MustExec("ip", "addr", "add", vip.String()+bits, "dev", "x0")
			m := newManager(t, h, DefaultConfig(vip), nil)
			if err := m.Cleanup(context.Background()); err != nil {
				t.Fatal(err)
			}
			if out := h.MustExec("ip", "addr", "show"); strings.Contains(out, vip.String()+bits) {
				t.Fatalf("stale VIP still present after Cleanup:\n%s", out)
			}
		})
	}
}

func TestCleanupLeavesAHeldVIP(t *testing.T) {
	l := newLab(t, 1)
	h := l.Hosts[0]
	vip := families[0].vip(h)
	m := newManager(t, h, DefaultConfig(vip), nil)
	if err := m.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(vipAddrs(h, families[0], vip)); n != 1 {
		t.Fatalf("Cleanup while holding left %d copies, want 1", n)
	}
}

func TestExternallyRemovedVIPIsAddedBackAndAnnounced(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			l := newLab(t, 1)
			h := l.Hosts[0]
			vip := f.vip(h)
			m := newManager(t, h, DefaultConfig(vip), nil)
			runManager(t, m)
			if err := m.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			sentBefore := value(m.m.garpSent)
			h.MustExec("ip", "addr", "del", netip.PrefixFrom(vip, vip.BitLen()).String(), "dev", "eth0")
			// The re-add is counted before it is announced: wait for both.
			waitFor(t, "the VIP back on eth0 and announced again", 5*time.Second, func() bool {
				return value(m.m.removedExternally) == 1 && len(vipAddrs(h, f, vip)) == 1 &&
					value(m.m.garpSent) > sentBefore
			})
			if !m.Owned() {
				t.Error("Owned() false after the re-add")
			}

			// After Release, a removal is nobody's business: nothing is re-added.
			if err := m.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
			h.MustExec("ip", "addr", "add", netip.PrefixFrom(vip, vip.BitLen()).String(), "dev", "eth0")
			h.MustExec("ip", "addr", "del", netip.PrefixFrom(vip, vip.BitLen()).String(), "dev", "eth0")
			// A held probe VIP proves the watcher processed later events.
			if err := m.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			h.MustExec("ip", "addr", "del", netip.PrefixFrom(vip, vip.BitLen()).String(), "dev", "eth0")
			waitFor(t, "the second re-add", 5*time.Second, func() bool {
				return value(m.m.removedExternally) == 2
			})
		})
	}
}

func TestUnrefreshedLifetimeExpiresAndIsNotPutBack(t *testing.T) {
	l := newLab(t, 1)
	h := l.Hosts[0]
	vip := families[0].vip(h)
	cfg := DefaultConfig(vip)
	cfg.ValidLifetime = 2 * time.Second
	m := newManager(t, h, cfg, nil)
	runManager(t, m)
	if err := m.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kernel to expire the unrefreshed VIP", 10*time.Second, func() bool {
		return len(vipAddrs(h, families[0], vip)) == 0
	})
	waitFor(t, "the manager to notice the expiry", 5*time.Second, func() bool { return !m.Owned() })
	if got := value(m.m.removedExternally); got != 0 {
		t.Fatalf("removed_externally_total %v: an expiry is not an external removal", got)
	}
	if n := len(vipAddrs(h, families[0], vip)); n != 0 {
		t.Fatalf("expired VIP was put back (%d copies)", n)
	}
}

func TestRefreshKeepsTheVIPPastItsLifetime(t *testing.T) {
	l := newLab(t, 1)
	h := l.Hosts[0]
	vip := families[0].vip(h)
	cfg := DefaultConfig(vip)
	cfg.ValidLifetime = 2 * time.Second
	m := newManager(t, h, cfg, nil)
	if err := m.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Refresh for twice the lifetime: the VIP must survive.
	end := time.Now().Add(4 * time.Second)
	for time.Now().Before(end) {
		if err := m.Refresh(); err != nil {
			t.Fatal(err)
		}
		if len(vipAddrs(h, families[0], vip)) != 1 {
			t.Fatal("VIP vanished although refreshed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A client that resolved the VIP to the old holder's MAC follows the move
// without sending anything: only the announcements can update its entry.
func TestClientNeighbourFollowsTheMove(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			l := newLab(t, 3)
			a, b, client := l.Hosts[0], l.Hosts[1], l.Hosts[2]
			vip := f.vip(a)
			ma := newManager(t, a, DefaultConfig(vip), nil)
			mb := newManager(t, b, DefaultConfig(vip), nil)
			ctx := context.Background()
			if err := ma.Acquire(ctx); err != nil {
				t.Fatal(err)
			}
			client.MustExec("ping", "-c", "1", "-W", "2", vip.String())
			if got := client.Neighbour(vip); !bytes.Equal(got, a.MAC) {
				t.Fatalf("client resolved %s to %v, want a's %v", vip, got, a.MAC)
			}
			if err := ma.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := mb.Acquire(ctx); err != nil {
				t.Fatal(err)
			}
			// The schedule ends 2.5 s after the move; no ARP/ND timeout of
			// the client can change the entry meanwhile, because the client
			// sends nothing to the VIP.
			waitFor(t, "the client's entry to show b's MAC", 4*time.Second, func() bool {
				return bytes.Equal(client.Neighbour(vip), b.MAC)
			})
			client.MustExec("ping", "-c", "1", "-W", "2", vip.String())
		})
	}
}

func TestAnotherHostAnsweringForTheVIPIsReported(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			l := newLab(t, 2)
			a, rogue := l.Hosts[0], l.Hosts[1]
			vip := f.vip(a)
			cfg := DefaultConfig(vip)
			cfg.ConflictProbeInterval = 50 * time.Millisecond
			var logs syncBuffer
			m := newManager(t, a, cfg, &logs)
			runManager(t, m)
			if err := m.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Our own announcements and probes are not conflicts.
			waitFor(t, "the first repeats", 2*time.Second, func() bool { return value(m.m.garpSent) >= 3*float64(len(garpFramesFor(vip))) })
			if got := value(m.m.conflicts); got != 0 {
				t.Fatalf("conflicts_total %v while alone on the VIP", got)
			}
			args := []string{"ip", "addr", "add", netip.PrefixFrom(vip, vip.BitLen()).String(), "dev", "eth0"}
			if vip.Is6() {
				args = append(args, "nodad")
			}
			rogue.MustExec(args...)
			waitFor(t, "the conflict to be counted", 5*time.Second, func() bool { return value(m.m.conflicts) >= 1 })
			if !strings.Contains(logs.String(), "other_mac="+rogue.MAC.String()) {
				t.Fatalf("no log line naming the other MAC %s:\n%s", rogue.MAC, logs.String())
			}
		})
	}
}

func garpFramesFor(vip netip.Addr) [][]byte {
	if vip.Is4() {
		return garpFrames(net.HardwareAddr{2, 0, 0, 0, 0, 1}, vip)
	}
	return [][]byte{naFrame(net.HardwareAddr{2, 0, 0, 0, 0, 1}, vip)}
}

// value reads a counter or gauge, or a histogram's observation count.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Histogram != nil:
		return float64(d.Histogram.GetSampleCount())
	}
	return 0
}

func TestRunReturnsWhenTheManagerIsClosed(t *testing.T) {
	l := newLab(t, 1)
	m := newManager(t, l.Hosts[0], DefaultConfig(families[0].vip(l.Hosts[0])), nil)
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running 5 s after Close")
	}
}

func TestInterfaceIsTheOneWhoseSubnetHoldsTheVIP(t *testing.T) {
	l := newLab(t, 1)
	h := l.Hosts[0]
	for _, f := range families {
		m := newManager(t, h, DefaultConfig(f.vip(h)), nil)
		if got, err := m.Interface(); err != nil || got != "eth0" {
			t.Errorf("%s: Interface() = %q, %v; want eth0", f.name, got, err)
		}
	}
}

// Without probing, a gratuitous ARP from another host (a keepalived left
// running, say) is still a conflict.
func TestGratuitousARPFromAnotherHostIsAConflictWithoutProbing(t *testing.T) {
	l := newLab(t, 2)
	a, rogue := l.Hosts[0], l.Hosts[1]
	vip := families[0].vip(a)
	cfg := DefaultConfig(vip)
	cfg.ConflictProbeInterval = 0
	m := newManager(t, a, cfg, nil)
	runManager(t, m)
	if err := m.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	var fd, ifindex int
	rogue.In(func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		ifindex = link.Attrs().Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	defer unix.Close(fd)
	waitFor(t, "the rogue's gratuitous ARP to be counted", 10*time.Second, func() bool {
		for _, f := range garpFrames(rogue.MAC, vip) {
			sa := &unix.SockaddrLinklayer{Protocol: htons(etherTypeARP), Ifindex: ifindex, Halen: 6}
			copy(sa.Addr[:], broadcastMAC)
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				t.Fatalf("rogue send: %v", err)
			}
		}
		time.Sleep(20 * time.Millisecond)
		return value(m.m.conflicts) >= 1
	})
}
