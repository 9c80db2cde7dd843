package election

import (
	"math/rand/v2"
	"testing"
	"time"
)

// leaseStart against a naive reference: the latest time s such that the
// voters that acknowledged a message sent at s or later hold a majority of
// every voter set (one set, or the old and the new one during a change).
func TestLeaseStartMatchesNaiveReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	names := []string{"a", "b", "c", "d", "e", "f", "g"}
	for i := range 20000 {
		m := Membership{Epoch: 1, Voters: pick(rng, names)}
		if rng.IntN(2) == 0 {
			m.Old = pick(rng, names)
		}
		acked := map[string]time.Duration{}
		for _, v := range names {
			if rng.IntN(4) != 0 {
				acked[v] = time.Duration(rng.IntN(20))
			}
		}
		got, ok := m.leaseStart(acked)
		var want time.Duration
		found := false
		for s := time.Duration(20); s >= 0; s-- {
			quorum := true
			for _, c := range [][]string{m.Voters, m.Old} {
				if len(c) == 0 {
					continue
				}
				k := 0
				for _, v := range c {
					if a, ok := acked[v]; ok && a >= s {
						k++
					}
				}
				if 2*k <= len(c) {
					quorum = false
				}
			}
			if quorum {
				want, found = s, true
				break
			}
		}
		if ok != found || (ok && got != want) {
			t.Fatalf("case %d: membership=%+v acked=%v: got %v,%v want %v,%v", i, m, acked, got, ok, want, found)
		}
	}
}

// pick returns a random non-empty subset of names.
func pick(rng *rand.Rand, names []string) []string {
	var out []string
	for len(out) == 0 {
		for _, v := range names {
			if rng.IntN(2) == 0 {
				out = append(out, v)
			}
		}
	}
	return out
}
