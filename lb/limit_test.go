package lb

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// The limiter's counting: caps in all and per source, a refusal counts
// nothing, closing frees the slot, and an address with no open connection
// leaves the map (its size stays bounded by the global cap).
func TestLimiterCountsCapsAndForgetsIdleSources(t *testing.T) {
	l := newLimiter(3, 2)
	a, b, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	steps := []struct {
		src  netip.Addr
		want string
	}{{a, ""}, {a, ""}, {a, rejectSource}, {b, ""}, {c, rejectGlobal}, {b, rejectGlobal}}
	for i, s := range steps {
		if got := l.admit(s.src); got != s.want {
			t.Fatalf("step %d: admit(%s) = %q, want %q", i, s.src, got, s.want)
		}
	}
	l.done(a)
	if got := l.admit(c); got != "" {
		t.Fatalf("after a close: admit(c) = %q, want admitted", got)
	}
	l.done(b)
	l.done(c)
	if _, ok := l.bySource[b]; ok || len(l.bySource) != 1 {
		t.Fatalf("sources without open connections kept: %v", l.bySource)
	}
	// One log line per reason per period, with the count left out.
	now := time.Now()
	if ok, left := l.logAllowed(rejectSource, now); !ok || left != 0 {
		t.Fatalf("first refusal not logged: %v %d", ok, left)
	}
	for range 5 {
		if ok, _ := l.logAllowed(rejectSource, now.Add(time.Second)); ok {
			t.Fatal("logged twice within the period")
		}
	}
	if ok, _ := l.logAllowed(rejectGlobal, now.Add(time.Second)); !ok {
		t.Fatal("the other reason's first refusal was not logged")
	}
	if ok, left := l.logAllowed(rejectSource, now.Add(limitLogEvery)); !ok || left != 5 {
		t.Fatalf("after the period: logged %v with %d left out, want true and 5", ok, left)
	}
}

// 10,000 connections from one source address: only MaxConnsPerSource are
// proxied, the rest are reset at once and counted; another address is
// still served, and a closed connection frees its slot.
func TestTenThousandConnectionsFromOneSourceAreCappedOthersServed(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 10,000 connections")
	}
	const perSource, flood = 100, 10000
	m1 := startBackend(t, "m1", "127.0.0.94:0")
	cfg := testConfig(t, "127.0.0.93:0", m1)
	cfg.MaxConnsPerSource = perSource
	lb, _ := startBalancer(t, cfg, nil)
	waitAllUp(t, lb)

	dial := func(src string) (*net.TCPConn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", lb.Addr().String())
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	}
	var conns []*net.TCPConn
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	resetAtConnect := 0
	for i := range flood {
		c, err := dial("127.0.0.95")
		if isReset(err) && i >= perSource {
			// Refused so fast that the reset beat the end of connect(2).
			resetAtConnect++
			continue
		}
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	t.Logf("%d of %d refused connections were reset before connect returned", resetAtConnect, flood-perSource)
	waitFor(t, "every refusal counted", func() bool {
		return value(t, lb.m.rejected.WithLabelValues(rejectSource)) == flood-perSource
	})
	if got := value(t, lb.m.rejected.WithLabelValues(rejectGlobal)); got != 0 {
		t.Errorf("global refusals = %v, want 0", got)
	}
	if total, from := lb.limit.open(netip.MustParseAddr("127.0.0.95")); total != perSource || from != perSource {
		t.Fatalf("open connections %d (from the flooding source %d), want %d", total, from, perSource)
	}
	// The first perSource are proxied; a later one was reset.
	echoWho := func(c *net.TCPConn) (string, error) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "WHO\n"); err != nil {
			return "", err
		}
		buf := make([]byte, 3)
		_, err := io.ReadFull(c, buf)
		return string(buf), err
	}
	if got, err := echoWho(conns[0]); err != nil || got != "m1\n" {
		t.Fatalf("an admitted connection: %q, %v", got, err)
	}
	if _, err := echoWho(conns[len(conns)-1]); err == nil || !(errors.Is(err, io.EOF) || isReset(err)) {
		t.Fatalf("a connection past the cap: %v, want a reset or EOF", err)
	}
	// Another source is served while the first is capped.
	name, c, _ := who(t, netip.MustParseAddrPort(lb.Addr().String()))
	_ = c.Close()
	if name != "m1" {
		t.Fatalf("another source reached %q", name)
	}
	// Closing an admitted connection frees a slot for the capped source.
	_ = conns[1].Close()
	waitFor(t, "the slot freed", func() bool {
		_, from := lb.limit.open(netip.MustParseAddr("127.0.0.95"))
		return from == perSource-1
	})
	nc, err := dial("127.0.0.95")
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, nc)
	if got, err := echoWho(nc); err != nil || got != "m1\n" {
		t.Fatalf("a new connection after one closed: %q, %v", got, err)
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
