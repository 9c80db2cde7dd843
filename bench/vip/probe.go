package vip

import (
	"bufio"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

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
			smp.at = time.Now()
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

// pinger pings the VIP from the client namespace (ping -D) and keeps the
// arrival time of every reply.
type pinger struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu      sync.Mutex
	replies []time.Time
}

var pingRE = regexp.MustCompile(`^\[(\d+)\.(\d+)\] \d+ bytes from `)

func startPinger(clientNS, vip string, interval time.Duration) (*pinger, error) {
	p := &pinger{done: make(chan struct{})}
	p.cmd = exec.Command("ip", "netns", "exec", clientNS, "ping", "-n", "-D", "-W", "1",
		"-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64), vip)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("vip bench: ping: %w", err)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("vip bench: ping: %w", err)
	}
	go p.read(out)
	return p, nil
}

func (p *pinger) read(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := pingRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		sec, _ := strconv.ParseInt(m[1], 10, 64)
		frac := m[2]
		for len(frac) < 9 {
			frac += "0"
		}
		nsec, _ := strconv.ParseInt(frac[:9], 10, 64)
		p.mu.Lock()
		p.replies = append(p.replies, time.Unix(sec, nsec))
		p.mu.Unlock()
	}
}

// halt stops ping and returns the reply times.
func (p *pinger) halt() []time.Time {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	_ = p.cmd.Wait()
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
