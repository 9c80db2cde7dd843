package lab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/masterd/masterd/internal/netnsdo"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ARPHolders asks, from the client namespace, who has the VIP (one broadcast
// ARP request) and returns the distinct MACs that answered within wait: the
// holders as the wire sees them (a dead holder's kernel still answers).
func (l *Lab) ARPHolders(wait time.Duration) ([]string, error) {
	fd, ifindex, mac, src, err := l.clientPacketSocket()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return l.arpProbe(fd, ifindex, mac, src, wait)
}

// ARPMonitor asks who has the VIP from the client over and over and counts
// the rounds in which two or more MACs answered.
type ARPMonitor struct {
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	rounds int
	dual   int
	none   int
	err    error
}

// MonitorARP starts asking who has the VIP every interval, collecting the
// answers of each request for window (a few ms suffice on the lab bridge).
func (l *Lab) MonitorARP(interval, window time.Duration) (*ARPMonitor, error) {
	fd, ifindex, mac, src, err := l.clientPacketSocket()
	if err != nil {
		return nil, err
	}
	am := &ARPMonitor{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(am.done)
		defer unix.Close(fd)
		for {
			got, err := l.arpProbe(fd, ifindex, mac, src, window)
			am.mu.Lock()
			if err != nil {
				am.err = err
			} else {
				am.rounds++
				switch len(got) {
				case 0:
					am.none++
				case 1:
				default:
					am.dual++
				}
			}
			am.mu.Unlock()
			select {
			case <-am.stop:
				return
			case <-time.After(interval - window):
			}
		}
	}()
	return am, nil
}

// Stop ends the monitor and returns the number of rounds, of rounds with two
// or more answering MACs and of rounds without an answer.
func (am *ARPMonitor) Stop() (rounds, dual, none int, err error) {
	close(am.stop)
	<-am.done
	am.mu.Lock()
	defer am.mu.Unlock()
	return am.rounds, am.dual, am.none, am.err
}

// arpProbe sends one who-has for the VIP on fd and collects the answers.
func (l *Lab) arpProbe(fd, ifindex int, mac net.HardwareAddr, src []byte, wait time.Duration) ([]string, error) {
	vip := l.vip.As4()
	// Ethernet + ARP request: who has VIP, tell the client.
	frame := make([]byte, 42)
	copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:12], mac)
	binary.BigEndian.PutUint16(frame[12:14], unix.ETH_P_ARP)
	binary.BigEndian.PutUint16(frame[14:16], 1)      // ethernet
	binary.BigEndian.PutUint16(frame[16:18], 0x0800) // IPv4
	frame[18], frame[19] = 6, 4
	binary.BigEndian.PutUint16(frame[20:22], 1) // request
	copy(frame[22:28], mac)
	copy(frame[28:32], src)
	copy(frame[38:42], vip[:])
	to := &unix.SockaddrLinklayer{Ifindex: ifindex, Protocol: htons(unix.ETH_P_ARP), Halen: 6}
	copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(fd, frame, 0, to); err != nil {
		return nil, fmt.Errorf("lab: send arp request: %w", err)
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(wait)
	buf := make([]byte, 1500)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, fmt.Errorf("lab: read arp: %w", err)
		}
		p := buf[:n]
		if len(p) < 42 || binary.BigEndian.Uint16(p[12:14]) != unix.ETH_P_ARP || binary.BigEndian.Uint16(p[20:22]) != 2 {
			continue
		}
		// Only answers to this request: the sender is the VIP and the
		// target is the client. A new holder's gratuitous ARP (a broadcast
		// reply, target the VIP itself) arriving within the wait after the
		// old holder answered would otherwise count as a second holder.
		if [4]byte(p[28:32]) == vip && bytes.Equal(p[32:38], mac) && bytes.Equal(p[38:42], src) {
			seen[net.HardwareAddr(p[22:28]).String()] = true
		}
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out, nil
}

// MACs returns each master's eth0 MAC by master name.
func (l *Lab) MACs() (map[string]string, error) {
	out := map[string]string{}
	for _, m := range l.masters {
		ns, err := netns.GetFromName(m.Name)
		if err != nil {
			return nil, err
		}
		h, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			return nil, err
		}
		link, err := h.LinkByName("eth0")
		h.Close()
		if err != nil {
			return nil, err
		}
		out[m.Name] = link.Attrs().HardwareAddr.String()
	}
	return out, nil
}

// clientPacketSocket opens an AF_PACKET socket for ARP inside the client's
// namespace (a socket stays in the namespace it was created in).
func (l *Lab) clientPacketSocket() (fd, ifindex int, mac net.HardwareAddr, src []byte, err error) {
	ns, err := netns.GetFromName(l.clientNS)
	if err != nil {
		return -1, 0, nil, nil, fmt.Errorf("lab: netns %s: %w", l.clientNS, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return -1, 0, nil, nil, err
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		return -1, 0, nil, nil, err
	}
	addrs, err := h.AddrList(link, unix.AF_INET)
	if err != nil || len(addrs) == 0 {
		return -1, 0, nil, nil, fmt.Errorf("lab: client address: %v", err)
	}
	src = addrs[0].IP.To4()

	fd, err = socketIn(ns, unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)), func(fd int) error {
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: link.Attrs().Index, Protocol: htons(unix.ETH_P_ARP)})
	})
	if err != nil {
		return -1, 0, nil, nil, fmt.Errorf("lab: packet socket in %s: %w", l.clientNS, err)
	}
	return fd, link.Attrs().Index, link.Attrs().HardwareAddr, src, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// socketIn opens a socket inside the network namespace ns (a socket stays in
// the namespace it was created in) and runs setup on it there.
func socketIn(ns netns.NsHandle, domain, typ, proto int, setup func(fd int) error) (int, error) {
	fd := -1
	err := netnsdo.Do(ns, func() error {
		var err error
		fd, err = unix.Socket(domain, typ, proto)
		if err == nil && setup != nil {
			err = setup(fd)
		}
		if err != nil && fd >= 0 {
			unix.Close(fd)
			fd = -1
		}
		return err
	})
	return fd, err
}
