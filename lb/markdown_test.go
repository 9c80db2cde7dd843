package lb

import (
	"errors"
	"testing"
	"time"
)

// The mark-down rule on one backend, step by step: a check that was
// running when the backend was marked down may predate the death and is
// dropped; Rise checks started after the mark bring it back.
func TestMarkDownVoidsRunningChecksAndNeedsRiseFreshOnes(t *testing.T) {
	m1 := startBackend(t, "m1", "127.0.0.81:0")
	cfg := testConfig(t, "127.0.0.80:0", m1)
	lb, err := New(cfg, newRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	b := lb.list()[0]
	fail := errors.New("status 503")
	step := func(what string, marks uint64, err error, wantUp, wantCounted bool) {
		t.Helper()
		up, counted := lb.record(b, marks, time.Now(), err)
		if up != wantUp || counted != wantCounted || b.up.Load() != wantUp {
			t.Fatalf("%s: up %v (pick sees %v) counted %v, want up %v counted %v", what, up, b.up.Load(), counted, wantUp, wantCounted)
		}
	}
	step("first success of a fresh backend", 0, nil, true, true)
	running := b.marks // a check starts
	if !lb.MarkDown("m1", "election reports the master down: silent") {
		t.Fatal("MarkDown of a configured backend reported false")
	}
	if b.up.Load() {
		t.Fatal("backend still up for pick after MarkDown returned")
	}
	step("the check that ran across the mark-down succeeds", running, nil, false, false)
	step("first fresh success (rise 2)", b.marks, nil, false, true)
	step("a fresh failure resets the streak", b.marks, fail, false, true)
	step("fresh success 1 of 2", b.marks, nil, false, true)
	step("fresh success 2 of 2", b.marks, nil, true, true)
	if lb.MarkDown("m9", "x") {
		t.Fatal("MarkDown of an unknown backend reported true")
	}
	if got := value(t, lb.m.marked.WithLabelValues("m1", reasonDead)); got != 1 {
		t.Fatalf("masterd_lb_marked_down_total{reason=dead} = %v, want 1", got)
	}
	if s := lb.Status()[0]; !s.Up || s.LastError != "" {
		t.Fatalf("status after coming back: %+v", s)
	}
}

// Real TCP: a backend marked down gets no connection (counted on its own
// listener) though it still accepts and passes checks, until checks
// started after the mark pass; then it gets clients again.
func TestMarkedDownBackendIsNotDialledUntilFreshChecksPass(t *testing.T) {
	m1 := startBackend(t, "m1", "127.0.0.83:0")
	m2 := startBackend(t, "m2", "127.0.0.84:0")
	cfg := testConfig(t, "127.0.0.82:0", m1, m2)
	var log checkLog
	lb, _ := startBalancer(t, cfg, log.hook)
	waitAllUp(t, lb)
	m1.ready.Store(false) // what a dead master's apiserver would answer, if anything
	lb.MarkDown("m1", "election reports the master down: silent")
	before := m1.accepted.Load()
	checks := log.len("m1")
	for range 20 {
		name, c, _ := who(t, lb.Addr())
		_ = c.Close()
		if name != "m2" {
			t.Fatalf("a client reached %s, marked down", name)
		}
	}
	waitFor(t, "three checks of m1 after the mark", func() bool { return log.len("m1") >= checks+3 })
	for range 5 {
		name, c, _ := who(t, lb.Addr())
		_ = c.Close()
		if name != "m2" {
			t.Fatalf("a client reached %s, marked down and failing its checks", name)
		}
	}
	if n := m1.accepted.Load() - before; n != 0 {
		t.Fatalf("m1's listener accepted %d client connections after its mark-down", n)
	}
	m1.ready.Store(true)
	waitAllUp(t, lb)
	for _, e := range log.since("m1", checks) {
		if e.up && !e.ok {
			t.Fatalf("m1 up after a failing check: %+v", e)
		}
	}
	reached := false
	for range 20 {
		name, c, _ := who(t, lb.Addr())
		_ = c.Close()
		reached = reached || name == "m1"
	}
	if !reached {
		t.Fatal("m1 back up got no client")
	}
}
