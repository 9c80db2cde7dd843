package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/masterd/masterd/election"
)

// roleHandler acts on one role's lease: the VIP, or a leader-only unit. The
// election driver calls it serially per role (see election.Callbacks).
type roleHandler interface {
	// acquire runs when this node starts holding the role under term. ctx
	// is cancelled when the term is lost, before release is called: work
	// acquire starts for the term may run under it.
	acquire(ctx context.Context, term uint64)
	// release must let the role go completely (VIP deleted, unit dead) and
	// verify it before it returns nil; the driver sends Release only then.
	// ctx ends at the role's release slack. On failure it escalates before
	// returning the error (no Release is sent; the lease ends by expiry).
	release(ctx context.Context, term uint64) error
	// renewed runs on each validated renewal with the lease deadline.
	renewed(term uint64, deadline time.Time)
}

// healthSource reports whether this node is fit to hold a role; the election
// ranks healthy candidates first.
type healthSource func(ctx context.Context) error

// electionComponent runs the quorum-lease elections over memberlist and
// dispatches role changes to the handlers.
type electionComponent struct {
	n        *node
	handlers map[string]roleHandler
	health   map[string]healthSource
	d        *election.Driver
	// beforeHandover, if set, runs in a graceful stop while this node still
	// holds the VIP, right before the roles are handed over (the balancer
	// drains its proxied connections).
	beforeHandover func(ctx context.Context)
	// peerDown, if set, gets the election's report that a master died or
	// was cut off (the balancer marks its backend down); it must not block.
	peerDown func(peer, reason string)
	// holding is the roles this node holds now (role → true), kept by the
	// callbacks for components that act on it (etcd's leader placement).
	holding sync.Map

	cancel context.CancelFunc
	wg     sync.WaitGroup

	probeMu sync.Mutex
	probing bool
}

func (c *electionComponent) Name() string { return "election" }

// healthInterval is how often role eligibility is re-evaluated.
const healthInterval = time.Second

func (c *electionComponent) driverConfig() election.DriverConfig {
	cfg := c.n.cfg
	dc := election.DefaultDriverConfig()
	dc.Name = cfg.Name
	dc.BindAddr = cfg.Address.String()
	dc.BindPort = cfg.Gossip.Port
	dc.AdvertiseAddr = cfg.Address.String()
	dc.AdvertisePort = cfg.Gossip.Port
	for _, p := range cfg.Peers {
		dc.Peers = append(dc.Peers, election.Peer{Name: p.Name, Addr: net.JoinHostPort(p.Address.String(), strconv.Itoa(cfg.Gossip.Port))})
	}
	if c.n.secret != nil {
		// The keyring applied last (keys.go); etcd's record updates it.
		keys, err := c.n.gossipKeys()
		if err != nil {
			c.n.log.Warn("gossip keyring state unusable; starting with the cluster secret's key", "component", "gossip-keys", "err", err)
			keys = c.n.secret.GossipKeys
		}
		dc.Keys = keys
	}
	dc.Label = cfg.Gossip.ClusterName
	dc.StateDir = c.n.electionDir()
	dc.Roles = cfg.ElectionRoles()
	dc.Drift = float64(cfg.Election.ClockDriftPPM) / 1e6
	dc.Priority = cfg.Priority
	dc.Logger = c.n.log
	dc.Registerer = c.n.reg
	return dc
}

func (c *electionComponent) Start(ctx context.Context) error {
	if c.n.secret == nil {
		return errors.New("election: no cluster secret (pki did not start)")
	}
	// Every role starts ineligible until its first health check passes.
	roleCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	call := func(role string, f func(h roleHandler)) {
		if h, ok := c.handlers[role]; ok {
			f(h)
		}
	}
	d, err := election.NewDriver(c.driverConfig(), election.Callbacks{
		OnStartedLeading: func(ctx context.Context, role string, term uint64) {
			c.holding.Store(role, true)
			call(role, func(h roleHandler) { h.acquire(ctx, term) })
		},
		OnStoppedLeading: func(ctx context.Context, role string, term uint64) error {
			c.holding.Delete(role)
			var err error
			call(role, func(h roleHandler) { err = h.release(ctx, term) })
			return err
		},
		OnRenewed: func(role string, term uint64, deadline time.Time) {
			call(role, func(h roleHandler) { h.renewed(term, deadline) })
		},
		OnPeerDown: func(peer, reason string) {
			if c.peerDown != nil {
				c.peerDown(peer, reason)
			}
		},
	})
	if err != nil {
		cancel()
		return err
	}
	c.d = d
	// A lapsed kernel fence under a held VIP hands the role over: the
	// lapsed term's element is never re-added (see vipComponent).
	if v, ok := c.handlers[RoleVIP].(*vipComponent); ok {
		v.setStepDown(d.StepDown)
	}
	c.evaluateHealth(ctx)
	if err := d.Start(ctx); err != nil {
		cancel()
		return fmt.Errorf("election: %w", err)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(healthInterval)
		defer t.Stop()
		for {
			select {
			case <-roleCtx.Done():
				return
			case <-t.C:
				c.evaluateHealth(roleCtx)
			}
		}
	}()
	return nil
}

// holds reports whether this node holds role now (between its acquire and
// the start of its release).
func (c *electionComponent) holds(role string) bool {
	_, ok := c.holding.Load(role)
	return ok
}

// evaluateHealth feeds each role's eligibility to the driver, in one health
// round (healthround.go: the check the roles share runs once).
func (c *electionComponent) evaluateHealth(ctx context.Context) {
	ctx = withHealthRound(ctx)
	for role := range c.n.cfg.RoleTimings() {
		ok := true
		if h, found := c.health[role]; found {
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			err := h(cctx)
			cancel()
			ok = err == nil
		}
		c.d.SetHealthy(role, ok)
	}
}

// Stop hands every held role over (graceful), then leaves the gossip cluster.
func (c *electionComponent) Stop(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.d == nil {
		return nil
	}
	if c.beforeHandover != nil && c.d.Status().Roles[RoleVIP].Leader {
		c.beforeHandover(ctx)
	}
	return c.d.Stop(ctx)
}

// electionStatus is the election's section of /status (status.go).
type electionStatus = ElectionStatus

func (c *electionComponent) Status() any {
	if c.d == nil {
		return electionStatus{}
	}
	st := c.d.Status()
	return electionStatus{Roles: st.Roles, Members: st.Members, Membership: st.Membership, EpochFloor: st.EpochFloor, Settled: st.Settled}
}

// livenessTimeout is how long the election loop may take to answer before the
// process is considered hung: systemd's watchdog then restarts it (and
// ExecStopPost= removes the VIP), and /healthz fails.
const livenessTimeout = 2 * time.Second

// Live reports whether the election loop still runs: it must answer a status
// request within livenessTimeout. A loop that is stuck also no longer checks
// its lease deadlines, so this is what "hung" means for masterd. At most one
// probe is in flight; while one is stuck, Live fails at once.
func (c *electionComponent) Live() error {
	if c.d == nil {
		return nil
	}
	c.probeMu.Lock()
	if c.probing {
		c.probeMu.Unlock()
		return errors.New("election loop does not answer")
	}
	c.probing = true
	c.probeMu.Unlock()
	done := make(chan struct{})
	go func() {
		c.d.Status()
		c.probeMu.Lock()
		c.probing = false
		c.probeMu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(livenessTimeout):
		return fmt.Errorf("election loop did not answer within %s", livenessTimeout)
	}
}
