package election

import (
	"testing"
	"time"
)

// The short unit profile is safe with the unit slack, with margin, and
// keeps client-go's ordering.
func TestFastUnitTimingIsSafeWithTheUnitSlack(t *testing.T) {
	ft := FastUnitTiming()
	if err := ft.Validate(DefaultDrift); err != nil {
		t.Fatal(err)
	}
	if ft.Slack() != UnitSlack {
		t.Errorf("slack %+v, want UnitSlack %+v", ft.Slack(), UnitSlack)
	}
	if margin := ft.LeaseDuration - ft.RequiredLease(DefaultDrift); margin < 400*time.Millisecond {
		t.Errorf("lease %v leaves %v beyond the required %v, want >= 400ms", ft.LeaseDuration, margin, ft.RequiredLease(DefaultDrift))
	}
	shorter := ft
	shorter.LeaseDuration = 7 * time.Second
	if shorter.Validate(DefaultDrift) == nil {
		t.Errorf("a 7s lease with renew %v and slack %v validates: the 7.5s lease is not the shortest half second", ft.RenewDeadline, ft.Slack().Total())
	}
}
