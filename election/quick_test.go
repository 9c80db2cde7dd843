package election

import (
	"math/rand/v2"
	"testing"
	"time"
)

// leaseStart against a naive reference: the latest time s such that at
// least Q voters acknowledged a message sent at s or later.
func TestLeaseStartMatchesNaiveReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 20000 {
		n := 1 + rng.IntN(7)
		r := &role{n: &Node{q: n/2 + 1}, acked: map[string]time.Duration{}}
		k := rng.IntN(n + 1)
		for j := range k {
			r.acked[string(rune('a'+j))] = time.Duration(rng.IntN(20))
		}
		got, ok := r.leaseStart()
		var want time.Duration
		found := false
		for s := time.Duration(20); s >= 0; s-- {
			c := 0
			for _, a := range r.acked {
				if a >= s {
					c++
				}
			}
			if c >= r.n.q {
				want, found = s, true
				break
			}
		}
		if ok != found || (ok && got != want) {
			t.Fatalf("case %d: acked=%v q=%d: got %v,%v want %v,%v", i, r.acked, r.n.q, got, ok, want, found)
		}
	}
}
