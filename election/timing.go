package election

import (
	"errors"
	"fmt"
	"time"
)

// Timing is one role's lease timing. Every duration is measured on the local
// monotonic clock of the node that applies it.
//
// This file is the one source of masterd's roles, timing profiles and their
// slack budgets, and of the rules a timing must obey: the agent's
// configuration is validated with Timing.Problems, the same check NewNode
// makes.
type Timing struct {
	// LeaseDuration is how long a voter promises a candidate or leader not to
	// answer anyone else, counted from the moment it answers.
	LeaseDuration time.Duration
	// RenewDeadline is how long a leader keeps the role after the send time of
	// the Q-th latest acknowledged heartbeat (or its Vote). At that instant it
	// lets the role go.
	RenewDeadline time.Duration
	// RetryPeriod is the heartbeat interval and the unit of candidate back-off.
	RetryPeriod time.Duration
	// DetectSlack is how late the deadline check may run (timer lateness,
	// scheduling, short stalls): T_detect of the safety inequality.
	DetectSlack time.Duration
	// ReleaseSlack is how long releasing the role may take (VIP deleted, unit
	// killed): T_release of the safety inequality.
	ReleaseSlack time.Duration
}

// Role names used by masterd.
const (
	RoleVIP               = "vip"
	RoleScheduler         = "scheduler"
	RoleControllerManager = "controller-manager"
)

// DefaultDrift is the default tolerated clock-rate drift ε (1000 ppm). Clock
// rates of all masters are assumed to lie in [1−ε, 1+ε] of true time; NTP
// slews at most 500 ppm and crystal error is typically below 100 ppm, so 1000
// ppm leaves a factor two.
const DefaultDrift = 0.001

// Slack is how long a lapsed holder may still act: T_detect and T_release of
// the safety inequality.
type Slack struct {
	Detect, Release time.Duration
}

// Total is Detect + Release.
func (s Slack) Total() time.Duration { return s.Detect + s.Release }

// Slack budgets of masterd's roles.
var (
	// VIPSlack: a GC pause or scheduling delay of ~100 ms, then one netlink
	// call that deletes the address (150 ms, with room to spare).
	VIPSlack = Slack{Detect: 100 * time.Millisecond, Release: 150 * time.Millisecond}
	// FencedVIPSlack: with the nftables fence armed the kernel silences the
	// VIP at the lease deadline minus a margin, whatever the daemon does.
	FencedVIPSlack = Slack{Detect: 40 * time.Millisecond, Release: 40 * time.Millisecond}
	// UnitSlack: a leader-only component is stopped by killing its control
	// group: SIGTERM, SIGKILL after a short grace, and the wait for it to go.
	UnitSlack = Slack{Detect: 500 * time.Millisecond, Release: 4 * time.Second}
)

// RoleSlack is the slack budget of role: the vip role's depends on whether
// the kernel fence is installed; every other role is a leader-only unit.
func RoleSlack(role string, fenced bool) Slack {
	switch {
	case role != RoleVIP:
		return UnitSlack
	case fenced:
		return FencedVIPSlack
	default:
		return VIPSlack
	}
}

// WithSlack returns t with s as its slack budget.
func (t Timing) WithSlack(s Slack) Timing {
	t.DetectSlack, t.ReleaseSlack = s.Detect, s.Release
	return t
}

// Slack returns t's slack budget.
func (t Timing) Slack() Slack { return Slack{Detect: t.DetectSlack, Release: t.ReleaseSlack} }

// VIP timing profile names, as the configuration spells them.
const (
	ProfileDefault = "default"
	ProfileFast    = "fast"
	ProfileCustom  = "custom"
)

// VIPProfile returns the timing of a built-in vip profile (default or fast)
// with the slack it is run with. ok is false for custom or an unknown name.
func VIPProfile(name string, fenced bool) (t Timing, ok bool) {
	switch name {
	case ProfileDefault:
		t = DefaultVIPTiming()
	case ProfileFast:
		t = FastVIPTiming()
	default:
		return Timing{}, false
	}
	return t.WithSlack(RoleSlack(RoleVIP, fenced)), true
}

// DefaultVIPTiming is the default vip profile: about one second failover and
// tolerant of daemon stalls of a few hundred milliseconds (the kernel fence
// bounds what a stalled holder can do). Its slack is VIPSlack: 100 ms for a
// late deadline timer, 150 ms to delete the address.
func DefaultVIPTiming() Timing {
	return Timing{
		LeaseDuration: 800 * time.Millisecond,
		RenewDeadline: 500 * time.Millisecond,
		RetryPeriod:   100 * time.Millisecond,
	}.WithSlack(VIPSlack)
}

// FastVIPTiming is the `fast` vip profile (about 0.25 s lease). Its slack is
// small (FencedVIPSlack) because the nftables fence silences the VIP at the
// lease deadline in the kernel, whatever the daemon does; the agent refuses
// this profile unless the fence is installed.
func FastVIPTiming() Timing {
	return Timing{
		LeaseDuration: 250 * time.Millisecond,
		RenewDeadline: 150 * time.Millisecond,
		RetryPeriod:   30 * time.Millisecond,
	}.WithSlack(FencedVIPSlack)
}

// DefaultUnitTiming is the scheduler and controller-manager profile, the same
// 15s/10s/2s as kube's own --leader-elect defaults: a leader-only unit
// restarting is expensive, so these roles favour stability over fast failover.
// Its slack is UnitSlack (4 s to kill the unit's control group).
func DefaultUnitTiming() Timing {
	return Timing{
		LeaseDuration: 15 * time.Second,
		RenewDeadline: 10 * time.Second,
		RetryPeriod:   2 * time.Second,
	}.WithSlack(UnitSlack)
}

// FastUnitTiming is the short scheduler and controller-manager profile
// (7.5s/2.5s/0.5s), for a takeover in about 8 s plus the component's start
// instead of 15 s plus it. It keeps UnitSlack: the lease is the shortest
// whole half second the safety inequality allows with a 2.5 s renew
// deadline, 2.5·(1+ε)/(1−ε) + (1+ε)·4.5 s = 7.01 s at 1000 ppm, which
// leaves 0.49 s of margin beyond the slack. The renew deadline stays at
// 2.5 s: five heartbeats (every 0.5 s) may be lost in a row before the
// holder lets a running component go, which costs its restart elsewhere.
// A shorter lease needs a smaller UnitSlack, that is a faster kill of the
// unit on a loss (see docs/design.md, "Leader-only components").
func FastUnitTiming() Timing {
	return Timing{
		LeaseDuration: 7500 * time.Millisecond,
		RenewDeadline: 2500 * time.Millisecond,
		RetryPeriod:   500 * time.Millisecond,
	}.WithSlack(UnitSlack)
}

// DefaultRoles returns the default timing of every masterd role.
func DefaultRoles() map[string]Timing {
	return map[string]Timing{
		RoleVIP:               DefaultVIPTiming(),
		RoleScheduler:         DefaultUnitTiming(),
		RoleControllerManager: DefaultUnitTiming(),
	}
}

// RequiredLease is the smallest LeaseDuration that is safe for t under drift
// eps: renewDeadline·(1+ε)/(1−ε) + (1+ε)·(DetectSlack + ReleaseSlack).
func (t Timing) RequiredLease(eps float64) time.Duration {
	r := float64(t.RenewDeadline)*(1+eps)/(1-eps) + (1+eps)*float64(t.DetectSlack+t.ReleaseSlack)
	return time.Duration(r + 1)
}

// TimingProblem is one broken rule of a Timing: Field is the configuration
// key of the duration at fault (leaseDuration, renewDeadline, retryPeriod,
// detectSlack, releaseSlack).
type TimingProblem struct {
	Field string
	Msg   string
}

func (p TimingProblem) Error() string { return p.Field + " " + p.Msg }

// Problems checks client-go's ordering, leaseDuration > renewDeadline >
// 1.2·retryPeriod > 0, and the safety inequality under drift eps, and
// returns every broken rule. The inequality is only checked for a valid
// eps (0 ≤ ε < 0.1; Config.Validate reports another).
func (t Timing) Problems(eps float64) []TimingProblem {
	var ps []TimingProblem
	bad := func(field, format string, args ...any) {
		ps = append(ps, TimingProblem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	positive := true
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"leaseDuration", t.LeaseDuration}, {"renewDeadline", t.RenewDeadline}, {"retryPeriod", t.RetryPeriod}} {
		if f.d <= 0 {
			bad(f.name, "is required and must be positive")
			positive = false
		}
	}
	if t.DetectSlack < 0 {
		bad("detectSlack", "%v must not be negative", t.DetectSlack)
	}
	if t.ReleaseSlack < 0 {
		bad("releaseSlack", "%v must not be negative", t.ReleaseSlack)
	}
	if !positive {
		return ps
	}
	if float64(t.RenewDeadline) <= 1.2*float64(t.RetryPeriod) {
		bad("renewDeadline", "%v must exceed 1.2 × retryPeriod (%v)", t.RenewDeadline, t.RetryPeriod)
	}
	if eps >= 0 && eps < 0.1 {
		if need := t.RequiredLease(eps); t.LeaseDuration < need {
			bad("leaseDuration", "%v is too short: with renewDeadline %v, clock drift %.0f ppm and %v to detect and release, it must be at least %v = renewDeadline·(1+ε)/(1−ε) + (1+ε)·(detectSlack+releaseSlack)",
				t.LeaseDuration, t.RenewDeadline, eps*1e6, t.DetectSlack+t.ReleaseSlack, need.Round(time.Millisecond))
		}
	} else if t.LeaseDuration <= t.RenewDeadline {
		bad("leaseDuration", "%v must exceed renewDeadline (%v)", t.LeaseDuration, t.RenewDeadline)
	}
	return ps
}

// Validate reports every problem of Problems at once.
func (t Timing) Validate(eps float64) error {
	var errs []error
	for _, p := range t.Problems(eps) {
		errs = append(errs, p)
	}
	return errors.Join(errs...)
}
