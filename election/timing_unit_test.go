package election

import (
	"testing"
	"time"
)

// The unit profile is safe with the unit slack, with margin, keeps
// client-go's ordering, and its lease is the shortest whole half second
// the safety inequality allows.
func TestDefaultUnitTimingIsSafeWithTheUnitSlack(t *testing.T) {
	ut := DefaultUnitTiming()
	if err := ut.Validate(DefaultDrift); err != nil {
		t.Fatal(err)
	}
	if ut.Slack() != UnitSlack {
		t.Errorf("slack %+v, want UnitSlack %+v", ut.Slack(), UnitSlack)
	}
	if UnitSlack.Total() > 1500*time.Millisecond {
		t.Errorf("UnitSlack %v: a lapsed unit is killed at once, detect and release should fit 1.5 s", UnitSlack.Total())
	}
	if margin := ut.LeaseDuration - ut.RequiredLease(DefaultDrift); margin < 400*time.Millisecond {
		t.Errorf("lease %v leaves %v beyond the required %v, want >= 400ms", ut.LeaseDuration, margin, ut.RequiredLease(DefaultDrift))
	}
	shorter := ut
	shorter.LeaseDuration = ut.LeaseDuration - 500*time.Millisecond
	if shorter.Validate(DefaultDrift) == nil {
		t.Errorf("a %v lease with renew %v and slack %v validates: %v is not the shortest half second", shorter.LeaseDuration, ut.RenewDeadline, ut.Slack().Total(), ut.LeaseDuration)
	}
	// The old slack (a SIGTERM grace before the kill, 4.5 s in all) does
	// not fit this lease: the profile depends on the fast kill.
	old := ut.WithSlack(Slack{Detect: 500 * time.Millisecond, Release: 4 * time.Second})
	if old.Validate(DefaultDrift) == nil {
		t.Errorf("%v lease validates with a 4.5 s slack", ut.LeaseDuration)
	}
	if DefaultRoles()[RoleScheduler] != ut || DefaultRoles()[RoleControllerManager] != ut {
		t.Error("the scheduler and controller-manager roles do not default to DefaultUnitTiming")
	}
}
