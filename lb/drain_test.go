package lb

import (
	"context"
	"testing"
	"time"
)

// Drain waits for the proxied connections to end (a graceful stop drains
// before it hands the VIP over) and gives up at its context's end.
func TestDrainWaitsForProxiedConnectionsAndIsBounded(t *testing.T) {
	b := startBackend(t, "m1", "127.0.0.91:0")
	lb, _ := startBalancer(t, testConfig(t, "127.0.0.90:0", b), nil)
	waitAllUp(t, lb)
	if n := lb.Drain(ctxTimeout(t)); n != 0 {
		t.Fatalf("drain with nothing proxied: %d open", n)
	}
	_, c, _ := who(t, lb.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if n := lb.Drain(ctx); n != 1 {
		t.Fatalf("drain with one open connection returned %d open, want 1 at the deadline", n)
	}
	if d := time.Since(t0); d < 90*time.Millisecond || d > 2*time.Second {
		t.Fatalf("drain gave up after %v, want its 100 ms deadline", d)
	}
	done := make(chan int, 1)
	go func() { done <- lb.Drain(ctxTimeout(t)) }()
	time.Sleep(50 * time.Millisecond)
	c.Close() // the client ends its request
	select {
	case n := <-done:
		if n != 0 {
			t.Fatalf("drain returned %d open after the last connection ended", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("drain did not return after the last connection ended")
	}
}
