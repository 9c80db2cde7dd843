package election

import (
	"strings"
	"testing"
	"time"
)

// The ordering rule is client-go's: renewDeadline must exceed 1.2 × retryPeriod,
// not merely retryPeriod (the agent once checked one rule and the election
// the other).
func TestTimingRenewDeadlineMustExceedOnePointTwoRetryPeriods(t *testing.T) {
	for _, tc := range []struct {
		renew time.Duration
		ok    bool
	}{{110 * time.Millisecond, false}, {120 * time.Millisecond, false}, {121 * time.Millisecond, true}} {
		tm := Timing{LeaseDuration: 10 * time.Second, RenewDeadline: tc.renew, RetryPeriod: 100 * time.Millisecond}
		ps := tm.Problems(DefaultDrift)
		if got := len(ps) == 0; got != tc.ok {
			t.Errorf("renew %v, retry 100ms: problems %v, want ok=%v", tc.renew, ps, tc.ok)
		}
		for _, p := range ps {
			if p.Field != "renewDeadline" || !strings.Contains(p.Msg, "1.2 × retryPeriod") {
				t.Errorf("problem %+v: want renewDeadline and the 1.2 rule", p)
			}
		}
	}
}

func TestTimingProblemsNameTheirField(t *testing.T) {
	ps := Timing{RenewDeadline: time.Second, DetectSlack: -1}.Problems(DefaultDrift)
	var fields []string
	for _, p := range ps {
		fields = append(fields, p.Field)
	}
	if got := strings.Join(fields, ","); got != "leaseDuration,retryPeriod,detectSlack" {
		t.Errorf("fields %q, want leaseDuration,retryPeriod,detectSlack (%v)", got, ps)
	}
}

// The profiles carry the slack of the role they run in: the vip role's
// depends on the fence, the units' do not.
func TestRoleSlackAndProfiles(t *testing.T) {
	if RoleSlack(RoleVIP, true) != FencedVIPSlack || RoleSlack(RoleVIP, false) != VIPSlack ||
		RoleSlack(RoleScheduler, true) != UnitSlack || RoleSlack(RoleControllerManager, false) != UnitSlack {
		t.Error("RoleSlack does not pick the vip slack by the fence and the unit slack for the other roles")
	}
	if DefaultVIPTiming().Slack() != VIPSlack || FastVIPTiming().Slack() != FencedVIPSlack || DefaultUnitTiming().Slack() != UnitSlack {
		t.Error("a default profile does not carry its role's slack")
	}
	for _, fenced := range []bool{false, true} {
		for _, name := range []string{ProfileDefault, ProfileFast} {
			tm, ok := VIPProfile(name, fenced)
			if !ok || tm.Slack() != RoleSlack(RoleVIP, fenced) {
				t.Errorf("VIPProfile(%s, %v) = %+v, %v", name, fenced, tm, ok)
			}
			safe := tm.Validate(DefaultDrift) == nil
			if want := fenced || name == ProfileDefault; safe != want {
				t.Errorf("profile %s fenced=%v: safe=%v, want %v", name, fenced, safe, want)
			}
		}
	}
	if _, ok := VIPProfile(ProfileCustom, true); ok {
		t.Error("custom is not a built-in profile")
	}
}
