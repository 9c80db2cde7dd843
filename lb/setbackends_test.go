package lb

import (
	"net/netip"
	"testing"
)

// The masters change (member add, remove, replace): SetBackends on a
// running balancer brings a new backend in through its health checks and
// sends a removed one nothing, while a kept one keeps its state.
func TestSetBackendsFollowsTheMasters(t *testing.T) {
	m1 := startBackend(t, "m1", "127.0.0.91:0")
	m2 := startBackend(t, "m2", "127.0.0.92:0")
	m3 := startBackend(t, "m3", "127.0.0.93:0")
	lb, _ := startBalancer(t, testConfig(t, "127.0.0.90:0", m1, m2), nil)
	waitAllUp(t, lb)

	// Replace m2 by m3.
	if err := lb.SetBackends([]Backend{{Name: "m1", Address: m1.addrPort()}, {Name: "m3", Address: m3.addrPort()}}); err != nil {
		t.Fatal(err)
	}
	st := lb.Status()
	if len(st) != 2 || st[0].Name != "m1" || !st[0].Up || st[1].Name != "m3" {
		t.Fatalf("status after the change: %+v, want m1 (still up) and m3", st)
	}
	waitAllUp(t, lb)
	count := map[string]int{}
	for range 20 {
		name, c, _ := who(t, lb.Addr())
		count[name]++
		_ = c.Close()
		waitIdle(t, lb)
	}
	if count["m2"] != 0 || count["m1"] == 0 || count["m3"] == 0 {
		t.Fatalf("connections after replacing m2 by m3: %v, want m1 and m3 only", count)
	}

	// Bad input changes nothing.
	for _, bad := range [][]Backend{
		{{Name: "m1", Address: m1.addrPort()}, {Name: "m1", Address: m3.addrPort()}},
		{{Name: "", Address: m1.addrPort()}},
		{{Name: "m4", Address: netip.AddrPort{}}},
	} {
		if err := lb.SetBackends(bad); err == nil {
			t.Errorf("SetBackends(%v) accepted", bad)
		}
	}
	if st := lb.Status(); len(st) != 2 {
		t.Fatalf("a refused change altered the backends: %+v", st)
	}
}
