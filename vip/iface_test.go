package vip

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// A host with two interfaces whose subnets both hold the VIP: eth0 (listed
// first) a /16, eth1 a /24. The VIP goes on the most specific, eth1, and
// Interface (what the agent hooks the fence on) names the same one; a
// first-match rule would have picked eth0.
func TestTheMostSpecificSubnetPicksTheInterface(t *testing.T) {
	l := newLab(t, 1)
	h := l.Hosts[0]
	h.MustExec("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p")
	h.MustExec("ip", "link", "set", "eth1", "up")
	h.MustExec("ip", "link", "set", "eth1p", "up")
	hd := h.Handle()
	for _, a := range []struct{ link, prefix string }{{"eth0", "10.250.0.1/16"}, {"eth1", "10.250.1.1/24"}} {
		link, err := hd.LinkByName(a.link)
		if err != nil {
			t.Fatal(err)
		}
		p := netip.MustParsePrefix(a.prefix)
		ipn := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
		if err := hd.AddrAdd(link, &netlink.Addr{IPNet: ipn}); err != nil {
			t.Fatalf("add %s to %s: %v", a.prefix, a.link, err)
		}
	}
	vip := netip.MustParseAddr("10.250.1.100")

	// The lab really is one where the two rules differ.
	addrs, err := hd.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	first := ""
	for _, a := range addrs {
		if p, ok := netipPrefix(a.IPNet); ok && p.Bits() < 32 && p.Contains(vip) {
			link, err := hd.LinkByIndex(a.LinkIndex)
			if err != nil {
				t.Fatal(err)
			}
			first = link.Attrs().Name
			break
		}
	}
	if first != "eth0" {
		t.Fatalf("the first address holding the VIP is on %q; the test needs eth0", first)
	}

	link, err := ResolveInterface(hd, "", vip)
	if err != nil || link.Attrs().Name != "eth1" {
		t.Fatalf("ResolveInterface = %v, %v; want eth1", link, err)
	}
	m := newManager(t, h, DefaultConfig(vip), nil)
	if got, err := m.Interface(); err != nil || got != "eth1" {
		t.Fatalf("Interface() = %q, %v; want eth1", got, err)
	}
	if err := m.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Release(context.Background()) })
	eth1, err := hd.LinkByName("eth1")
	if err != nil {
		t.Fatal(err)
	}
	held, err := hd.AddrList(eth1, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range held {
		if p, ok := netipPrefix(a.IPNet); ok && p == netip.PrefixFrom(vip, 32) {
			found = true
		}
	}
	if !found {
		t.Errorf("the VIP is not on eth1 after Acquire: %v", held)
	}
}

func TestResolveInterfaceByNameAndWithoutASubnet(t *testing.T) {
	l := newLab(t, 1)
	hd := l.Hosts[0].Handle()
	if link, err := ResolveInterface(hd, "eth0", netip.MustParseAddr("192.0.2.1")); err != nil || link.Attrs().Name != "eth0" {
		t.Errorf("a named interface is taken as named: %v, %v", link, err)
	}
	if _, err := ResolveInterface(hd, "", netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Error("a VIP outside every subnet resolved")
	}
	if _, err := ResolveInterface(hd, "nope0", netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Error("a missing named interface resolved")
	}
}

func TestMostSpecificIgnoresHostPrefixesAndKeepsTheFirstOnATie(t *testing.T) {
	nl := func(index int, p string) netlink.Addr {
		pp := netip.MustParsePrefix(p)
		return netlink.Addr{LinkIndex: index, IPNet: &net.IPNet{IP: pp.Addr().AsSlice(), Mask: net.CIDRMask(pp.Bits(), pp.Addr().BitLen())}}
	}
	vip := netip.MustParseAddr("10.0.1.5")
	for _, tc := range []struct {
		name  string
		addrs []netlink.Addr
		index int
		ok    bool
	}{
		{"the longest prefix wins", []netlink.Addr{nl(2, "10.0.0.1/16"), nl(3, "10.0.1.1/24"), nl(4, "10.0.0.0/8")}, 3, true},
		{"the VIP itself does not count", []netlink.Addr{nl(2, "10.0.1.5/32"), nl(3, "10.0.0.1/16")}, 3, true},
		{"the first on a tie", []netlink.Addr{nl(5, "10.0.1.1/24"), nl(3, "10.0.1.2/24")}, 5, true},
		{"none holds it", []netlink.Addr{nl(2, "192.168.0.1/24")}, 0, false},
	} {
		if index, ok := mostSpecific(tc.addrs, vip); index != tc.index || ok != tc.ok {
			t.Errorf("%s: got %d, %v; want %d, %v", tc.name, index, ok, tc.index, tc.ok)
		}
	}
}
