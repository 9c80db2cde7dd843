package lb

import (
	"math/rand/v2"
	"testing"
)

// TestPickMatchesNaiveLeastConnections compares pick with a naive reference
// on random backend states: it must return an up, untried backend with the
// minimum active count (nil if there is none) and count the connection on it.
func TestPickMatchesNaiveLeastConnections(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for iter := range 5000 {
		n := 1 + rng.IntN(5)
		lb := &Balancer{}
		var list []*backend
		for range n {
			b := &backend{}
			b.up.Store(rng.IntN(4) != 0)
			b.active.Store(int64(rng.IntN(4)))
			list = append(list, b)
		}
		lb.backends.Store(&list)
		var tried []*backend
		for _, b := range lb.list() {
			if rng.IntN(4) == 0 {
				tried = append(tried, b)
			}
		}
		isTried := func(b *backend) bool {
			for _, x := range tried {
				if x == b {
					return true
				}
			}
			return false
		}
		want := int64(-1) // reference: the minimum active count among candidates
		for _, b := range lb.list() {
			if b.up.Load() && !isTried(b) && (want < 0 || b.active.Load() < want) {
				want = b.active.Load()
			}
		}
		got := lb.pick(tried)
		switch {
		case want < 0 && got != nil:
			t.Fatalf("iteration %d (seed %d): picked a backend although none is eligible", iter, seed)
		case want < 0:
			continue
		case got == nil:
			t.Fatalf("iteration %d (seed %d): picked nothing, want one with %d active", iter, seed, want)
		case !got.up.Load() || isTried(got):
			t.Fatalf("iteration %d (seed %d): picked a down or already tried backend", iter, seed)
		case got.active.Load() != want+1:
			t.Fatalf("iteration %d (seed %d): picked one with %d active (after counting), want %d", iter, seed, got.active.Load(), want+1)
		}
	}
}

// TestPickSpreadsEvenlyWithABackendDown: sequential short connections (each
// done before the next) with the middle one of three backends down are split
// evenly between the other two, not 2:1 in favour of the down one's successor.
func TestPickSpreadsEvenlyWithABackendDown(t *testing.T) {
	lb := &Balancer{}
	var list []*backend
	for i := range 3 {
		b := &backend{}
		b.up.Store(i != 1)
		list = append(list, b)
	}
	lb.backends.Store(&list)
	counts := map[*backend]int{}
	for range 3000 {
		b := lb.pick(nil)
		counts[b]++
		b.active.Add(-1) // the connection ends before the next one
	}
	if counts[lb.list()[1]] != 0 {
		t.Fatalf("the down backend got %d connections", counts[lb.list()[1]])
	}
	if a, c := counts[lb.list()[0]], counts[lb.list()[2]]; a != 1500 || c != 1500 {
		t.Fatalf("split %d / %d between the two up backends, want 1500 / 1500", a, c)
	}
}
