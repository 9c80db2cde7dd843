package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/masterd/masterd/firewall"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// firewallComponent keeps the nftables allow-list of the gossip and etcd
// peer ports in step with the masters: the configured peers, the VIP (a
// master's packets may leave from it) and every address of the membership
// record, the change in progress included, so a master being added is let
// in before it starts. It starts after etcd and follows the record with a
// watch and a periodic read, like the membership component.
type firewallComponent struct {
	n    *node
	etcd *etcdComponent

	fw      *firewall.Firewall
	mu      sync.Mutex
	allowed []netip.Addr
	bg      bgLoop // loop
}

// firewallRefresh is how often the record is re-read besides the watch.
const firewallRefresh = 5 * time.Second

func (c *firewallComponent) Name() string { return "firewall" }

func firewallConfig(cfg Config) firewall.Config {
	f := firewall.DefaultConfig()
	f.TCPPorts = []uint16{uint16(cfg.Gossip.Port), uint16(cfg.Etcd.PeerPort)}
	f.UDPPorts = []uint16{uint16(cfg.Gossip.Port)}
	return f
}

func (c *firewallComponent) Start(ctx context.Context) error {
	if c.n.cfg.Address.IsLoopback() {
		// etcd's peer port and memberlist listen on address only, and the
		// table never filters loopback: nothing to do (and no table in a
		// namespace shared with other processes, as in tests).
		return nil
	}
	fw, err := firewall.New(firewallConfig(c.n.cfg))
	if err != nil {
		return err
	}
	if !c.n.cfg.Firewall.Enabled {
		// A table left by an earlier run with the switch on.
		return fw.Remove()
	}
	c.fw = fw
	var rec *MembershipRecord
	if cli := c.client(); cli != nil {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if r, _, ok, err := ReadMembership(rctx, cli); err == nil && ok {
			rec = &r
		}
		cancel()
	}
	if err := c.apply(rec); err != nil {
		return err
	}
	c.bg.start(c.loop)
	return nil
}

func (c *firewallComponent) client() *clientv3.Client {
	if c.etcd == nil || c.etcd.m == nil {
		return nil
	}
	return c.etcd.m.Client()
}

// allowedAddrs is the allow-list for cfg and the record (nil: not read yet).
func allowedAddrs(cfg Config, rec *MembershipRecord) []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		if a.IsValid() && !slices.Contains(out, a.Unmap()) {
			out = append(out, a.Unmap())
		}
	}
	add(cfg.Address)
	for _, p := range cfg.Peers {
		add(p.Address)
	}
	if cfg.VIP.Enabled {
		add(cfg.VIP.Address)
	}
	if rec != nil {
		addrs := []string{}
		for _, a := range rec.all() {
			addrs = append(addrs, a)
		}
		if rec.Change != nil {
			addrs = append(addrs, rec.Change.Address)
		}
		for _, s := range addrs {
			if a, err := netip.ParseAddr(s); err == nil {
				add(a)
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

// apply installs the allow-list when it changed.
func (c *firewallComponent) apply(rec *MembershipRecord) error {
	want := allowedAddrs(c.n.cfg, rec)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.allowed != nil && slices.Equal(want, c.allowed) {
		return nil
	}
	if err := c.fw.Apply(want); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	c.allowed = want
	c.n.log.Info("firewall allow-list installed", "component", "firewall", "allowed", fmt.Sprint(want))
	return nil
}

func (c *firewallComponent) loop(ctx context.Context) {
	cli := c.client()
	if cli == nil {
		return
	}
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), MembershipKey)
	t := time.NewTicker(firewallRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case resp, ok := <-wch:
			if !ok || resp.Err() != nil {
				wch = cli.Watch(clientv3.WithRequireLeader(ctx), MembershipKey)
			}
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, _, ok, err := ReadMembership(rctx, cli)
		cancel()
		if err != nil || !ok {
			continue
		}
		if err := c.apply(&r); err != nil {
			c.n.log.Error("firewall allow-list not updated", "component", "firewall", "err", err)
		}
	}
}

// Stop removes the table: it exists while masterd runs.
func (c *firewallComponent) Stop(ctx context.Context) error {
	if c.fw == nil {
		return nil
	}
	c.bg.stop()
	return c.fw.Remove()
}

// Status is the allow-list in /status.
func (c *firewallComponent) Status() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.allowed))
	for _, a := range c.allowed {
		out = append(out, a.String())
	}
	return map[string]any{"enabled": c.fw != nil, "allowed": out}
}
