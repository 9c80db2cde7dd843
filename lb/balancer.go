package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by Run when the Balancer was already closed.
var ErrClosed = errors.New("lb: balancer closed")

// Balancer accepts TCP connections on the VIP and proxies each one, bytes
// untouched, to the ready backend with the fewest active connections.
type Balancer struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	ln  *net.TCPListener
	tls *tls.Config // health checks' client config, for backends added later
	// backends is the current list, replaced whole by SetBackends; pick
	// reads it per connection without a lock.
	backends atomic.Pointer[[]*backend]
	rr       atomic.Uint64 // rotates the start of the least-connections scan
	limit    *limiter      // connection caps (limit.go)

	mu      sync.Mutex
	conns   map[*proxyConn]struct{}
	closed  bool
	stop    context.CancelFunc // set by Run
	running bool
	runCtx  context.Context // Run's context, for health loops of backends added later
	done    chan struct{}   // closed by Close

	wg sync.WaitGroup // accept loop, health loops, proxied connections

	// onCheck, if set (tests), is called after every health check.
	onCheck func(backend string, ok, up bool)
}

// backend is the live state of one Backend.
type backend struct {
	cfg     Backend
	checker *checker
	// stopCheck ends this backend's health loop (set under Balancer.mu when
	// the loop starts; SetBackends calls it for a removed backend).
	stopCheck context.CancelFunc
	// up mirrors health.up for pick, which reads it without the lock; it
	// is written only under mu.
	up     atomic.Bool
	active atomic.Int64
	total  atomic.Uint64

	// Metric children, resolved once instead of per connection.
	mUp, mActive          prometheus.Gauge
	mOK, mDialErr         prometheus.Counter
	mToBackend, mToClient prometheus.Counter

	mu     sync.Mutex
	health healthState
	// marks counts mark-downs (a failed connect, MarkDown). A check that
	// was running when one happened started before it and is ignored: a
	// backend comes back only through checks started after its mark-down.
	marks      uint64
	lastCheck  time.Time
	lastChange time.Time
	lastErr    string
}

// BackendStatus is one backend as `masterd status` shows it.
type BackendStatus struct {
	Name    string         `json:"name"`
	Address netip.AddrPort `json:"address"`
	// Up: passes its readiness check and gets new connections.
	Up bool `json:"up"`
	// Active connections now; Total connections proxied since start.
	Active int64  `json:"active"`
	Total  uint64 `json:"total"`
	// LastCheck is when the latest check started (zero before the first);
	// LastChange when Up last changed; LastError the latest check's error
	// ("" if it succeeded).
	LastCheck  time.Time `json:"lastCheck"`
	LastChange time.Time `json:"lastChange"`
	LastError  string    `json:"lastError"`
}

// New validates cfg, registers the lb metrics on reg and binds the listener
// (IP_FREEBIND, so the VIP need not be present). Nothing is accepted and no
// backend is checked until Run. log may be nil (discard).
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Balancer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("lb: invalid config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tc, err := healthTLS(cfg.HealthCheck)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	lb := &Balancer{
		cfg:   cfg,
		log:   log.With("component", "lb"),
		m:     m,
		conns: map[*proxyConn]struct{}{},
		done:  make(chan struct{}),
		limit: newLimiter(cfg.MaxConns, cfg.MaxConnsPerSource),
	}
	lb.tls = tc
	list := make([]*backend, 0, len(cfg.Backends))
	for _, bc := range cfg.Backends {
		list = append(list, lb.newBackend(bc))
	}
	lb.backends.Store(&list)
	m.total.WithLabelValues(noBackend, resultNoBackend)
	lb.ln, err = listenFreebind(context.Background(), cfg.Listen)
	if err != nil {
		return nil, err
	}
	return lb, nil
}

// newBackend is bc's live state, with its metric children.
func (lb *Balancer) newBackend(bc Backend) *backend {
	m := lb.m
	m.initBackend(bc.Name)
	return &backend{
		cfg:        bc,
		checker:    newChecker(bc, lb.cfg.HealthCheck, lb.tls),
		mUp:        m.up.WithLabelValues(bc.Name),
		mActive:    m.active.WithLabelValues(bc.Name),
		mOK:        m.total.WithLabelValues(bc.Name, resultOK),
		mDialErr:   m.total.WithLabelValues(bc.Name, resultDialError),
		mToBackend: m.bytes.WithLabelValues(bc.Name, dirToBackend),
		mToClient:  m.bytes.WithLabelValues(bc.Name, dirToClient),
	}
}

// list is the current backends.
func (lb *Balancer) list() []*backend { return *lb.backends.Load() }

// startCheckLocked starts b's health loop under Run's context; lb.mu held,
// Run active and not closed.
func (lb *Balancer) startCheckLocked(b *backend) {
	ctx, cancel := context.WithCancel(lb.runCtx)
	b.stopCheck = cancel
	lb.wg.Add(1)
	go func() {
		defer lb.wg.Done()
		lb.healthLoop(ctx, b)
	}()
}

// SetBackends replaces the backends (the masters changed: a member added,
// removed or replaced). A backend whose name and address stay keeps its
// state and connections; a new one starts down and comes up through its
// health checks; a removed one gets no new connection, its health checks
// stop, and the connections proxied to it run on until they end.
func (lb *Balancer) SetBackends(bs []Backend) error {
	seen := map[string]bool{}
	for _, bc := range bs {
		if bc.Name == "" || !bc.Address.IsValid() || seen[bc.Name] {
			return fmt.Errorf("lb: backends: %q at %v: want a unique name and a valid address", bc.Name, bc.Address)
		}
		seen[bc.Name] = true
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.closed {
		return ErrClosed
	}
	cur := lb.list()
	next := make([]*backend, 0, len(bs))
	var added, removed []string
	for _, bc := range bs {
		i := slices.IndexFunc(cur, func(b *backend) bool { return b.cfg == bc })
		if i >= 0 {
			next = append(next, cur[i])
			continue
		}
		b := lb.newBackend(bc)
		if lb.running {
			lb.startCheckLocked(b)
		}
		next = append(next, b)
		added = append(added, bc.Name)
	}
	for _, b := range cur {
		if !slices.Contains(next, b) {
			if b.stopCheck != nil {
				b.stopCheck()
			}
			b.up.Store(false)
			b.mUp.Set(0)
			removed = append(removed, b.cfg.Name)
		}
	}
	lb.backends.Store(&next)
	if len(added)+len(removed) > 0 {
		lb.log.Info("backends changed", "added", strings.Join(added, ","), "removed", strings.Join(removed, ","), "backends", len(next))
	}
	return nil
}

// Addr is the bound listen address (useful when Config.Listen had port 0).
func (lb *Balancer) Addr() netip.AddrPort {
	return lb.ln.Addr().(*net.TCPAddr).AddrPort()
}

// Run checks the backends and proxies connections until ctx is cancelled or
// Close is called, then closes the listener and every proxied connection and
// returns once all its goroutines have ended. It returns nil on such a stop,
// ErrClosed if Close came first, and an error if Run is called twice.
func (lb *Balancer) Run(ctx context.Context) error {
	lb.mu.Lock()
	if lb.closed {
		lb.mu.Unlock()
		return ErrClosed
	}
	if lb.running {
		lb.mu.Unlock()
		return errors.New("lb: run called twice")
	}
	lb.running = true
	ctx, cancel := context.WithCancel(ctx)
	lb.stop = cancel
	lb.runCtx = ctx
	// Counted under the lock, so a concurrent Close waits for them.
	for _, b := range lb.list() {
		lb.startCheckLocked(b)
	}
	lb.wg.Add(1)
	n := len(lb.list())
	lb.mu.Unlock()
	defer cancel()

	lb.log.Info("balancer started", "listen", lb.Addr().String(), "backends", n)
	go func() {
		defer lb.wg.Done()
		lb.acceptLoop(ctx)
	}()

	<-ctx.Done()
	lb.shutdown()
	lb.wg.Wait()
	lb.log.Info("balancer stopped")
	return nil
}

// Close stops the balancer: the listener closes, proxied connections are
// closed, health checks stop. It waits for Run to finish its teardown when
// Run is active. Safe to call more than once and concurrently.
func (lb *Balancer) Close() error {
	lb.mu.Lock()
	if lb.closed {
		lb.mu.Unlock()
		<-lb.done
		return nil
	}
	lb.closed = true
	stop := lb.stop
	lb.mu.Unlock()
	if stop != nil {
		stop()
	}
	lb.shutdown()
	lb.wg.Wait()
	close(lb.done)
	return nil
}

// Drain waits, until ctx ends, for a moment with no proxied connection open,
// and returns how many are open when it returns. A graceful stop drains the
// balancer before it hands the VIP over: once the address is gone (and the
// kernel fence drops everything from it), a connection still proxied here
// can neither answer nor be closed visibly, and its client hangs.
func (lb *Balancer) Drain(ctx context.Context) int {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		lb.mu.Lock()
		n := len(lb.conns)
		lb.mu.Unlock()
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
	}
}

// shutdown closes the listener and every proxied connection.
func (lb *Balancer) shutdown() {
	lb.mu.Lock()
	lb.closed = true
	conns := make([]*proxyConn, 0, len(lb.conns))
	for pc := range lb.conns {
		conns = append(conns, pc)
	}
	lb.mu.Unlock()
	_ = lb.ln.Close()
	for _, pc := range conns {
		pc.close()
	}
}

// Status reports every backend, in configuration order.
func (lb *Balancer) Status() []BackendStatus {
	list := lb.list()
	out := make([]BackendStatus, 0, len(list))
	for _, b := range list {
		b.mu.Lock()
		s := BackendStatus{
			Name:       b.cfg.Name,
			Address:    b.cfg.Address,
			Up:         b.up.Load(),
			Active:     b.active.Load(),
			Total:      b.total.Load(),
			LastCheck:  b.lastCheck,
			LastChange: b.lastChange,
			LastError:  b.lastErr,
		}
		b.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// acceptLoop accepts until the listener closes.
func (lb *Balancer) acceptLoop(ctx context.Context) {
	var backoff time.Duration
	for {
		c, err := lb.ln.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: wait a little instead of spinning,
			// as net/http does.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			lb.log.Warn("accept failed", "error", err.Error(), "retry_seconds", backoff.Seconds())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		src := sourceAddr(c)
		if reason := lb.limit.admit(src); reason != "" {
			lb.reject(c, src, reason)
			continue
		}
		lb.wg.Add(1)
		go func() {
			defer lb.wg.Done()
			defer lb.limit.done(src)
			lb.serve(ctx, c)
		}()
	}
}

// pick returns the up backend with the fewest active connections, skipping
// those in tried, and counts the new connection on it. Ties go to the first
// candidate after a start that rotates over the candidates (not over all
// backends: a down backend's turn would always fall to its successor, which
// would then get twice the share of sequential short connections).
func (lb *Balancer) pick(tried []*backend) *backend {
	var cands [8]*backend // masters are few; no allocation per connection
	cs := cands[:0]
	for _, b := range lb.list() {
		if b.up.Load() && !slices.Contains(tried, b) {
			cs = append(cs, b)
		}
	}
	if len(cs) == 0 {
		return nil
	}
	start := int(lb.rr.Add(1) % uint64(len(cs)))
	var best *backend
	var bestActive int64
	for i := range cs {
		b := cs[(start+i)%len(cs)]
		if a := b.active.Load(); best == nil || a < bestActive {
			best, bestActive = b, a
		}
	}
	best.active.Add(1)
	return best
}

// serve connects client c to a backend and proxies until both directions end.
func (lb *Balancer) serve(ctx context.Context, c *net.TCPConn) {
	lb.setKeepAlive(c)
	var tried []*backend
	for {
		b := lb.pick(tried)
		if b == nil {
			lb.m.total.WithLabelValues(noBackend, resultNoBackend).Inc()
			lb.log.Debug("no backend for connection", "client", c.RemoteAddr().String())
			_ = c.Close()
			return
		}
		d := net.Dialer{Timeout: lb.cfg.DialTimeout, KeepAlive: -1}
		bc, err := d.DialContext(ctx, "tcp", b.cfg.Address.String())
		if err != nil {
			b.active.Add(-1)
			b.mDialErr.Inc()
			lb.log.Debug("dial backend failed", "backend", b.cfg.Name, "error", err.Error())
			if ctx.Err() != nil {
				_ = c.Close()
				return
			}
			// A backend that refuses or does not answer a connect is
			// down now (a passive check, haproxy's "observe layer4" with
			// on-error mark-down): a crashed or cut-off master would
			// otherwise get new connections, each waiting DialTimeout
			// first, until Fall checks failed.
			lb.markDown(b, reasonConnect, fmt.Errorf("connect failed: %w", err))
			tried = append(tried, b)
			continue
		}
		b.mOK.Inc()
		b.total.Add(1)
		b.mActive.Inc()
		lb.proxy(c, bc.(*net.TCPConn), b)
		b.mActive.Dec()
		b.active.Add(-1)
		return
	}
}

// setKeepAlive arms dead-peer detection on one leg: keepalive probes for
// idle connections, and TCP_USER_TIMEOUT with the same bound for connections
// with unacknowledged data (where keepalive does not run and the kernel would
// otherwise retransmit for ~15 minutes). A live peer acknowledges both, so
// neither ever cuts a quiet watch.
func (lb *Balancer) setKeepAlive(c *net.TCPConn) {
	_ = c.SetKeepAliveConfig(net.KeepAliveConfig{
		Enable:   true,
		Idle:     lb.cfg.KeepAlive,
		Interval: lb.cfg.KeepAlive,
		Count:    lb.cfg.KeepAliveCount,
	})
	if raw, err := c.SyscallConn(); err == nil {
		ms := int(lb.userTimeout().Milliseconds())
		_ = raw.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
		})
	}
}

// userTimeout is how long sent data may stay unacknowledged before a leg is
// declared dead: the keepalive bound, (KeepAliveCount+1)·KeepAlive.
func (lb *Balancer) userTimeout() time.Duration {
	return time.Duration(lb.cfg.KeepAliveCount+1) * lb.cfg.KeepAlive
}

// proxyConn is one client connection and its backend connection.
type proxyConn struct {
	client, backend *net.TCPConn
	once            sync.Once
}

func (pc *proxyConn) close() {
	pc.once.Do(func() {
		_ = pc.client.Close()
		_ = pc.backend.Close()
	})
}

// abort closes both legs with a RST (SO_LINGER 0), so a peer learns that the
// stream broke rather than seeing what looks like a clean end.
func (pc *proxyConn) abort() {
	pc.once.Do(func() {
		_ = pc.client.SetLinger(0)
		_ = pc.backend.SetLinger(0)
		_ = pc.client.Close()
		_ = pc.backend.Close()
	})
}

// proxy copies both directions until each has ended. A clean EOF on one side
// is passed on as a half-close (FIN) to the other, so protocols that close
// their sending side first keep working; an error on either direction (a
// reset, a keepalive or user timeout) resets both connections at once, so the
// peer sees the failure instead of a hang or a clean-looking end.
func (lb *Balancer) proxy(client, back *net.TCPConn, b *backend) {
	lb.setKeepAlive(back)
	pc := &proxyConn{client: client, backend: back}
	lb.mu.Lock()
	if lb.closed {
		lb.mu.Unlock()
		pc.close()
		return
	}
	lb.conns[pc] = struct{}{}
	lb.mu.Unlock()
	defer func() {
		lb.mu.Lock()
		delete(lb.conns, pc)
		lb.mu.Unlock()
		pc.close()
	}()

	errc := make(chan error, 1)
	go func() { errc <- lb.pipe(back, client, b.mToBackend) }()
	if err := lb.pipe(client, back, b.mToClient); err != nil {
		pc.abort()
	}
	if err := <-errc; err != nil {
		pc.abort()
	}
}

// pipe copies src to dst and half-closes dst at src's EOF. It returns the
// error that ended the copy, nil at a clean EOF. Each round is an io.Copy
// between two *net.TCPConn (through an io.LimitedReader, which Go still
// recognises), so Linux moves the bytes with splice(2) and they never enter
// user space; the limit only bounds how stale the byte counter can get.
func (lb *Balancer) pipe(dst, src *net.TCPConn, counter prometheus.Counter) error {
	lr := &io.LimitedReader{R: src}
	for {
		lr.N = lb.cfg.ChunkSize
		n, err := io.Copy(dst, lr)
		if n > 0 {
			counter.Add(float64(n))
		}
		if err != nil {
			return err
		}
		if lr.N > 0 { // the round ended before the limit: EOF
			if err := dst.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
				return err
			}
			return nil
		}
	}
}
