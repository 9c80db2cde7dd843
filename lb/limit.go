package lb

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Connection caps. The balancer runs in masterd's own process (the election
// daemon, LimitNOFILE=1048576), so a client that opens connections without
// end must not be able to exhaust its file descriptors and memory: past
// Config.MaxConns client connections in all, or Config.MaxConnsPerSource
// from one source address, a new connection is reset at once (SO_LINGER 0,
// before any goroutine, dial or buffer is spent on it). Each refusal counts
// in masterd_lb_connections_rejected_total{reason}; the log gets at most one
// line per reason every limitLogEvery, with how many it left out, so a flood
// cannot flood the journal either.

// Rejection reasons, the "reason" label of masterd_lb_connections_rejected_total.
const (
	rejectGlobal = "global"     // MaxConns reached
	rejectSource = "per_source" // MaxConnsPerSource reached for this address
)

// limitLogEvery is the least time between two log lines of one reason.
const limitLogEvery = 10 * time.Second

// limiter counts the open client connections, in all and per source
// address. Its map holds only addresses with an open connection, so its
// size is bounded by MaxConns.
type limiter struct {
	max, perSource int

	mu       sync.Mutex
	total    int
	bySource map[netip.Addr]int
	logs     map[string]*logLimit
}

type logLimit struct {
	last       time.Time
	suppressed int
}

func newLimiter(max, perSource int) *limiter {
	return &limiter{max: max, perSource: perSource, bySource: map[netip.Addr]int{},
		logs: map[string]*logLimit{rejectGlobal: {}, rejectSource: {}}}
}

// admit counts a new connection from src and returns "" or, when a cap is
// reached, the reason it is refused (and counts nothing).
func (l *limiter) admit(src netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.max > 0 && l.total >= l.max:
		return rejectGlobal
	case l.perSource > 0 && l.bySource[src] >= l.perSource:
		return rejectSource
	}
	l.total++
	l.bySource[src]++
	return ""
}

// done uncounts a connection admit let in.
func (l *limiter) done(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if n := l.bySource[src] - 1; n > 0 {
		l.bySource[src] = n
	} else {
		delete(l.bySource, src)
	}
}

// open is how many connections are counted, in all and from src.
func (l *limiter) open(src netip.Addr) (total, fromSrc int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.bySource[src]
}

// logAllowed reports whether a refusal for reason may be logged at now, and
// how many refusals were left out of the log since the last line.
func (l *limiter) logAllowed(reason string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ll := l.logs[reason]
	if !ll.last.IsZero() && now.Sub(ll.last) < limitLogEvery {
		ll.suppressed++
		return false, 0
	}
	n := ll.suppressed
	ll.last, ll.suppressed = now, 0
	return true, n
}

// sourceAddr is the client's address without port (IPv4-mapped unmapped).
func sourceAddr(c *net.TCPConn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// reject resets c, refused for reason, counts it and logs it within the
// log limit.
func (lb *Balancer) reject(c *net.TCPConn, src netip.Addr, reason string) {
	_ = c.SetLinger(0)
	_ = c.Close()
	lb.m.rejected.WithLabelValues(reason).Inc()
	if ok, left := lb.limit.logAllowed(reason, time.Now()); ok {
		total, fromSrc := lb.limit.open(src)
		max, perSource := lb.limit.caps()
		lb.log.Warn("connection refused: balancer connection cap reached", slog.String("reason", reason),
			slog.String("source", src.String()), slog.Int("open", total), slog.Int("open_from_source", fromSrc),
			slog.Int("max", max), slog.Int("max_per_source", perSource),
			slog.Int("not_logged_since_last", left))
	}
}

// caps returns the caps in force.
func (l *limiter) caps() (max, perSource int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.max, l.perSource
}

// SetLimits changes the connection caps of a running balancer (a reload):
// new connections are judged by them at once; connections already open stay
// open even when they are now over a lowered cap. 0 means no cap.
func (lb *Balancer) SetLimits(maxConns, maxConnsPerSource int) error {
	if maxConns < 0 || maxConnsPerSource < 0 {
		return fmt.Errorf("lb: connection caps %d and %d per source: must be 0 (no cap) or positive", maxConns, maxConnsPerSource)
	}
	lb.limit.mu.Lock()
	lb.limit.max, lb.limit.perSource = maxConns, maxConnsPerSource
	lb.limit.mu.Unlock()
	lb.log.Info("connection caps changed", slog.Int("max", maxConns), slog.Int("max_per_source", maxConnsPerSource))
	return nil
}
