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

// vipComponent holds the floating address while this node leads the vip role
// and, with vip.fence, keeps the nftables fence armed only while the lease is.
type vipComponent struct {
	n     *node
	m     *vip.Manager
	f     *fence.Fence
	iface string

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
	// A previous run may have died holding the VIP: it is not ours until the
	// election says so.
	if err := m.Cleanup(ctx); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if cfg.VIP.Fence {
		iface := cfg.VIP.Interface
		if iface == "" {
			if iface, err = interfaceFor(cfg.VIP.Address); err != nil {
				cancel()
				return err
			}
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
			// A repaired fence means traffic may have been dropped or let
			// through: announce again so no client keeps a stale MAC.
			f.Run(runCtx, func() {
				if m.Owned() {
					m.Reannounce()
				}
			})
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

// interfaceFor returns the interface holding an address whose prefix
// contains a.
func interfaceFor(a netip.Addr) (string, error) {
	family := netlink.FAMILY_V4
	if a.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(nil, family)
	if err != nil {
		return "", fmt.Errorf("vip: list addresses: %w", err)
	}
	for _, ad := range addrs {
		if ad.IPNet != nil && ad.IPNet.Contains(a.AsSlice()) {
			if l, err := netlink.LinkByIndex(ad.LinkIndex); err == nil {
				return l.Attrs().Name, nil
			}
		}
	}
	return "", fmt.Errorf("vip: no interface has a subnet holding %s; set vip.interface", a)
}

func (c *vipComponent) acquire(ctx context.Context, term uint64) {
	if err := c.m.Acquire(ctx); err != nil {
		c.n.log.Error("vip acquire failed", "component", "vip", "term", term, "err", err)
	}
}

func (c *vipComponent) release(ctx context.Context, term uint64) error {
	var errs []error
	if c.f != nil {
		if err := c.f.Disarm(c.n.cfg.VIP.Address); err != nil {
			errs = append(errs, fmt.Errorf("fence disarm: %w", err))
		}
	}
	if err := c.m.Release(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *vipComponent) renewed(term uint64, deadline time.Time) {
	if c.f != nil {
		end := deadline.Add(-fenceMargin)
		if time.Until(end) > 0 {
			if err := c.f.ArmUntil(c.n.cfg.VIP.Address, end); err != nil {
				c.n.log.Error("fence arm failed", "component", "vip", "err", err)
			}
		}
	}
	if c.m.Owned() {
		if err := c.m.Refresh(); err != nil {
			c.n.log.Warn("vip refresh failed", "component", "vip", "err", err)
		}
	}
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
	if cerr := c.m.Close(); err == nil {
		err = cerr
	}
	return err
}

type vipStatus struct {
	Address string `json:"address"`
	Owned   bool   `json:"owned"`
	Fence   bool   `json:"fence"`
}

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
