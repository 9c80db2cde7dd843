package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Pinger sends an ICMP echo request to the VIP from the client namespace at a
// fixed cadence (whatever the answers) and records when replies arrive.
type Pinger struct {
	interval time.Duration
	fd       int
	id       uint16
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	replies []time.Time
	sent    int
	started time.Time
	stopped time.Time
	err     error
}

// StartPinger starts pinging the VIP from the client every interval (10 ms in
// the scenarios). Stop it to get the report.
func (l *Lab) StartPinger(interval time.Duration) (*Pinger, error) {
	ns, err := netns.GetFromName(l.clientNS)
	if err != nil {
		return nil, fmt.Errorf("lab: netns %s: %w", l.clientNS, err)
	}
	defer ns.Close()
	fd, err := socketIn(ns, unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP, nil)
	if err != nil {
		return nil, fmt.Errorf("lab: icmp socket in %s: %w", l.clientNS, err)
	}
	p := &Pinger{interval: interval, fd: fd, id: uint16(os.Getpid()) ^ uint16(time.Now().UnixNano()),
		stop: make(chan struct{}), done: make(chan struct{}), started: time.Now()}
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	recvDone := make(chan struct{})
	go p.receive(recvDone)
	go p.send(l.vip.As4(), recvDone)
	return p, nil
}

func (p *Pinger) send(dst [4]byte, recvDone chan struct{}) {
	defer close(p.done)
	defer func() { <-recvDone; unix.Close(p.fd) }()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	to := &unix.SockaddrInet4{Addr: dst}
	msg := make([]byte, 16)
	for seq := uint16(0); ; seq++ {
		msg[0], msg[1] = 8, 0 // echo request
		binary.BigEndian.PutUint16(msg[2:], 0)
		binary.BigEndian.PutUint16(msg[4:], p.id)
		binary.BigEndian.PutUint16(msg[6:], seq)
		binary.BigEndian.PutUint64(msg[8:], uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint16(msg[2:], checksum(msg))
		// Errors (no route while the neighbour is unresolved) are outages,
		// not failures of the pinger.
		_ = unix.Sendto(p.fd, msg, 0, to)
		p.mu.Lock()
		p.sent++
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

func (p *Pinger) receive(done chan struct{}) {
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
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			return
		}
		if n < 20 {
			continue
		}
		ihl := int(buf[0]&0x0f) * 4
		icmp := buf[ihl:n]
		if len(icmp) < 8 || icmp[0] != 0 || binary.BigEndian.Uint16(icmp[4:]) != p.id {
			continue
		}
		p.mu.Lock()
		p.replies = append(p.replies, now)
		p.mu.Unlock()
	}
}

func checksum(b []byte) uint16 {
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

// PingReport sums up a Pinger's run.
type PingReport struct {
	Sent    int
	Replies int
	// LongestGap is the longest time without a reply: between two
	// consecutive replies, or from the start to the first or from the last
	// to Stop. Requests go out every interval regardless, so it is the
	// client-visible outage plus at most one interval.
	LongestGap time.Duration
	// GapStart is when the longest gap began.
	GapStart time.Time
	// Outages lists every gap longer than 5 intervals.
	Outages []time.Duration
	Err     error
}

func (r PingReport) String() string {
	return fmt.Sprintf("%d sent, %d replies, longest gap %.3fs, %d outages %v", r.Sent, r.Replies, r.LongestGap.Seconds(), len(r.Outages), r.Outages)
}

// Report returns the replies so far (the pinger keeps running).
func (p *Pinger) Report() PingReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	end := p.stopped
	if end.IsZero() {
		end = time.Now()
	}
	r := PingReport{Sent: p.sent, Replies: len(p.replies), Err: p.err}
	prev := p.started
	gap := func(d time.Duration, from time.Time) {
		if d > r.LongestGap {
			r.LongestGap, r.GapStart = d, from
		}
		if d > 5*p.interval {
			r.Outages = append(r.Outages, d.Round(time.Millisecond))
		}
	}
	for _, at := range p.replies {
		gap(at.Sub(prev), prev)
		prev = at
	}
	gap(end.Sub(prev), prev)
	return r
}

// Stop ends the pinger and returns its report.
func (p *Pinger) Stop() PingReport {
	p.mu.Lock()
	first := p.stopped.IsZero()
	if first {
		p.stopped = time.Now()
	}
	p.mu.Unlock()
	if first {
		close(p.stop)
	}
	<-p.done
	return p.Report()
}

// ResetAt forgets replies before t (to measure one fault at a time); the gap
// measurement restarts at t.
func (p *Pinger) ResetAt(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var keep []time.Time
	for _, at := range p.replies {
		if !at.Before(t) {
			keep = append(keep, at)
		}
	}
	p.replies = keep
	p.started = t
}
