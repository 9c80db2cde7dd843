package election

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"
)

// Timing is one role's lease timing. Every duration is measured on the local
// monotonic clock of the node that applies it.
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

// DefaultVIPTiming is the default vip profile: about one second failover and
// tolerant of daemon stalls of a few hundred milliseconds (the kernel fence
// bounds what a stalled holder can do). The 200ms release slack covers
// deleting the address plus a late deadline timer.
func DefaultVIPTiming() Timing {
	return Timing{
		LeaseDuration: 800 * time.Millisecond,
		RenewDeadline: 500 * time.Millisecond,
		RetryPeriod:   100 * time.Millisecond,
		DetectSlack:   100 * time.Millisecond,
		ReleaseSlack:  150 * time.Millisecond,
	}
}

// FastVIPTiming is the `fast` vip profile (about 0.25 s lease). Its slack is
// small because the nftables fence silences the VIP at the lease deadline in
// the kernel, whatever the daemon does; the agent must refuse this profile
// unless the fence is installed.
func FastVIPTiming() Timing {
	return Timing{
		LeaseDuration: 250 * time.Millisecond,
		RenewDeadline: 150 * time.Millisecond,
		RetryPeriod:   30 * time.Millisecond,
		DetectSlack:   40 * time.Millisecond,
		ReleaseSlack:  40 * time.Millisecond,
	}
}

// DefaultUnitTiming is the scheduler and controller-manager profile, the same
// 15s/10s/2s as kube's own --leader-elect defaults: a leader-only unit
// restarting is expensive, so these roles favour stability over fast failover.
// The 4s release slack covers killing the unit's control group (SIGKILL after
// a short grace).
func DefaultUnitTiming() Timing {
	return Timing{
		LeaseDuration: 15 * time.Second,
		RenewDeadline: 10 * time.Second,
		RetryPeriod:   2 * time.Second,
		DetectSlack:   500 * time.Millisecond,
		ReleaseSlack:  4 * time.Second,
	}
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

// Validate checks the ordering leaseDuration > renewDeadline > retryPeriod and
// the safety inequality, reporting every problem at once.
func (t Timing) Validate(eps float64) error {
	var errs []error
	if t.RetryPeriod <= 0 {
		errs = append(errs, fmt.Errorf("retryPeriod %v: must be positive", t.RetryPeriod))
	}
	if t.RenewDeadline <= t.RetryPeriod {
		errs = append(errs, fmt.Errorf("renewDeadline %v: must be greater than retryPeriod %v", t.RenewDeadline, t.RetryPeriod))
	}
	if t.LeaseDuration <= t.RenewDeadline {
		errs = append(errs, fmt.Errorf("leaseDuration %v: must be greater than renewDeadline %v", t.LeaseDuration, t.RenewDeadline))
	}
	if t.DetectSlack < 0 {
		errs = append(errs, fmt.Errorf("detectSlack %v: must not be negative", t.DetectSlack))
	}
	if t.ReleaseSlack < 0 {
		errs = append(errs, fmt.Errorf("releaseSlack %v: must not be negative", t.ReleaseSlack))
	}
	if eps >= 0 && eps < 0.1 && t.LeaseDuration < t.RequiredLease(eps) {
		errs = append(errs, fmt.Errorf("leaseDuration %v: must be at least %v = renewDeadline·(1+ε)/(1−ε) + (1+ε)·(detectSlack+releaseSlack) with ε=%g",
			t.LeaseDuration, t.RequiredLease(eps), eps))
	}
	return errors.Join(errs...)
}

// Config configures a Node.
type Config struct {
	// ID is this node's name; it must be one of Voters.
	ID string
	// Voters are the configured masters: the membership of epoch 1, used
	// when Membership is unset. Quorum is len(Voters)/2+1.
	Voters []string
	// Membership, if its Epoch is set, is the latest membership this node
	// knows (persisted from Ready.Membership, or published by the cluster);
	// it replaces Voters. EpochFloor is the persisted Ready.EpochFloor.
	Membership Membership
	EpochFloor uint64
	// Roles maps role name to timing. Roles are independent leases.
	Roles map[string]Timing
	// Drift is ε, the tolerated clock-rate drift (0.001 = 1000 ppm).
	Drift float64
	// Priority orders candidates after health: higher campaigns first.
	Priority int
	// Rand supplies randomness for back-off jitter (injected so the core is
	// deterministic). It must return a uniformly distributed uint64.
	Rand func() uint64

	rules rules // tests only: rules switched off on purpose
}

// DefaultConfig returns a Config for id with the default roles and drift.
func DefaultConfig(id string, voters []string) Config {
	return Config{ID: id, Voters: voters, Roles: DefaultRoles(), Drift: DefaultDrift}
}

const (
	maxNameLen = 64
	maxVoters  = 15
)

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" || len(c.ID) > maxNameLen {
		errs = append(errs, fmt.Errorf("id %q: must be 1 to %d bytes", c.ID, maxNameLen))
	}
	m := c.membership()
	if c.Membership.Epoch == 0 && (len(c.Voters) == 0 || len(c.Voters) > maxVoters) {
		errs = append(errs, fmt.Errorf("voters: need 1 to %d, have %d", maxVoters, len(c.Voters)))
	} else if err := m.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ID != "" && !slices.Contains(m.all(), c.ID) {
		errs = append(errs, fmt.Errorf("id %q: must be one of voters", c.ID))
	}
	if c.Drift < 0 || c.Drift >= 0.1 {
		errs = append(errs, fmt.Errorf("drift %g: must be in [0, 0.1)", c.Drift))
	}
	if len(c.Roles) == 0 {
		errs = append(errs, errors.New("roles: need at least one"))
	}
	for _, name := range sortedKeys(c.Roles) {
		if name == "" || len(name) > maxNameLen {
			errs = append(errs, fmt.Errorf("roles: name %q must be 1 to %d bytes", name, maxNameLen))
		}
		if err := c.Roles[name].Validate(c.Drift); err != nil {
			errs = append(errs, fmt.Errorf("roles.%s: %w", name, err))
		}
	}
	if c.Rand == nil {
		errs = append(errs, errors.New("rand: must be set"))
	}
	return errors.Join(errs...)
}

// membership is the membership the node starts with.
func (c Config) membership() Membership {
	if c.Membership.Epoch > 0 {
		return c.Membership
	}
	return Membership{Epoch: 1, Voters: c.Voters}
}

// ConfigHash is the hash of a role's timing carried by every message of the
// role: nodes drop messages whose hash differs from their own, so nodes
// whose timings differ never count each other's promises. Voter sets are
// not in it: they change by membership epochs (Membership.Hash).
func ConfigHash(role string, t Timing) uint64 {
	h := fnv.New64a()
	h.Write([]byte(role))
	h.Write([]byte{0})
	fmt.Fprintf(h, "%d/%d/%d", t.LeaseDuration, t.RenewDeadline, t.RetryPeriod)
	return h.Sum64()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
