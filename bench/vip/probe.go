package vip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"sync"
	"time"

	"github.com/masterd/masterd/internal/netnsdo"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// sample is one observation of the sampler: which master namespaces hold the
// VIP (bit i = master i) and which MAC the client's neighbour entry for the
// VIP holds ("" when none or unresolved).
type sample struct {
	at      time.Time
	holders uint8
	mac     string
}

// sampler reads every master namespace's addresses and the client's
// neighbour entry for the VIP at a fixed interval through netlink handles
// opened once.
type sampler struct {
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples []sample
	err     error
}

func startSampler(masterNS []string, clientNS string, vip net.IP, interval time.Duration) (*sampler, error) {
	open := func(name string) (*netlink.Handle, error) {
		ns, err := netns.GetFromName(name)
		if err != nil {
			return nil, fmt.Errorf("netns %s: %w", name, err)
		}
		defer ns.Close()
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			return nil, fmt.Errorf("netlink in %s: %w", name, err)
		}
		return h, nil
	}
	var hs []*netlink.Handle
	closeAll := func() {
		for _, h := range hs {
			h.Close()
		}
	}
	for _, n := range append(append([]string(nil), masterNS...), clientNS) {
		h, err := open(n)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("vip bench: sampler: %w", err)
		}
		hs = append(hs, h)
	}
	client := hs[len(hs)-1]
	link, err := client.LinkByName("eth0")
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("vip bench: sampler: client eth0: %w", err)
	}
	cidx := link.Attrs().Index
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer closeAll()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			var smp sample
			var err error
			begin := time.Now()
			for i, h := range hs[:len(hs)-1] {
				addrs, aerr := h.AddrList(nil, unix.AF_INET)
				if aerr != nil {
					err = aerr
					continue
				}
				for _, a := range addrs {
					if a.IP.Equal(vip) {
						smp.holders |= 1 << i
						break
					}
				}
			}
			neighs, nerr := client.NeighList(cidx, unix.AF_INET)
			if nerr != nil {
				err = nerr
			}
			for _, n := range neighs {
				if n.IP.Equal(vip) && len(n.HardwareAddr) == 6 && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
					smp.mac = n.HardwareAddr.String()
				}
			}
			// The reads happened somewhere between begin and now (under load
			// tens of ms apart): stamp the middle.
			smp.at = begin.Add(time.Since(begin) / 2)
			s.mu.Lock()
			s.samples = append(s.samples, smp)
			if err != nil && s.err == nil {
				s.err = err
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s, nil
}

// snapshot returns the samples so far.
func (s *sampler) snapshot() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.samples...)
}

// halt stops sampling and returns every sample.
func (s *sampler) halt() ([]sample, error) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.err
}

// pinger sends an ICMP echo request to the VIP from the client namespace at a
// fixed cadence, whatever the answers (iputils ping slows down while
// requests go unanswered), and keeps the arrival time of every reply.
type pinger struct {
	fd   int
	id   uint16
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	replies []time.Time
}

func startPinger(clientNS string, vip net.IP, interval time.Duration) (*pinger, error) {
	fd, err := icmpSocketIn(clientNS)
	if err != nil {
		return nil, fmt.Errorf("vip bench: ping: %w", err)
	}
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	p := &pinger{fd: fd, id: uint16(time.Now().UnixNano()>>10) ^ 0x6d62, stop: make(chan struct{}), done: make(chan struct{})}
	recvDone := make(chan struct{})
	go p.receive(recvDone)
	go p.send([4]byte(vip.To4()), interval, recvDone)
	return p, nil
}

// icmpSocketIn opens a raw ICMP socket inside the named network namespace (a
// socket stays in the namespace it was created in).
func icmpSocketIn(name string) (int, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return -1, fmt.Errorf("netns %s: %w", name, err)
	}
	defer ns.Close()
	fd := -1
	err = netnsdo.Do(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("icmp socket in %s: %w", name, err)
	}
	return fd, nil
}

func (p *pinger) send(dst [4]byte, interval time.Duration, recvDone chan struct{}) {
	defer close(p.done)
	defer func() { <-recvDone; unix.Close(p.fd) }()
	t := time.NewTicker(interval)
	defer t.Stop()
	to := &unix.SockaddrInet4{Addr: dst}
	msg := make([]byte, 16)
	for seq := uint16(0); ; seq++ {
		clear(msg)
		msg[0] = 8 // echo request
		binary.BigEndian.PutUint16(msg[4:], p.id)
		binary.BigEndian.PutUint16(msg[6:], seq)
		binary.BigEndian.PutUint64(msg[8:], uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
		// A send error (neighbour unresolved) is an outage, not a failure.
		_ = unix.Sendto(p.fd, msg, 0, to)
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

func (p *pinger) receive(done chan struct{}) {
	defer close(done)
	buf := make([]byte, 1500)
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(p.fd, buf, 0)
		now := time.Now()
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if n < 20 {
			continue
		}
		ihl := int(buf[0]&0x0f) * 4
		if ihl+8 > n {
			continue
		}
		icmp := buf[ihl:n]
		if icmp[0] != 0 || binary.BigEndian.Uint16(icmp[4:]) != p.id {
			continue
		}
		p.mu.Lock()
		p.replies = append(p.replies, now)
		p.mu.Unlock()
	}
}

func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// halt stops pinging and returns the reply times.
func (p *pinger) halt() []time.Time {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.replies...)
}

// longestGap returns the longest time without a reply in [from, to]: between
// from and the first reply after it, between consecutive replies, and from
// the last reply to to.
func longestGap(replies []time.Time, from, to time.Time) time.Duration {
	prev := from
	var best time.Duration
	for _, r := range replies {
		if r.Before(from) {
			continue
		}
		if r.After(to) {
			break
		}
		if d := r.Sub(prev); d > best {
			best = d
		}
		prev = r
	}
	if d := to.Sub(prev); d > best {
		best = d
	}
	return best
}

// recentlyServed reports whether replies arrived without a gap longer than
// maxGap during the last span before now.
func recentlyServed(replies []time.Time, now time.Time, span, maxGap time.Duration) bool {
	return longestGap(replies, now.Add(-span), now) <= maxGap
}

func popcount(b uint8) int { return bits.OnesCount8(b) }

// served reports whether replies arrived without a gap longer than maxGap
// during the last span.
func (p *pinger) served(span, maxGap time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if len(p.replies) == 0 {
		return false
	}
	i := len(p.replies) - 1
	for i > 0 && p.replies[i].After(now.Add(-span)) {
		i--
	}
	return recentlyServed(p.replies[i:], now, span, maxGap)
}
