package vip

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Link is the interface the VIP is held on.
type Link struct {
	Index int
	Name  string
	MAC   net.HardwareAddr
}

// Announcer tells the network that this host holds the VIP: gratuitous ARP
// and unsolicited neighbour advertisements (the Manager's default,
// NewNeighbourAnnouncer), or a route advertisement for another VIP mode.
//
// The Manager calls it serially, with its own lock held, so no method may
// block for long or call back into the Manager:
//   - Announce when the VIP was added (Acquire, or put back after an
//     external removal; first is true: the first round must be out before it
//     returns) and on Reannounce (first is false). It replaces a running
//     schedule.
//   - Refresh each time a validated renewal extended the held address's
//     lifetime in the kernel.
//   - Stop when the VIP is let go (Release, lifetime run out, Close). It is
//     idempotent; after it returns no announcement of the stopped schedule
//     may start.
type Announcer interface {
	Announce(link Link, first bool)
	Refresh(link Link)
	Stop()
}

// neighbourAnnouncer announces the VIP by gratuitous ARP (IPv4) or
// unsolicited neighbour advertisements (IPv6) at the offsets of a schedule.
type neighbourAnnouncer struct {
	addr     netip.Addr
	schedule []time.Duration
	send     func(ifindex int, frame []byte) error
	log      *slog.Logger
	sent     prometheus.Counter

	mu   sync.Mutex
	stop context.CancelFunc // of the running schedule
}

var _ Announcer = (*neighbourAnnouncer)(nil)

// NewNeighbourAnnouncer returns the Announcer that sends gratuitous ARP or
// unsolicited NAs for addr at each offset of schedule (Config.Announce),
// through send, which writes a whole Ethernet frame on an interface. sent,
// if not nil, counts the frames sent; logger may be nil.
func NewNeighbourAnnouncer(addr netip.Addr, schedule []time.Duration, send func(ifindex int, frame []byte) error, logger *slog.Logger, sent prometheus.Counter) Announcer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &neighbourAnnouncer{addr: addr, schedule: append([]time.Duration(nil), schedule...), send: send, log: logger, sent: sent}
}

// Announce cancels a running schedule and starts the schedule anew. With
// first the offsets equal to zero are sent before it returns (Acquire's
// first announcement); the rest run in a goroutine that stops on Stop or
// the next Announce.
func (a *neighbourAnnouncer) Announce(link Link, first bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stop != nil {
		a.stop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	mac := append(net.HardwareAddr(nil), link.MAC...)
	offsets := a.schedule
	if first {
		for len(offsets) > 0 && offsets[0] == 0 {
			a.round(link.Index, mac)
			offsets = offsets[1:]
		}
	}
	if len(offsets) == 0 {
		return
	}
	start := time.Now()
	go func() {
		t := time.NewTimer(0)
		defer t.Stop()
		<-t.C
		for _, off := range offsets {
			t.Reset(time.Until(start.Add(off)))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			a.mu.Lock()
			stale := ctx.Err() != nil
			a.mu.Unlock()
			if stale {
				return
			}
			a.round(link.Index, mac)
		}
	}()
}

// Refresh does nothing: neighbours keep their entry until it goes stale,
// and the schedule already covered their lock times.
func (a *neighbourAnnouncer) Refresh(Link) {}

// Stop cancels the running schedule.
func (a *neighbourAnnouncer) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stop != nil {
		a.stop()
		a.stop = nil
	}
}

// round sends one round: gratuitous ARP request and reply, or one
// unsolicited neighbour advertisement. Send errors are logged, not
// returned: the address is in place and the next round retries.
func (a *neighbourAnnouncer) round(ifindex int, mac net.HardwareAddr) {
	var frames [][]byte
	if a.addr.Is4() {
		frames = garpFrames(mac, a.addr)
	} else {
		frames = [][]byte{naFrame(mac, a.addr)}
	}
	for _, f := range frames {
		if err := a.send(ifindex, f); err != nil {
			a.log.Warn("send announcement failed", "ifindex", ifindex, "err", err)
			continue
		}
		if a.sent != nil {
			a.sent.Inc()
		}
	}
}

// link is the interface the VIP is held on. Called with mu held.
func (m *Manager) link() Link { return Link{Index: m.ifindex, Name: m.ifname, MAC: m.mac} }

// sendFrame writes a complete Ethernet frame on interface ifindex.
func (m *Manager) sendFrame(ifindex int, frame []byte) error {
	sa := &unix.SockaddrLinklayer{
		Protocol: htons(uint16(frame[12])<<8 | uint16(frame[13])),
		Ifindex:  ifindex,
		Halen:    6,
	}
	copy(sa.Addr[:], frame[0:6])
	return unix.Sendto(m.sendFD, frame, 0, sa)
}
