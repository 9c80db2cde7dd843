package election

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"
)

// Membership is the voter set of every role's election, numbered by an
// epoch that grows with every change. A change from voter set A to B goes
// through a joint membership (Voters B, Old A, epoch e+1), in which a lease
// needs a majority of A and a majority of B, and only then to B alone
// (epoch e+2). Two consecutive memberships always have intersecting quorums;
// the one rule the caller must keep is when to publish e+2 (see Settled).
//
// Voters in a membership other than the bootstrap one are data agreed by
// the cluster (masterd keeps it in etcd); peers in the configuration file
// only seed epoch 1.
type Membership struct {
	Epoch  uint64   `json:"epoch"`
	Voters []string `json:"voters"`
	// Old is the previous voter set while a change is in progress (joint
	// consensus); empty otherwise.
	Old []string `json:"old,omitempty"`
}

// Joint reports whether m is the intermediate membership of a change.
func (m Membership) Joint() bool { return len(m.Old) > 0 }

// configs returns the voter sets whose majorities a quorum needs.
func (m Membership) configs() [][]string {
	if m.Joint() {
		return [][]string{m.Voters, m.Old}
	}
	return [][]string{m.Voters}
}

// all returns every voter of m (Voters and Old), sorted, once each.
func (m Membership) all() []string {
	vs := append(slices.Clone(m.Voters), m.Old...)
	slices.Sort(vs)
	return slices.Compact(vs)
}

// Validate reports every problem of m.
func (m Membership) Validate() error {
	var errs []error
	if m.Epoch == 0 {
		errs = append(errs, errors.New("membership epoch: must be at least 1"))
	}
	for _, set := range []struct {
		name string
		vs   []string
		need bool
	}{{"voters", m.Voters, true}, {"old", m.Old, false}} {
		if set.need && len(set.vs) == 0 || len(set.vs) > maxVoters {
			errs = append(errs, fmt.Errorf("membership %s: need %d to %d, have %d", set.name, map[bool]int{true: 1}[set.need], maxVoters, len(set.vs)))
		}
		seen := map[string]bool{}
		for _, v := range set.vs {
			if v == "" || len(v) > maxNameLen {
				errs = append(errs, fmt.Errorf("membership %s: name %q must be 1 to %d bytes", set.name, v, maxNameLen))
			}
			if seen[v] {
				errs = append(errs, fmt.Errorf("membership %s: %q listed twice", set.name, v))
			}
			seen[v] = true
		}
	}
	return errors.Join(errs...)
}

// Hash identifies m on the wire: two nodes at one epoch must agree on it.
func (m Membership) Hash() uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|", m.Epoch)
	for _, set := range [][]string{m.Voters, m.Old} {
		vs := slices.Clone(set)
		slices.Sort(vs)
		for _, v := range vs {
			h.Write([]byte(v))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return h.Sum64()
}

func majority(n int) int { return n/2 + 1 }

// hasQuorum reports whether yes holds a majority of every voter set of m.
func (m Membership) hasQuorum(yes func(string) bool) bool {
	for _, c := range m.configs() {
		k := 0
		for _, v := range c {
			if yes(v) {
				k++
			}
		}
		if k < majority(len(c)) {
			return false
		}
	}
	return true
}

// quorumLost reports whether no can no longer be outvoted: in some voter
// set of m, more than a minority said no.
func (m Membership) quorumLost(no func(string) bool) bool {
	for _, c := range m.configs() {
		k := 0
		for _, v := range c {
			if no(v) {
				k++
			}
		}
		if k > len(c)-majority(len(c)) {
			return true
		}
	}
	return false
}

// leaseStart is the latest time t such that voters acknowledging at or
// after t hold a quorum of m: per voter set the majority-th latest
// acknowledged send time, and the earliest of those.
func (m Membership) leaseStart(acked map[string]time.Duration) (time.Duration, bool) {
	start := time.Duration(1<<62 - 1)
	for _, c := range m.configs() {
		ts := make([]time.Duration, 0, len(c))
		for _, v := range c {
			if t, ok := acked[v]; ok {
				ts = append(ts, t)
			}
		}
		q := majority(len(c))
		if len(ts) < q {
			return 0, false
		}
		slices.Sort(ts)
		start = min(start, ts[len(ts)-q])
	}
	return start, true
}

// SetMembership adopts m if its epoch is above the current one, at local
// time now. A leader keeps the deadline it has (its quorum intersects every
// quorum of m, since m follows its membership); renewals are counted under m
// from now on. It returns an error for a malformed m or one that does not
// contain this node; an older or equal epoch is ignored.
func (n *Node) SetMembership(now time.Duration, m Membership) error {
	n.now = max(n.now, now)
	if err := m.Validate(); err != nil {
		return fmt.Errorf("election: %w", err)
	}
	if m.Epoch <= n.mem.Epoch {
		return nil
	}
	if !slices.Contains(m.all(), n.cfg.ID) {
		return fmt.Errorf("election: membership epoch %d does not contain %s", m.Epoch, n.cfg.ID)
	}
	n.adopt(m)
	n.memSince = n.now
	n.memDirty = true
	return nil
}

func (n *Node) adopt(m Membership) {
	m.Voters, m.Old = slices.Clone(m.Voters), slices.Clone(m.Old)
	n.mem = m
	n.memHash = m.Hash()
	n.floor = max(n.floor, m.Epoch)
	clear(n.voters)
	for _, v := range m.all() {
		n.voters[v] = true
	}
}

// Membership returns the membership this node counts quorums with, and the
// highest epoch it knows to exist (above Epoch while this node is stale: it
// then campaigns for nothing until given the newer membership).
func (n *Node) Membership() (m Membership, floor uint64) {
	m = n.mem
	m.Voters, m.Old = slices.Clone(m.Voters), slices.Clone(m.Old)
	return m, n.floor
}

// Settled reports whether this node has counted quorums under epoch e (or
// later) for at least one longest lease, with drift, at local time now:
// every promise it gave to a node of an older membership has run out. The
// caller that publishes memberships must not publish the epoch after a joint
// membership e until a quorum of e reports Settled(e): then no quorum of the
// membership before e can form any more, and only consecutive memberships
// — whose quorums intersect — are ever active at once.
//
// A node still learning its terms (started without state) is not settled:
// a change must not remove the voters whose state it would learn from.
func (n *Node) Settled(now time.Duration, e uint64) bool {
	for _, r := range n.roles {
		if r.learning {
			return false
		}
	}
	return n.mem.Epoch >= e && n.floor == n.mem.Epoch &&
		now-n.memSince >= time.Duration(float64(n.maxLease())*(1+2*n.cfg.Drift))
}
