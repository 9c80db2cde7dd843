package lb

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	switch os.Getenv("LB_TEST_HELPER") {
	case "backend":
		os.Exit(helperBackend())
	case "freebind":
		os.Exit(helperFreebind())
	case "deadpeer":
		os.Exit(helperDeadPeer())
	}
	os.Exit(m.Run())
}

// helperBackend runs a testBackend in a child process, so a test can kill it
// with SIGKILL like a crashing apiserver.
func helperBackend() int {
	dir := os.Getenv("LB_TEST_DIR")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", os.Getenv("LB_TEST_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%s\n", ln.Addr())
	b := newBackend(os.Getenv("LB_TEST_NAME"), ln, cert)
	b.wg.Wait()
	return 0
}

func TestSpreadsConnectionsEvenlyOverReadyBackends(t *testing.T) {
	bs := []*testBackend{
		startBackend(t, "m1", "127.0.0.11:0"),
		startBackend(t, "m2", "127.0.0.12:0"),
		startBackend(t, "m3", "127.0.0.13:0"),
	}
	lb, _ := startBalancer(t, testConfig(t, "127.0.0.10:0", bs...), nil)
	waitAllUp(t, lb)

	// Held connections, TLS end to end through the balancer: least
	// connections puts exactly a third on each backend.
	pki := getPKI(t)
	count := map[string]int{}
	var held []net.Conn
	for range 30 {
		c, err := tls.Dial("tcp", lb.Addr().String(), &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.10"})
		if err != nil {
			t.Fatalf("tls dial through balancer: %v", err)
		}
		held = append(held, c)
		if _, err := io.WriteString(c, "WHO\n"); err != nil {
			t.Fatal(err)
		}
		name, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		count[strings.TrimSpace(name)]++
	}
	for _, b := range bs {
		if count[b.name] != 10 {
			t.Errorf("held connections: %s got %d of 30, want 10 (all: %v; status %+v)", b.name, count[b.name], count, lb.Status())
		}
	}
	for _, c := range held {
		_ = c.Close()
	}
	waitIdle(t, lb)

	// Short sequential connections: ties rotate, so they spread evenly too.
	clear(count)
	for range 30 {
		name, c, _ := who(t, lb.Addr())
		count[name]++
		_ = c.Close()
		waitIdle(t, lb)
	}
	for _, b := range bs {
		if count[b.name] != 10 {
			t.Errorf("sequential connections: %s got %d of 30, want 10 (all: %v)", b.name, count[b.name], count)
		}
	}
}

func waitIdle(t testing.TB, lb *Balancer) {
	t.Helper()
	waitFor(t, "no active connections", func() bool {
		for _, s := range lb.Status() {
			if s.Active != 0 {
				return false
			}
		}
		return true
	})
}

// checkLog records health check results per backend.
type checkLog struct {
	mu     sync.Mutex
	events map[string][]checkEvent
}

type checkEvent struct{ ok, up bool }

func (l *checkLog) hook(name string, ok, up bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.events == nil {
		l.events = map[string][]checkEvent{}
	}
	l.events[name] = append(l.events[name], checkEvent{ok, up})
}

func (l *checkLog) since(name string, from int) []checkEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]checkEvent(nil), l.events[name][from:]...)
}

func (l *checkLog) len(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events[name])
}

func TestUnreadyBackendGetsNoNewConnectionsAfterFallChecks(t *testing.T) {
	bs := []*testBackend{
		startBackend(t, "m1", "127.0.0.11:0"),
		startBackend(t, "m2", "127.0.0.12:0"),
		startBackend(t, "m3", "127.0.0.13:0"),
	}
	cfg := testConfig(t, "127.0.0.10:0", bs...)
	cfg.HealthCheck.Fall, cfg.HealthCheck.Rise = 3, 2
	var log checkLog
	lb, _ := startBalancer(t, cfg, log.hook)
	waitAllUp(t, lb)

	// One held connection per backend.
	held := map[string]*bufio.Reader{}
	heldConn := map[string]net.Conn{}
	for range 3 {
		name, c, r := who(t, lb.Addr())
		held[name], heldConn[name] = r, c
		t.Cleanup(func() { _ = c.Close() })
	}
	if len(held) != 3 {
		t.Fatalf("three connections reached %d backends, want 3", len(held))
	}

	bs[1].ready.Store(false)
	waitFor(t, "m2 down", func() bool { return !lb.Status()[1].Up })
	if got := value(t, lb.m.up.WithLabelValues("m2")); got != 0 {
		t.Errorf("masterd_lb_backend_up{backend=m2} = %v after going down, want 0", got)
	}
	checkAgainstReference(t, log.since("m2", 0), cfg.HealthCheck.Rise, cfg.HealthCheck.Fall)

	// New connections avoid m2 although it has the fewest connections...
	for range 20 {
		name, c, _ := who(t, lb.Addr())
		t.Cleanup(func() { _ = c.Close() })
		if name == "m2" {
			t.Fatal("a new connection reached m2 after it went down")
		}
	}
	// ...while its existing connection keeps working.
	echo(t, heldConn["m2"], held["m2"], "still served")

	// Back to ready: up again after Rise successes, and as the
	// least loaded backend it takes the next connection.
	bs[1].ready.Store(true)
	waitFor(t, "m2 up", func() bool { return lb.Status()[1].Up })
	checkAgainstReference(t, log.since("m2", 0), cfg.HealthCheck.Rise, cfg.HealthCheck.Fall)
	if name, c, _ := who(t, lb.Addr()); name != "m2" {
		t.Errorf("least loaded backend m2 is up again but the next connection went to %s", name)
	} else {
		_ = c.Close()
	}
}

// checkAgainstReference replays a backend's check results through a naive
// model and compares the up state after every check: the first result
// decides; later, an up backend is down once its last fall results all
// failed, and a down backend up once its last rise results all succeeded.
// Besides the rise/fall rule this pins "stops getting new connections within
// Fall checks": the check that completes the Fall-th failure marks it down.
func checkAgainstReference(t *testing.T, events []checkEvent, rise, fall int) {
	t.Helper()
	all := func(es []checkEvent, ok bool) bool {
		for _, e := range es {
			if e.ok != ok {
				return false
			}
		}
		return true
	}
	up := false
	for i, e := range events {
		switch {
		case i == 0:
			up = e.ok
		case up && i+1 >= fall && all(events[i+1-fall:i+1], false):
			up = false
		case !up && i+1 >= rise && all(events[i+1-rise:i+1], true):
			up = true
		}
		if e.up != up {
			t.Fatalf("check %d of %v: up=%v, reference says %v (rise %d, fall %d)", i, events, e.up, up, rise, fall)
		}
	}
}

func TestBackendKilledMidStreamGivesClientAnErrorNotAHang(t *testing.T) {
	dir := t.TempDir()
	if err := getPKI(t).writeFiles(dir); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "LB_TEST_HELPER=backend", "LB_TEST_DIR="+dir,
		"LB_TEST_ADDR=127.0.0.21:0", "LB_TEST_NAME=doomed")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start backend process: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("backend process address: %v", err)
	}
	addr := netip.MustParseAddrPort(strings.TrimSpace(line))

	cfg := testConfig(t, "127.0.0.20:0")
	cfg.Backends = []Backend{{Name: "doomed", Address: addr}}
	lb, _ := startBalancer(t, cfg, nil)
	waitAllUp(t, lb)

	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(lb.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The deadline only turns a hang into a test failure.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "STREAM\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if name, err := r.ReadString('\n'); err != nil || name != "doomed\n" {
		t.Fatalf("stream start: %q, %v", name, err)
	}
	if _, err := io.ReadFull(r, make([]byte, 64<<10)); err != nil {
		t.Fatalf("stream data: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, r)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("client hung after the backend was killed: %v", err)
	case err != nil && !errors.Is(err, syscall.ECONNRESET):
		t.Fatalf("client got %v, want EOF or connection reset", err)
	}
	// The client closes; the balancer lets go of both sides.
	_ = c.Close()
	waitIdle(t, lb)
}

func TestIdleConnectionIsNotCutByKeepaliveOrChecks(t *testing.T) {
	b := startBackend(t, "m1", "127.0.0.31:0")
	cfg := testConfig(t, "127.0.0.30:0", b)
	// Shortened clock: keepalive probes every second (the kernel's
	// granularity) and a single unanswered probe, or 2 s of unacknowledged
	// data, would end the connection. An idle period of 3.5 s (three
	// probes) and ~35 health checks stands in for a watch that is silent
	// for many minutes behind the default 10 s keepalive.
	cfg.KeepAlive, cfg.KeepAliveCount = time.Second, 1
	cfg.HealthCheck.Interval, cfg.HealthCheck.Timeout = 100*time.Millisecond, 100*time.Millisecond
	var log checkLog
	lb, _ := startBalancer(t, cfg, log.hook)
	waitAllUp(t, lb)

	name, c, r := who(t, lb.Addr())
	defer c.Close()
	if name != "m1" {
		t.Fatalf("reached %q", name)
	}
	echo(t, c, r, "before idle")
	checkDeadPeerOptions(t, lb, time.Second, 1)
	checks := log.len("m1")
	time.Sleep(3500 * time.Millisecond)
	if n := log.len("m1") - checks; n < 10 {
		t.Fatalf("only %d health checks ran during the idle period; the test needs many", n)
	}
	echo(t, c, r, "after idle")
	if s := lb.Status()[0]; s.Active != 1 || s.Total != 1 {
		t.Fatalf("status after idle: active=%d total=%d, want the same single connection", s.Active, s.Total)
	}
}

func TestHalfClosePropagatesBothWays(t *testing.T) {
	b := startBackend(t, "m1", "127.0.0.41:0")
	lb, reg := startBalancer(t, testConfig(t, "127.0.0.40:0", b), nil)
	waitAllUp(t, lb)

	t.Run("client closes its side first", func(t *testing.T) {
		c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(lb.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		payload := strings.Repeat("p", 1<<20)
		if _, err := io.WriteString(c, "SINK\n"+payload); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		// The backend answers only after it has seen our FIN.
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("read answer after half-close: %v", err)
		}
		if want := fmt.Sprintf("n=%d\n", len(payload)); string(got) != want {
			t.Fatalf("backend answered %q, want %q", got, want)
		}
	})
	t.Run("backend closes its side first", func(t *testing.T) {
		c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(lb.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, "REVERSE\n"); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c) // ends at the backend's FIN
		if err != nil || string(got) != "bye\n" {
			t.Fatalf("read until backend half-close: %q, %v", got, err)
		}
		// Our direction still flows after the backend's FIN.
		if _, err := io.WriteString(c, "late data"); err != nil {
			t.Fatalf("write after backend half-close: %v", err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "backend to receive the late data", func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			return string(b.reversed) == "late data"
		})
	})
	waitIdle(t, lb)
	up := value(t, lb.m.bytes.WithLabelValues("m1", dirToBackend))
	if want := float64(len("SINK\n") + 1<<20 + len("REVERSE\n") + len("late data")); up != want {
		t.Errorf("bytes to backend = %v, want %v", up, want)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "masterd_lb_bytes_total" && len(mf.GetMetric()) != 2 {
			t.Errorf("masterd_lb_bytes_total has %d series, want 2", len(mf.GetMetric()))
		}
	}
}

func TestManyConcurrentConnectionsLeakNoFilesOrGoroutines(t *testing.T) {
	bs := []*testBackend{
		startBackend(t, "m1", "127.0.0.51:0"),
		startBackend(t, "m2", "127.0.0.52:0"),
		startBackend(t, "m3", "127.0.0.53:0"),
	}
	baseG, baseFD := runtime.NumGoroutine(), countFDs(t)

	cfg := testConfig(t, "127.0.0.50:0", bs...)
	reg := newRegistry()
	lb, err := New(cfg, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- lb.Run(ctxTimeout(t)) }()
	waitAllUp(t, lb)

	const n = 300
	var wg sync.WaitGroup
	conns := make(chan net.Conn, n)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", lb.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			conns <- c
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			r := bufio.NewReader(c)
			line := fmt.Sprintf("hello %d\n", i)
			if _, err := io.WriteString(c, "WHO\n"+line); err != nil {
				errs <- err
				return
			}
			if _, err := r.ReadString('\n'); err != nil {
				errs <- fmt.Errorf("name: %w", err)
				return
			}
			if got, err := r.ReadString('\n'); err != nil || got != line {
				errs <- fmt.Errorf("echo: %q, %v", got, err)
			}
		}()
	}
	wg.Wait()
	close(conns)
	close(errs)
	for err := range errs {
		t.Fatalf("client: %v", err)
	}
	var active int64
	for _, s := range lb.Status() {
		active += s.Active
	}
	if active != n {
		t.Fatalf("%d active connections with %d clients connected", active, n)
	}
	for c := range conns {
		_ = c.Close()
	}
	waitIdle(t, lb)
	waitFor(t, "balancer to forget its connections", func() bool {
		lb.mu.Lock()
		defer lb.mu.Unlock()
		return len(lb.conns) == 0
	})

	if err := lb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Everything the balancer and the clients opened is gone. Backend
	// goroutines end once they see the clients' FIN, so poll.
	var g, fds int
	waitFor(t, "goroutines and files back to baseline", func() bool {
		g, fds = runtime.NumGoroutine(), countFDs(t)
		return g <= baseG && fds <= baseFD
	})
	t.Logf("goroutines %d (baseline %d), fds %d (baseline %d)", g, baseG, fds, baseFD)
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestDialFailureIsRetriedOnAnotherBackend(t *testing.T) {
	m1 := startBackend(t, "m1", "127.0.0.61:0")
	m2 := startBackend(t, "m2", "127.0.0.62:0")
	cfg := testConfig(t, "127.0.0.60:0", m1, m2)
	// Checks so rare that only the passive check can take m1 down.
	cfg.HealthCheck.Interval, cfg.HealthCheck.Timeout = time.Hour, time.Second
	lb, _ := startBalancer(t, cfg, nil)
	waitAllUp(t, lb)
	m1.close() // refuses connections from now on

	for range 4 {
		name, c, _ := who(t, lb.Addr())
		t.Cleanup(func() { _ = c.Close() })
		if name != "m2" {
			t.Fatalf("reached %s", name)
		}
	}
	// After the first connection (a tie the rotation may give to m2), m1
	// has the fewest connections, so the next client tried it first; that
	// failed dial marked m1 down, so no later client tried it.
	if got := value(t, lb.m.total.WithLabelValues("m1", resultDialError)); got != 1 {
		t.Errorf("dial errors on m1 = %v, want 1 (then marked down)", got)
	}
	if got := value(t, lb.m.total.WithLabelValues("m2", resultOK)); got != 4 {
		t.Errorf("ok connections on m2 = %v, want 4", got)
	}
	waitFor(t, "m1 reported down", func() bool {
		for _, s := range lb.Status() {
			if s.Name == "m1" {
				return !s.Up && strings.Contains(s.LastError, "connect failed")
			}
		}
		return false
	})
	if got := value(t, lb.m.up.WithLabelValues("m1")); got != 0 {
		t.Errorf("masterd_lb_backend_up{backend=m1} = %v, want 0", got)
	}
}

func TestNoReadyBackendClosesTheClientConnection(t *testing.T) {
	b := startBackend(t, "m1", "127.0.0.71:0")
	b.ready.Store(false)
	var log checkLog
	lb, _ := startBalancer(t, testConfig(t, "127.0.0.70:0", b), log.hook)
	waitFor(t, "a failed check", func() bool { return log.len("m1") > 0 })

	c, err := net.Dial("tcp", lb.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("read from balancer without backends: n=%d err=%v, want EOF or reset", n, err)
	}
	if got := value(t, lb.m.total.WithLabelValues(noBackend, resultNoBackend)); got != 1 {
		t.Errorf("no_backend connections = %v, want 1", got)
	}
	if b.accepted.Load() != 0 {
		t.Errorf("the unready backend got %d connections", b.accepted.Load())
	}
	if s := lb.Status()[0]; s.Up || s.LastError == "" || s.LastCheck.IsZero() {
		t.Errorf("status of unready backend: %+v", s)
	}
}

func TestCloseEndsProxiedConnectionsAndRunReturns(t *testing.T) {
	b := startBackend(t, "m1", "127.0.0.81:0")
	reg := newRegistry()
	lb, err := New(testConfig(t, "127.0.0.80:0", b), reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- lb.Run(ctxTimeout(t)) }()
	waitAllUp(t, lb)
	_, c, r := who(t, lb.Addr())
	defer c.Close()

	if err := lb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("proxied connection still open after Close")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("proxied connection hung after Close: %v", err)
	}
	if _, err := net.Dial("tcp", lb.Addr().String()); err == nil {
		t.Fatal("listener still accepting after Close")
	}
	if err := lb.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := lb.Run(ctxTimeout(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v, want ErrClosed", err)
	}
}

// value reads a counter or gauge.
func value(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// checkDeadPeerOptions reads the kernel's view of both legs of the one
// proxied connection: keepalive on with the configured timings, and
// TCP_USER_TIMEOUT at (count+1)·interval.
func checkDeadPeerOptions(t *testing.T, lb *Balancer, interval time.Duration, count int) {
	t.Helper()
	lb.mu.Lock()
	var legs []*net.TCPConn
	for pc := range lb.conns {
		legs = append(legs, pc.client, pc.backend)
	}
	lb.mu.Unlock()
	if len(legs) != 2 {
		t.Fatalf("%d proxied legs, want 2", len(legs))
	}
	want := map[string][3]int{
		"SO_KEEPALIVE":     {unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		"TCP_KEEPIDLE":     {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(interval / time.Second)},
		"TCP_KEEPINTVL":    {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(interval / time.Second)},
		"TCP_KEEPCNT":      {unix.IPPROTO_TCP, unix.TCP_KEEPCNT, count},
		"TCP_USER_TIMEOUT": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int((time.Duration(count+1) * interval).Milliseconds())},
	}
	for i, leg := range legs {
		raw, err := leg.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		for name, w := range want {
			var got int
			var gerr error
			if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), w[0], w[1]) }); err != nil {
				t.Fatal(err)
			}
			if gerr != nil {
				t.Fatalf("leg %d: getsockopt %s: %v", i, name, gerr)
			}
			if got != w[2] {
				t.Errorf("leg %d: %s = %d, want %d", i, name, got, w[2])
			}
		}
	}
}
