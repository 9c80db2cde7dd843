package agent

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/masterd/masterd/lb"
)

// lbComponent balances VIP:port over every master's ready kube-apiserver. It
// listens on every master (bound with IP_FREEBIND before the VIP arrives);
// only the VIP holder receives traffic.
type lbComponent struct {
	n      *node
	b      *lb.Balancer
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (c *lbComponent) Name() string { return "lb" }

func (c *lbComponent) Start(ctx context.Context) error {
	cfg := c.n.cfg
	if c.n.files == nil {
		return errors.New("lb: no certificates (pki did not start)")
	}
	lc := lb.DefaultConfig()
	lc.Listen = netip.AddrPortFrom(cfg.VIP.Address, uint16(cfg.VIP.Balancer.Port))
	for _, p := range cfg.Peers {
		lc.Backends = append(lc.Backends, lb.Backend{Name: p.Name, Address: netip.AddrPortFrom(p.Address, uint16(cfg.Kubernetes.APIServerPort))})
	}
	lc.HealthCheck.CAFile = c.n.files.KubeCA.Cert
	lc.MaxConns = cfg.VIP.Balancer.MaxConnections
	lc.MaxConnsPerSource = cfg.VIP.Balancer.MaxConnectionsPerSource
	b, err := lb.New(lc, c.n.reg, c.n.log)
	if err != nil {
		return err
	}
	c.b = b
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := b.Run(runCtx); err != nil && runCtx.Err() == nil {
			c.n.log.Error("balancer stopped", "component", "lb", "err", err)
		}
	}()
	return nil
}

// peerDown takes the backend of a master the election reports dead or cut
// off out of rotation at once (lb.MarkDown): no client of the VIP waits out
// a dial to it. It comes back after passing health checks. It runs on the
// election loop and does not block.
func (c *lbComponent) peerDown(peer, reason string) {
	if c.b == nil || peer == c.n.cfg.Name {
		return
	}
	c.b.MarkDown(peer, "election reports the master down: "+reason)
}

// drainTimeout bounds how long a graceful stop waits for the balancer's
// proxied connections before it hands the VIP over (long watches never end
// by themselves: their clients reconnect).
const drainTimeout = time.Second

// drain waits up to drainTimeout for a moment with no proxied connection.
func (c *lbComponent) drain(ctx context.Context) {
	if c.b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	t := time.Now()
	left := c.b.Drain(ctx)
	c.n.log.Info("balancer drained before the VIP handover", "component", "lb", "open", left, "seconds", time.Since(t).Seconds())
}

func (c *lbComponent) Stop(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
	}
	var err error
	if c.b != nil {
		err = c.b.Close()
	}
	c.wg.Wait()
	return err
}

func (c *lbComponent) Status() any {
	if c.b == nil {
		return []lb.BackendStatus{}
	}
	return c.b.Status()
}

// setMasters makes the balancer's backends follow the membership record:
// every master of it (both sets while a change runs), each at its
// apiserver port. Before the balancer runs, or with a record that names no
// master, nothing changes.
func (c *lbComponent) setMasters(r MembershipRecord) {
	if c.b == nil || len(r.all()) == 0 {
		return
	}
	var bs []lb.Backend
	for _, name := range slices.Sorted(maps.Keys(r.all())) {
		a, err := netip.ParseAddr(r.all()[name])
		if err != nil {
			c.n.log.Warn("membership record: bad address, not balanced", "component", "lb", "master", name, "address", r.all()[name])
			continue
		}
		bs = append(bs, lb.Backend{Name: name, Address: netip.AddrPortFrom(a, uint16(c.n.cfg.Kubernetes.APIServerPort))})
	}
	if err := c.b.SetBackends(bs); err != nil && !errors.Is(err, lb.ErrClosed) {
		c.n.log.Warn("balancer backends not changed", "component", "lb", "err", err)
	}
}
