package agent

import (
	"context"
	"errors"
	"testing"
)

func TestOnePerRoundRunsTheSharedCheckOncePerRoundAndAlwaysOutsideOne(t *testing.T) {
	calls := 0
	fail := errors.New("apiserver not ready")
	shared := onePerRound(func(context.Context) error { calls++; return fail })
	other := onePerRound(func(context.Context) error { calls += 100; return nil })
	round := withHealthRound(context.Background())
	for range 3 { // three roles
		if err := shared(round); !errors.Is(err, fail) {
			t.Fatalf("in a round: %v, want the check's error", err)
		}
	}
	if err := other(round); err != nil || calls != 101 {
		t.Fatalf("another check in the same round: err %v, calls %d, want its own single run (101)", err, calls)
	}
	if _ = shared(withHealthRound(context.Background())); calls != 102 {
		t.Errorf("a new round reused the last one's result: %d calls, want 102", calls)
	}
	_ = shared(context.Background())
	_ = shared(context.Background())
	if calls != 104 {
		t.Errorf("outside a round: %d calls, want every call to run (104)", calls)
	}
}
