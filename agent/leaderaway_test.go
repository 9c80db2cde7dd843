package agent

import (
	"testing"
	"time"
)

type awayStep struct {
	at       float64 // seconds
	coincide bool    // the VIP holder leads etcd
	move     bool    // want a move now
}

// The leader placement's hysteresis, second by second: a move only after
// the VIP holder led etcd for leaderAwayAfter without a break, and at most
// one per leaderAwayEvery however often they coincide again.
func TestLeaderAwayMovesAfterALastingCoincidenceAtMostOncePerPeriod(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name  string
		steps []awayStep
	}{
		{"a coincidence shorter than 3 s moves nothing", []awayStep{{0, true, false}, {1, true, false}, {2, true, false}, {2.5, false, false}, {3, true, false}, {5, true, false}}},
		{"a lasting one moves once 3 s in, then not again within the minute", []awayStep{{0, true, false}, {3, true, true}, {4, true, false}, {10, false, false}, {11, true, false}, {20, true, false}, {62, true, false}, {63, true, true}}},
		{"the period counts from the last move, not from the coincidence", []awayStep{{0, true, false}, {3, true, true}, {5, false, false}, {50, true, false}, {62.9, true, false}, {63, true, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h leaderAway
			for _, s := range tt.steps {
				if got := h.observe(at(s.at), s.coincide); got != s.move {
					t.Fatalf("at %.1fs (coincide %v): move %v, want %v", s.at, s.coincide, got, s.move)
				}
			}
		})
	}
}
