package lab

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Pinger pings the VIP from the client namespace at a fixed interval (ping
// -i) and records when each reply arrived.
type Pinger struct {
	interval time.Duration
	cmd      *exec.Cmd
	done     chan struct{}

	mu      sync.Mutex
	replies []reply
	started time.Time
	stopped time.Time
}

type reply struct {
	seq int
	at  time.Time
}

var pingLineRE = regexp.MustCompile(`^\[(\d+)\.(\d+)\] \d+ bytes from .*icmp_seq=(\d+)`)

// StartPinger starts pinging the VIP from the client every interval (10 ms in
// the scenarios). Stop it to get the report.
func (l *Lab) StartPinger(interval time.Duration) (*Pinger, error) {
	p := &Pinger{interval: interval, done: make(chan struct{})}
	secs := strconv.FormatFloat(interval.Seconds(), 'f', 3, 64)
	p.cmd = exec.Command("ip", "netns", "exec", l.clientNS, "ping", "-n", "-D", "-W", "1", "-i", secs, l.vip.String())
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start ping: %w", err)
	}
	p.started = time.Now()
	go p.read(out)
	return p, nil
}

func (p *Pinger) read(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := pingLineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		sec, _ := strconv.ParseInt(m[1], 10, 64)
		frac := m[2]
		for len(frac) < 9 {
			frac += "0"
		}
		nsec, _ := strconv.ParseInt(frac[:9], 10, 64)
		seq, _ := strconv.Atoi(m[3])
		p.mu.Lock()
		p.replies = append(p.replies, reply{seq: seq, at: time.Unix(sec, nsec)})
		p.mu.Unlock()
	}
}

// PingReport sums up a Pinger's run.
type PingReport struct {
	Replies int
	// LongestGap is the longest time between two consecutive replies (or
	// from the last reply to Stop), the client-visible outage plus at most
	// one interval.
	LongestGap time.Duration
	// GapStart is when the longest gap began (the reply before it).
	GapStart time.Time
	// Outages lists every gap longer than 5 intervals.
	Outages []time.Duration
}

func (r PingReport) String() string {
	return fmt.Sprintf("%d replies, longest gap %.3fs, %d outages %v", r.Replies, r.LongestGap.Seconds(), len(r.Outages), r.Outages)
}

// Report returns the replies so far (the pinger keeps running).
func (p *Pinger) Report() PingReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	end := p.stopped
	if end.IsZero() {
		end = time.Now()
	}
	r := PingReport{Replies: len(p.replies)}
	prev := p.started
	gap := func(d time.Duration, from time.Time) {
		if d > r.LongestGap {
			r.LongestGap, r.GapStart = d, from
		}
		if d > 5*p.interval {
			r.Outages = append(r.Outages, d.Round(time.Millisecond))
		}
	}
	for _, rp := range p.replies {
		gap(rp.at.Sub(prev), prev)
		prev = rp.at
	}
	gap(end.Sub(prev), prev)
	return r
}

// Stop ends the pinger and returns its report.
func (p *Pinger) Stop() PingReport {
	p.mu.Lock()
	if p.stopped.IsZero() {
		p.stopped = time.Now()
		_ = p.cmd.Process.Signal(syscall.SIGINT)
	}
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	_ = p.cmd.Wait()
	return p.Report()
}

// ResetAt forgets replies before t (measure one fault at a time); the gap
// measurement restarts at t.
func (p *Pinger) ResetAt(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var keep []reply
	for _, r := range p.replies {
		if !r.at.Before(t) {
			keep = append(keep, r)
		}
	}
	p.replies = keep
	p.started = t
}
