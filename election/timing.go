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
	// UnitSlack: a leader-only component lost by its holder is killed at
	// once, without a SIGTERM grace: a stop job (so systemd does not
	// restart it), SIGKILL to its whole control group through cgroup.kill,
	// and the wait for the group to be empty (units.Supervisor.Stop). The
	// successor hands the component's coordination.k8s.io Lease over, so
	// the component's own graceful exit would buy nothing. Detect 0.5 s: a
	// late deadline timer or a short stall of masterd (five times the
	// VIP's allowance). Release 1 s: the agent's kill wait, 0.5 s from the
	// SIGKILL until the group is empty and systemd reports the unit
	// inactive (agent/kube.go), plus 0.5 s for the four D-Bus round trips
	// around it (ControlGroup read, stop job, reset-failed, the release's
	// read-back of the group) on a loaded host. The whole release takes
	// 17-100 ms on a quiet machine and up to 0.36 s at a load average of
	// 6-17 (units and agent lab tests).
	UnitSlack = Slack{Detect: 500 * time.Millisecond, Release: 1 * time.Second}
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

// DefaultUnitTiming is the scheduler and controller-manager profile,
// 3.5s/1.5s/0.3s: a takeover after a crash takes the lease plus the
// component's start-up (about 5 s), instead of kube's own 15 s plus it.
// Its slack is UnitSlack (0.5 s to detect, 1 s to kill the unit's control
// group). The lease is the shortest whole half second the safety
// inequality allows with a 1.5 s renew deadline: 1.5 s·(1+ε)/(1−ε) +
// (1+ε)·1.5 s = 3.005 s at 1000 ppm, which leaves 0.495 s of margin beyond
// the slack. The renew deadline is five retry periods: a holder keeps a
// running component through three heartbeats (every 0.3 s) lost in a row,
// and lets it go (which costs its restart elsewhere) after 1.5 s without
// a quorum's acknowledgement. The components' own --leader-elect timing
// does not follow this one: it stays at kube's 15s/10s/2s
// (units.DefaultKubeConfig), since the successor hands their Lease over.
func DefaultUnitTiming() Timing {
	return Timing{
		LeaseDuration: 3500 * time.Millisecond,
		RenewDeadline: 1500 * time.Millisecond,
		RetryPeriod:   300 * time.Millisecond,
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
