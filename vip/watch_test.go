package vip

import (
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// logStep is one claim fed to allowConflictLog: MAC number mac at t0+at,
// and whether it should be logged.
type logStep struct {
	mac  int
	at   time.Duration
	want bool
}

func stepMAC(i int) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)} }

// fill returns steps logging MACs 0..n-1 at t0, followed by more.
func fill(n int, more ...logStep) []logStep {
	var s []logStep
	for i := range n {
		s = append(s, logStep{i, 0, true})
	}
	return append(s, more...)
}

func TestConflictLogLimit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		steps []logStep
	}{
		{"a new MAC is logged", []logStep{{1, 0, true}}},
		{"the same MAC again within the interval is not", []logStep{{1, 0, true}, {1, conflictLogEvery - 1, false}}},
		{"the same MAC after the interval is logged again", []logStep{{1, 0, true}, {1, 5 * time.Second, false}, {1, conflictLogEvery, true}}},
		{"two MACs are logged independently", []logStep{{1, 0, true}, {2, time.Second, true}, {1, 2 * time.Second, false}}},
		{"once the cap is reached a new MAC is not logged within the interval", fill(conflictLogMACs, logStep{999, time.Second, false})},
		{"a new MAC is logged once the first entries age out", fill(conflictLogMACs, logStep{999, conflictLogEvery, true})},
		{"a full map still logs a known MAC again after the interval", fill(conflictLogMACs, logStep{0, conflictLogEvery, true})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logged := map[string]time.Time{}
			for i, s := range tc.steps {
				if got := allowConflictLog(logged, stepMAC(s.mac), t0.Add(s.at)); got != s.want {
					t.Fatalf("step %d (mac %d at +%s): logged %v, want %v", i, s.mac, s.at, got, s.want)
				}
				if len(logged) > conflictLogMACs {
					t.Fatalf("step %d: %d entries, cap %d", i, len(logged), conflictLogMACs)
				}
			}
		})
	}
}

// TestConflictLogLimitBoundsAnyWindow feeds random claims (a few real
// conflicting MACs among many made-up ones, at random gaps) and checks,
// against the list of logged lines: the map never exceeds its cap, no MAC
// is logged twice within conflictLogEvery, and no window of that length
// holds more than conflictLogMACs lines.
func TestConflictLogLimitBoundsAnyWindow(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(uint64(seed), 0))
	type line struct {
		mac int
		at  time.Time
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	logged := map[string]time.Time{}
	var lines []line
	for i := range 200_000 {
		now = now.Add(time.Duration(r.IntN(int(2 * time.Millisecond))))
		mac := r.IntN(4) // a few real conflicts
		if r.IntN(2) == 0 {
			mac = 4 + r.IntN(50_000) // a flood of made-up MACs
		}
		if allowConflictLog(logged, stepMAC(mac), now) {
			lines = append(lines, line{mac, now})
		}
		if len(logged) > conflictLogMACs {
			t.Fatalf("seed %d, claim %d: %d entries, cap %d", seed, i, len(logged), conflictLogMACs)
		}
	}
	last := map[int]time.Time{}
	for i, l := range lines {
		if p, ok := last[l.mac]; ok && l.at.Sub(p) < conflictLogEvery {
			t.Fatalf("seed %d: mac %d logged at %s and again %s later", seed, l.mac, p, l.at.Sub(p))
		}
		last[l.mac] = l.at
		if i >= conflictLogMACs && l.at.Sub(lines[i-conflictLogMACs].at) < conflictLogEvery {
			t.Fatalf("seed %d: %d lines within %s (line %d at %s)", seed, conflictLogMACs+1, conflictLogEvery, i, l.at)
		}
	}
	if len(lines) == 0 {
		t.Fatal("nothing logged")
	}
	t.Logf("%d lines for %s of claims", len(lines), now.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
}
