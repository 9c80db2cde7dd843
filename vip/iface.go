package vip

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// ResolveInterface returns the link that carries the VIP a: the one named
// (when name is not empty), or the one holding the most specific other
// prefix that contains a (the first such address listed on a tie). A
// host-length prefix (/32, /128, the VIP itself when held) never counts.
// This is the one rule: the Manager adds and announces the VIP where it
// points, and the agent installs the fence there (Manager.Interface).
//
// h is the netlink handle of the namespace to look in; nil means the calling
// thread's.
func ResolveInterface(h *netlink.Handle, name string, a netip.Addr) (netlink.Link, error) {
	if h == nil {
		h = &netlink.Handle{}
	}
	if name != "" {
		link, err := h.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("vip: find interface %s: %w", name, err)
		}
		return link, nil
	}
	family := netlink.FAMILY_V4
	if a.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := h.AddrList(nil, family)
	if err != nil {
		return nil, fmt.Errorf("vip: list addresses: %w", err)
	}
	index, ok := mostSpecific(addrs, a)
	if !ok {
		return nil, fmt.Errorf("vip: no interface has a prefix containing %s: set interface", a)
	}
	link, err := h.LinkByIndex(index)
	if err != nil {
		return nil, fmt.Errorf("vip: find interface %d: %w", index, err)
	}
	return link, nil
}

// mostSpecific returns the link index of the address whose prefix, shorter
// than a host's, contains a with the most bits; the first listed on a tie.
func mostSpecific(addrs []netlink.Addr, a netip.Addr) (index int, ok bool) {
	bestBits := -1
	for _, ad := range addrs {
		p, valid := netipPrefix(ad.IPNet)
		if !valid || p.Bits() >= a.BitLen() || !p.Contains(a) {
			continue
		}
		if p.Bits() > bestBits {
			index, bestBits = ad.LinkIndex, p.Bits()
		}
	}
	return index, bestBits >= 0
}
