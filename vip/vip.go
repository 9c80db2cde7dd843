package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Manager adds, removes, announces and watches one VIP. Its methods are
// safe for concurrent use. The zero value is not usable: call New.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	ns     netns.NsHandle
	h      *netlink.Handle
	sendFD int      // AF_PACKET, protocol 0: sends only
	recv   *os.File // AF_PACKET bound to ARP or IPv6, for conflicts

	mu          sync.Mutex
	owned       bool
	ifindex     int
	ifname      string
	mac         net.HardwareAddr
	boundIndex  int
	lastRefresh time.Time
	lastLogged  map[string]time.Time // conflict log rate limit, per other MAC
	ann         Announcer
	closed      bool
	done        chan struct{} // closed by Close, ends Run
}

// New validates cfg and opens the manager's sockets in the network namespace
// of the calling OS thread. It does not touch any address. logger and reg
// may be nil (no logs, no metrics).
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vip: config: %w", err)
	}
	cfg.Announce = append([]time.Duration(nil), cfg.Announce...)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mt, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("vip: open network namespace: %w", err)
	}
	m := &Manager{cfg: cfg, m: mt, ns: ns, sendFD: -1, done: make(chan struct{}),
		log: logger.With("component", "vip", "vip", cfg.Address.String())}
	fail := func(what string, err error) (*Manager, error) {
		m.Close()
		return nil, fmt.Errorf("vip: %s: %w", what, err)
	}
	// In the calling thread's namespace, which ns is: no setns(2), which
	// would need CAP_SYS_ADMIN.
	if m.h, err = netlink.NewHandle(); err != nil {
		return fail("open netlink", err)
	}
	if m.sendFD, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		return fail("open packet socket", err)
	}
	// Protocol 0: the socket receives nothing until resolve binds it to the
	// VIP's interface and protocol. Opened with the protocol, it would be
	// hooked to every interface at once, and the kernel unhooks a running
	// packet socket on bind with synchronize_net(): an RCU grace period,
	// 10-15 ms measured in the lab, on the first Acquire's path.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fail("open packet socket", err)
	}
	if cfg.Address.Is6() {
		if err := attachNAFilter(fd); err != nil {
			unix.Close(fd)
			return fail("attach neighbour advertisement filter", err)
		}
	}
	m.recv = os.NewFile(uintptr(fd), "vip-packet")
	m.ann = cfg.Announcer
	if m.ann == nil {
		m.ann = NewNeighbourAnnouncer(cfg.Address, cfg.Announce, m.sendFrame, m.log, m.m.garpSent)
	}
	return m, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// attachNAFilter keeps IPv6 frames that are ICMPv6 neighbour advertisements
// (next header 58 at byte 20, ICMPv6 type 136 at byte 54 of the frame), so
// the VIP's data traffic is not copied to user space.
func attachNAFilter(fd int) error {
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 20},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 3, K: protoICMPv6},
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 54},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: icmpv6NA},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
}

// Close releases the manager's sockets. It does not remove the VIP (call
// Release first) and stops Run.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	close(m.done)
	if m.ann != nil {
		m.ann.Stop()
	}
	var errs []error
	if m.recv != nil {
		errs = append(errs, m.recv.Close())
	}
	if m.sendFD >= 0 {
		errs = append(errs, unix.Close(m.sendFD))
	}
	if m.h != nil {
		m.h.Close()
	}
	if m.ns.IsOpen() {
		errs = append(errs, m.ns.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vip: close: %w", err)
	}
	return nil
}

// Owned reports whether this node holds the VIP: Acquire succeeded and
// neither Release nor the expiry of an unrefreshed lifetime followed.
func (m *Manager) Owned() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.owned
}

func (m *Manager) family() int {
	if m.cfg.Address.Is6() {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

func (m *Manager) prefix() netip.Prefix {
	return netip.PrefixFrom(m.cfg.Address, m.cfg.Address.BitLen())
}

// nlAddr is the VIP as added: /32 or /128; IPv6 deprecated and without DAD.
func (m *Manager) nlAddr(ifindex int) *netlink.Addr {
	bits := m.cfg.Address.BitLen()
	lft := m.cfg.lifetimeSeconds()
	a := &netlink.Addr{
		IPNet:     &net.IPNet{IP: net.IP(m.cfg.Address.AsSlice()), Mask: net.CIDRMask(bits, bits)},
		LinkIndex: ifindex, ValidLft: lft, PreferedLft: lft,
	}
	if m.cfg.Address.Is6() {
		a.PreferedLft = 0
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// resolve finds the VIP's interface (ResolveInterface) and binds the packet
// socket to it. Called with mu held.
func (m *Manager) resolve() error {
	link, err := ResolveInterface(m.h, m.cfg.Interface, m.cfg.Address)
	if err != nil {
		return err
	}
	attrs := link.Attrs()
	if len(attrs.HardwareAddr) != 6 {
		return fmt.Errorf("vip: interface %s has no Ethernet address", attrs.Name)
	}
	m.ifindex, m.ifname = attrs.Index, attrs.Name
	m.mac = append(net.HardwareAddr(nil), attrs.HardwareAddr...)
	if m.boundIndex != m.ifindex {
		proto := uint16(etherTypeARP)
		if m.cfg.Address.Is6() {
			proto = etherTypeIPv6
		}
		rc, err := m.recv.SyscallConn()
		if err != nil {
			return fmt.Errorf("vip: bind packet socket to %s: %w", m.ifname, err)
		}
		var berr error
		if err := rc.Control(func(fd uintptr) {
			berr = unix.Bind(int(fd), &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: m.ifindex})
		}); err != nil {
			berr = err
		}
		if berr != nil {
			return fmt.Errorf("vip: bind packet socket to %s: %w", m.ifname, berr)
		}
		m.boundIndex = m.ifindex
	}
	return nil
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// Interface resolves and returns the name of the interface the VIP is (or
// would be) added to and announced on (ResolveInterface). The agent passes
// it to the fence, whose egress chain hooks it.
func (m *Manager) Interface() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", fmt.Errorf("vip: interface for %s: manager closed", m.prefix())
	}
	if err := m.resolve(); err != nil {
		return "", err
	}
	return m.ifname, nil
}

// Acquire adds the VIP and announces it: the first announcement is sent
// before Acquire returns, the repeats of Config.Announce follow in the
// background. Acquiring a held VIP makes sure the address is present and
// does not announce again.
func (m *Manager) Acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vip: acquire %s: %w", m.prefix(), err)
	}
	start := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("vip: acquire %s: manager closed", m.prefix())
	}
	if err := m.resolve(); err != nil {
		return err
	}
	if err := m.h.AddrReplace(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: m.ifindex}}, m.nlAddr(m.ifindex)); err != nil {
		return fmt.Errorf("vip: add %s to %s: %w", m.prefix(), m.ifname, err)
	}
	m.lastRefresh = time.Now()
	if m.owned {
		return nil
	}
	m.owned = true
	m.m.owned.Set(1)
	m.ann.Announce(m.link(), true)
	m.m.acquireDuration.Observe(time.Since(start).Seconds())
	m.log.Info("vip acquired", "interface", m.ifname, "mac", m.mac.String(), "seconds", time.Since(start).Seconds())
	return nil
}

// Release stops the announcements and removes the VIP from every interface
// it is on. It is idempotent and succeeds when the VIP is already gone.
func (m *Manager) Release(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.owned
	m.owned = false
	m.m.owned.Set(0)
	m.ann.Stop()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vip: release %s: %w", m.prefix(), err)
	}
	n, err := m.removeAllLocked()
	if err != nil {
		return err
	}
	if was || n > 0 {
		m.log.Info("vip released", "removed", n)
	}
	return nil
}

// Cleanup removes a VIP left on any interface by a previous run. It is for
// start-up, before this node can hold the role, and does nothing while the
// VIP is held.
func (m *Manager) Cleanup(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vip: cleanup %s: %w", m.prefix(), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.owned {
		return nil
	}
	n, err := m.removeAllLocked()
	if err != nil {
		return err
	}
	if n > 0 {
		m.log.Warn("removed stale vip", "removed", n)
	}
	return nil
}

// removeAllLocked deletes the VIP from every interface and returns how many
// copies it removed.
func (m *Manager) removeAllLocked() (int, error) {
	addrs, err := m.h.AddrList(nil, m.family())
	if err != nil {
		return 0, fmt.Errorf("vip: list addresses: %w", err)
	}
	n := 0
	for _, a := range addrs {
		p, ok := netipPrefix(a.IPNet)
		if !ok || p.Addr() != m.cfg.Address {
			continue
		}
		link := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: a.LinkIndex}}
		if err := m.h.AddrDel(link, &netlink.Addr{IPNet: a.IPNet, LinkIndex: a.LinkIndex}); err != nil {
			if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ESRCH) {
				continue
			}
			return n, fmt.Errorf("vip: delete %s from interface %d: %w", p, a.LinkIndex, err)
		}
		n++
	}
	return n, nil
}

// Refresh extends the held VIP's valid lifetime to Config.ValidLifetime.
// The agent calls it on every validated renewal; it reaches the kernel at
// most every quarter lifetime and does nothing when the VIP is not held.
func (m *Manager) Refresh() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.owned || time.Since(m.lastRefresh) < m.cfg.ValidLifetime/4 {
		return nil
	}
	if err := m.h.AddrReplace(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: m.ifindex}}, m.nlAddr(m.ifindex)); err != nil {
		return fmt.Errorf("vip: refresh %s on %s: %w", m.prefix(), m.ifname, err)
	}
	m.lastRefresh = time.Now()
	m.ann.Refresh(m.link())
	return nil
}

// Reannounce restarts the announcement schedule if the VIP is held: call it
// after a partition heals or the fence re-arms, so clients that kept a stale
// MAC come back.
func (m *Manager) Reannounce() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.owned {
		m.ann.Announce(m.link(), false)
	}
}
