package election

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
)

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
