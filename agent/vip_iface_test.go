package agent

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/masterd/masterd/internal/nslab"
)

// With vip.interface unset and two interfaces whose subnets hold the VIP
// (eth0's /16 listed first, eth1's /24), the fence hooks the interface the
// VIP is added and announced on, eth1: one resolution for both (a first-match
// lookup of its own once put the fence on eth0).
func TestTheFenceHooksTheInterfaceTheVIPIsOn(t *testing.T) {
	l := nslab.New(t, "agvt", 1)
	h := l.Hosts[0]
	h.MustExec("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p")
	h.MustExec("ip", "link", "set", "eth1", "up")
	h.MustExec("ip", "link", "set", "eth1p", "up")
	h.MustExec("ip", "addr", "add", "10.250.0.1/16", "dev", "eth0")
	h.MustExec("ip", "addr", "add", "10.250.1.1/24", "dev", "eth1")
	a := netip.MustParseAddr("10.250.1.100")
	log, _ := newRecordingLogger()
	c := &vipComponent{n: &node{
		cfg: Config{VIP: VIPConfig{Enabled: true, Address: a, Fence: true}},
		log: log, reg: prometheus.NewRegistry(),
	}}
	h.In(func() error { return c.Start(context.Background()) })
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("stop vip component: %v", err)
		}
	})
	if c.iface != "eth1" {
		t.Fatalf("the fence is on %q, want eth1 (the most specific subnet)", c.iface)
	}
	hold(t, c, 1)
	copies, err := c.vipAddrs()
	if err != nil {
		t.Fatal(err)
	}
	if len(copies) != 1 {
		t.Fatalf("%d copies of the VIP, want 1", len(copies))
	}
	if link, err := h.Handle().LinkByIndex(copies[0].LinkIndex); err != nil || link.Attrs().Name != "eth1" {
		t.Fatalf("the VIP is on %v (%v), want eth1", link, err)
	}
	out := h.MustExec("nft", "list", "table", "netdev", "masterd_fence")
	if !strings.Contains(out, `"eth1"`) || strings.Contains(out, `"eth0"`) {
		t.Errorf("the fence's netdev table does not hook eth1 alone:\n%s", out)
	}
}
