package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/masterd/masterd/fence"
	"github.com/masterd/masterd/vip"
	"github.com/vishvananda/netlink"
)

// fenceMargin is how much earlier than the lease deadline the kernel fence
// silences the VIP: the fence must expire strictly before another master's
// lease can start, and the kernel's timer may fire up to one jiffy early or
// late.
const fenceMargin = 10 * time.Millisecond

// escalateTimeout bounds the vip.Manager step of an escalated release; it
// runs past the release's own deadline if it must (the lease then ends by
// expiry, but the address must still go).
const escalateTimeout = time.Second

// vipComponent holds the floating address while this node leads the vip role
// and, with vip.fence, keeps the nftables fence armed only while the lease is.
type vipComponent struct {
	n     *node
	m     *vip.Manager
	f     *fence.Fence
	iface string
	// nl reads the VIP back and deletes it when a release escalates: a
	// netlink handle of its own, in the namespace Start ran in, so the
	// escalation does not go through the vip.Manager path that just failed.
	nl *netlink.Handle
	// releaseAddr deletes the VIP on release: m.Release unless a test
	// injects a failing step.
	releaseAddr func(ctx context.Context) error

	// mu serialises acquire, release and the fence's Missing/Repaired
	// events, which decide together whether the address is on.
	mu sync.Mutex
	// held: the election says this node holds the vip role (between
	// acquire and release).
	held bool
	// unfenced: the fence is missing (between fence.Events Missing and
	// Repaired). The holder then keeps the VIP off, see fenceMissing.
	unfenced bool
	// term is the term of the last acquisition.
	term uint64
	// armedTerm is the last term whose fence was armed (a first arm that
	// succeeded): later arms in it are refreshes, which never revive a
	// lapsed element, and the address is added only once it is set (see
	// renewed). With the fence, the address is on only in armedTerm.
	armedTerm uint64
	// lapsedTerm is the last term whose fence lapsed under the held role
	// (a refresh found the element expired): in it the fence is not armed
	// again and the address not added again; the role is stepped down.
	lapsedTerm uint64
	// stepDown hands the vip role over at once: the election driver's
	// StepDown, set through setStepDown by the election component once its
	// driver exists. Tests inject their own. Guarded by mu.
	stepDown func(role string) bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (c *vipComponent) Name() string { return "vip" }

func (c *vipComponent) Start(ctx context.Context) error {
	cfg := c.n.cfg
	vc := vip.DefaultConfig(cfg.VIP.Address)
	vc.Interface = cfg.VIP.Interface
	m, err := vip.New(vc, c.n.log, c.n.reg)
	if err != nil {
		return err
	}
	c.m = m
	if c.nl, err = netlink.NewHandle(); err != nil {
		return fmt.Errorf("vip: open netlink: %w", err)
	}
	if c.releaseAddr == nil {
		c.releaseAddr = m.Release
	}
	// A previous run may have died holding the VIP: it is not ours until the
	// election says so.
	if err := m.Cleanup(ctx); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if cfg.VIP.Fence {
		// The fence hooks the interface the manager adds and announces
		// the VIP on: one resolution (vip.ResolveInterface).
		iface, err := m.Interface()
		if err != nil {
			cancel()
			return err
		}
		c.iface = iface
		f, err := fence.New(fence.DefaultConfig(iface, cfg.VIP.Address), c.n.log, c.n.reg)
		if err != nil {
			cancel()
			return err
		}
		if err := f.Install(); err != nil {
			cancel()
			return err
		}
		c.f = f
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			f.Run(runCtx, fence.Events{Missing: c.fenceMissing, Repaired: c.fenceRepaired})
		}()
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := m.Run(runCtx); err != nil && runCtx.Err() == nil {
			c.n.log.Error("vip watch stopped", "component", "vip", "err", err)
		}
	}()
	return nil
}

// setStepDown gives the component the election driver's StepDown, which
// it calls when the fence lapses under the held role. The election
// component calls it after creating its driver, before starting it.
func (c *vipComponent) setStepDown(f func(role string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stepDown = f
}

func (c *vipComponent) acquire(ctx context.Context, term uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = true
	c.term = term
	if c.unfenced {
		c.n.log.Warn("vip not added: the fence is missing, it is added when the fence is repaired", "component", "vip", "term", term)
		return
	}
	if c.f != nil && c.lapsedTerm == term {
		c.n.log.Warn("vip not added: the fence lapsed in this term", "component", "vip", "term", term)
		return
	}
	if c.f != nil && c.armedTerm != term {
		// The first arm of the term failed: the address comes with the
		// first arm that succeeds (renewed), so that a first arm, which
		// creates the element, never has an address to revive.
		c.n.log.Warn("vip not added: the fence is not armed in this term yet, it is added at the first arm", "component", "vip", "term", term)
		return
	}
	if err := c.m.Acquire(ctx); err != nil {
		c.n.log.Error("vip acquire failed", "component", "vip", "term", term, "err", err)
	}
}

// release lets the VIP go and verifies it before it returns nil: the
// fence's element is disarmed and the address is on no interface, both
// read back from the kernel. When a step fails or the read-back finds
// either still there, it escalates (disarm again, delete every copy of the
// address through its own netlink handle), verifies again, and returns an
// error in any case: the driver then sends no Release and the lease ends
// by expiry, which is safe whatever went wrong. The escalation runs even
// when ctx has ended: a late release still must not leave the VIP behind.
func (c *vipComponent) release(ctx context.Context, term uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = false
	var errs []error
	if c.f != nil {
		if err := c.f.Disarm(c.n.cfg.VIP.Address); err != nil {
			errs = append(errs, fmt.Errorf("fence disarm: %w", err))
		}
	}
	if err := c.releaseAddr(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		err := c.verifyReleased()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	failed := errors.Join(errs...)
	c.n.log.Error("vip release failed, escalating", "component", "vip", "term", term, "err", failed)
	eerr := c.escalate()
	if verr := c.verifyReleased(); verr != nil {
		return fmt.Errorf("vip: release term %d: %w; escalated, still not released: %w", term, failed, errors.Join(eerr, verr))
	}
	c.n.log.Warn("vip release escalated: verified released", "component", "vip", "term", term)
	return fmt.Errorf("vip: release term %d: %w (escalated: fence disarmed and address deleted again, verified)", term, failed)
}

// verifyReleased reads back that the VIP is on no interface and, with the
// fence, that its live element is gone.
func (c *vipComponent) verifyReleased() error {
	a := c.n.cfg.VIP.Address
	var errs []error
	if c.f != nil {
		left, err := c.f.Armed(a)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("verify fence: %w", err))
		case left > 0:
			errs = append(errs, fmt.Errorf("verify fence: %s still armed for %s", a, left))
		}
	}
	copies, err := c.vipAddrs()
	if err != nil {
		errs = append(errs, fmt.Errorf("verify address: %w", err))
	}
	for _, ad := range copies {
		errs = append(errs, fmt.Errorf("verify address: %s still on interface %d", a, ad.LinkIndex))
	}
	return errors.Join(errs...)
}

// vipAddrs lists every copy of the VIP on this namespace's interfaces.
func (c *vipComponent) vipAddrs() ([]netlink.Addr, error) {
	a := c.n.cfg.VIP.Address
	family := netlink.FAMILY_V4
	if a.Is6() {
		family = netlink.FAMILY_V6
	}
	all, err := c.nl.AddrList(nil, family)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []netlink.Addr
	for _, ad := range all {
		if ad.IPNet == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(ad.IPNet.IP); ok && ip.Unmap() == a {
			out = append(out, ad)
		}
	}
	return out, nil
}

// escalate disarms the fence again and deletes the VIP again: through
// vip.Manager.Release under a fresh short deadline (which also makes the
// manager stop owning it: its watch would otherwise add back what it sees
// removed), then every copy left through the component's own netlink
// handle.
func (c *vipComponent) escalate() error {
	var errs []error
	if c.f != nil {
		if err := c.f.Disarm(c.n.cfg.VIP.Address); err != nil {
			errs = append(errs, fmt.Errorf("fence disarm: %w", err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), escalateTimeout)
	defer cancel()
	if err := c.m.Release(ctx); err != nil {
		errs = append(errs, err)
	}
	copies, err := c.vipAddrs()
	if err != nil {
		errs = append(errs, err)
	}
	for _, ad := range copies {
		link := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: ad.LinkIndex}}
		if err := c.nl.AddrDel(link, &netlink.Addr{IPNet: ad.IPNet, LinkIndex: ad.LinkIndex}); err != nil {
			errs = append(errs, fmt.Errorf("delete %s from interface %d: %w", ad.IPNet, ad.LinkIndex, err))
		}
	}
	return errors.Join(errs...)
}

// fenceMissing runs when the fence's Run finds the fence (partly) gone, a
// few milliseconds after an `nft flush ruleset` (fence.Run follows
// nftables' change notifications). From then until fenceRepaired nothing
// silences the VIP in the kernel when this holder stalls or dies, and the
// vip timings assume it does (the fast profile's 40 ms release slack is
// only safe because the kernel silences a stalled holder at its deadline).
// The holder therefore drops the address rather than hold it unfenced:
// the gap lasts as long as the repair, a few milliseconds, and the
// election's role is kept (the address comes back in fenceRepaired, or at
// the next acquire). Re-checking the timings against an unfenced profile
// instead would let a stall in that window give two holders.
func (c *vipComponent) fenceMissing(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unfenced = true
	if !c.held {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if rerr := c.releaseAddr(ctx); rerr != nil {
		c.n.log.Error("vip drop failed, escalating", "component", "vip", "err", rerr)
		if eerr := c.escalate(); eerr != nil {
			c.n.log.Error("vip drop escalation failed", "component", "vip", "err", eerr)
		}
	}
	c.n.log.Warn("fence missing: vip dropped until the fence is repaired", "component", "vip", "err", err)
}

// fenceRepaired runs when the fence is back: the VIP is added again (and
// announced) if this node still holds the role; a VIP that was never
// dropped is announced again, since traffic may have been dropped or let
// through meanwhile and clients may keep a stale MAC.
func (c *vipComponent) fenceRepaired() {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.unfenced
	c.unfenced = false
	if !c.held {
		return
	}
	if c.lapsedTerm == c.term || c.armedTerm != c.term {
		// Not armed in this term (yet), or lapsed: the repair re-armed
		// nothing for it, and the address waits for the first arm of a
		// term (renewed).
		c.n.log.Warn("fence repaired: vip not added, the fence is not armed in this term", "component", "vip", "term", c.term)
		return
	}
	if !was {
		c.m.Reannounce()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.m.Acquire(ctx); err != nil {
		c.n.log.Error("vip re-acquire after fence repair failed", "component", "vip", "err", err)
		return
	}
	c.n.log.Info("fence repaired: vip added again", "component", "vip")
}

// renewed arms the fence until the lease deadline minus fenceMargin, on
// the code path that just validated the renewal. The first arm of a term
// is fence.ArmUntil (it creates the element; the address is added only
// after it succeeded, by acquire or here). Every later arm of the term is
// fence.RefreshUntil: one delete+add batch that the kernel aborts when the
// element has already expired, so a refresh delayed past the element's
// end (a stall between computing the timeout and the send) never revives
// the VIP after the lease deadline. Such a refresh means the fence lapsed
// under a role this node still holds: the VIP stays silent for the rest of
// the term (no arm, the address deleted, not added again) and the role is
// stepped down at once (election.Driver.StepDown), to come back only with
// a new term. Other errors are logged; a missing fence is Run's to repair.
func (c *vipComponent) renewed(term uint64, deadline time.Time) {
	c.mu.Lock()
	lapsed := c.renewedLocked(term, deadline)
	stepDown := c.stepDown
	c.mu.Unlock()
	if lapsed {
		c.stepDownLapsed(stepDown, term)
	}
}

// renewedLocked is renewed with mu held; it reports a lapse of the fence
// the role must be stepped down for.
func (c *vipComponent) renewedLocked(term uint64, deadline time.Time) (lapsed bool) {
	if c.f != nil {
		if term == c.lapsedTerm {
			return false
		}
		a := c.n.cfg.VIP.Address
		end := deadline.Add(-fenceMargin)
		if time.Until(end) > 0 {
			first := c.armedTerm != term
			var err error
			if first {
				err = c.f.ArmUntil(a, end)
			} else {
				err = c.f.RefreshUntil(a, end)
			}
			switch {
			case errors.Is(err, fence.ErrExpired):
				c.lapseLocked(term, err)
				return true
			case err != nil:
				c.n.log.Error("fence arm failed", "component", "vip", "term", term, "first", first, "err", err)
			case first:
				c.armedTerm = term
				if c.held && c.term == term && !c.unfenced && !c.m.Owned() {
					// acquire ran before this first successful arm.
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					aerr := c.m.Acquire(ctx)
					cancel()
					if aerr != nil {
						c.n.log.Error("vip acquire at the term's first fence arm failed", "component", "vip", "term", term, "err", aerr)
					} else {
						c.n.log.Info("fence armed: vip added", "component", "vip", "term", term)
					}
				}
			}
		}
	}
	if c.m.Owned() {
		if err := c.m.Refresh(); err != nil {
			c.n.log.Warn("vip refresh failed", "component", "vip", "err", err)
		}
	}
	return false
}

// lapseLocked makes the rest of term silent after its fence lapsed: no
// more arms, the address deleted (the fence already silences it; deleting
// it also stops the manager from owning, re-adding and announcing it).
// Called with mu held.
func (c *vipComponent) lapseLocked(term uint64, err error) {
	c.lapsedTerm = term
	c.n.log.Error("fence lapsed under the held vip role: the vip stays silent for the rest of the term, stepping down",
		"component", "vip", "term", term, "err", err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if rerr := c.releaseAddr(ctx); rerr != nil {
		c.n.log.Error("vip drop after the fence lapsed failed, escalating", "component", "vip", "term", term, "err", rerr)
		if eerr := c.escalate(); eerr != nil {
			c.n.log.Error("vip drop escalation failed", "component", "vip", "term", term, "err", eerr)
		}
	}
}

// stepDownLapsed hands the vip role over after its fence lapsed in term,
// without holding mu: the driver's loop then queues the loss, and release
// runs after the current callback returns.
func (c *vipComponent) stepDownLapsed(stepDown func(role string) bool, term uint64) {
	if stepDown == nil {
		c.n.log.Error("fence lapsed but the vip role cannot be stepped down (no election driver): the vip stays silent until the role is lost",
			"component", "vip", "term", term)
		return
	}
	held := stepDown(RoleVIP)
	c.n.log.Warn("vip role stepped down after its fence lapsed", "component", "vip", "term", term, "held", held)
}

func (c *vipComponent) Stop(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.m == nil {
		return nil
	}
	err := c.m.Release(ctx)
	if c.f != nil {
		c.f.Close()
	}
	if c.nl != nil {
		c.nl.Close()
	}
	if cerr := c.m.Close(); err == nil {
		err = cerr
	}
	return err
}

// vipStatus is the vip section of /status (status.go).
type vipStatus = VIPStatus

func (c *vipComponent) Status() any {
	st := vipStatus{Address: c.n.cfg.VIP.Address.String(), Fence: c.f != nil}
	if c.m != nil {
		st.Owned = c.m.Owned()
	}
	return st
}

// staleFence removes the fence tables a previous configuration may have left
// (vip.fence or vip.enabled turned off since): an installed fence whose VIP is
// no longer armed would keep dropping traffic for that address, also for
// whatever manages it now (keepalived, an external balancer). Failures are
// logged, not fatal: there may be no nftables at all.
type staleFence struct{ n *node }

func (s staleFence) Name() string { return "fence-cleanup" }

func (s staleFence) Start(ctx context.Context) error {
	if err := fence.RemoveTables(fence.DefaultTable); err != nil {
		s.n.log.Warn("stale fence removal failed", "component", "vip", "err", err)
	}
	return nil
}

func (s staleFence) Stop(ctx context.Context) error { return nil }
