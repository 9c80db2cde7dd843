package fence

import (
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The layout of the fence: which table has which sets and chains, and how
// many rules each chain must hold (Check compares against it).

const (
	setVIPs4 = "vips4"
	setLive4 = "live4"
	setVIPs6 = "vips6"
	setLive6 = "live6"

	nfARPOut = 1 // NF_ARP_OUT; golang.org/x/sys/unix lacks it

	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	icmpv6NA      = 136
)

type chainSpec struct {
	name  string
	rules int
}

type tableSpec struct {
	family nftables.TableFamily
	v6     bool // has vips6/live6 besides vips4/live4
	chains []chainSpec
}

var layout = []tableSpec{
	{family: nftables.TableFamilyARP, chains: []chainSpec{{"output", 1}}},
	{family: nftables.TableFamilyNetdev, v6: true, chains: []chainSpec{{"egress", 2}}},
	{family: nftables.TableFamilyINet, v6: true, chains: []chainSpec{{"input", 2}, {"output", 3}}},
}

func (ts tableSpec) setNames() []string {
	if ts.v6 {
		return []string{setVIPs4, setLive4, setVIPs6, setLive6}
	}
	return []string{setVIPs4, setLive4}
}

// liveSet names the live set holding a.
func liveSet(a netip.Addr) string {
	if a.Is4() {
		return setLive4
	}
	return setLive6
}

func key(a netip.Addr) []byte { return a.AsSlice() }

type sets struct{ vips4, live4, vips6, live6 *nftables.Set }

// addTable queues, on cc, the atomic replacement of one table: the table is
// created if missing, deleted, and created again with its sets (vips filled
// from vips, live from live with the given remaining timeouts, all >= 1 ms)
// and chains. Nothing takes effect before cc.Flush.
func addTable(cc *nftables.Conn, ts tableSpec, name, iface string, vips []netip.Addr, live map[netip.Addr]time.Duration) {
	t := &nftables.Table{Name: name, Family: ts.family}
	cc.AddTable(t)
	cc.DelTable(t)
	cc.AddTable(t)

	var s sets
	mk := func(n string, typ nftables.SetDatatype, timeout, v4 bool) *nftables.Set {
		set := &nftables.Set{Table: t, Name: n, KeyType: typ, HasTimeout: timeout}
		var elems []nftables.SetElement
		for _, a := range vips {
			if a.Is4() != v4 {
				continue
			}
			if !timeout {
				elems = append(elems, nftables.SetElement{Key: key(a)})
			} else if d, ok := live[a]; ok && d >= time.Millisecond {
				elems = append(elems, nftables.SetElement{Key: key(a), Timeout: d})
			}
		}
		_ = cc.AddSet(set, elems) // errors only for anonymous sets
		return set
	}
	s.vips4 = mk(setVIPs4, nftables.TypeIPAddr, false, true)
	s.live4 = mk(setLive4, nftables.TypeIPAddr, true, true)
	if ts.v6 {
		s.vips6 = mk(setVIPs6, nftables.TypeIP6Addr, false, false)
		s.live6 = mk(setLive6, nftables.TypeIP6Addr, true, false)
	}

	switch ts.family {
	case nftables.TableFamilyARP:
		c := cc.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookRef(nfARPOut), Priority: nftables.ChainPriorityRef(0)})
		// arp saddr ip @vips4 arp saddr ip != @live4 drop
		cc.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: concat(
			load(expr.PayloadBaseNetworkHeader, 14, 4),
			notLive(s.vips4, s.live4))})
	case nftables.TableFamilyNetdev:
		c := cc.AddChain(&nftables.Chain{Name: "egress", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookEgress, Priority: nftables.ChainPriorityRef(0), Device: iface})
		// Offsets from the start of the Ethernet frame: frames sent through
		// packet sockets carry no network header offset the kernel trusts.
		// @ll,96,16 0x0806 @ll,224,32 @vips4 @ll,224,32 != @live4 drop
		cc.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: concat(
			load(expr.PayloadBaseLLHeader, 12, 2), eq([]byte{etherTypeARP >> 8, etherTypeARP & 0xff}),
			load(expr.PayloadBaseLLHeader, 28, 4),
			notLive(s.vips4, s.live4))})
		// IPv6, next header ICMPv6, type NA, target (frame offset 62) fenced
		cc.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: concat(
			load(expr.PayloadBaseLLHeader, 12, 2), eq([]byte{etherTypeIPv6 >> 8, etherTypeIPv6 & 0xff}),
			load(expr.PayloadBaseLLHeader, 20, 1), eq([]byte{unix.IPPROTO_ICMPV6}),
			load(expr.PayloadBaseLLHeader, 54, 1), eq([]byte{icmpv6NA}),
			load(expr.PayloadBaseLLHeader, 62, 16),
			notLive(s.vips6, s.live6))})
	case nftables.TableFamilyINet:
		in := cc.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRaw})
		out := cc.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRaw})
		// meta nfproto ipv4 iifname != "lo" ip daddr @vips4 ip daddr != @live4 drop
		cc.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: concat(
			nfproto(unix.NFPROTO_IPV4), notLoopback(expr.MetaKeyIIFNAME),
			load(expr.PayloadBaseNetworkHeader, 16, 4), notLive(s.vips4, s.live4))})
		cc.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: concat(
			nfproto(unix.NFPROTO_IPV6), notLoopback(expr.MetaKeyIIFNAME),
			load(expr.PayloadBaseNetworkHeader, 24, 16), notLive(s.vips6, s.live6))})
		// meta nfproto ipv4 oifname != "lo" ip saddr @vips4 ip saddr != @live4 drop
		cc.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: concat(
			nfproto(unix.NFPROTO_IPV4), notLoopback(expr.MetaKeyOIFNAME),
			load(expr.PayloadBaseNetworkHeader, 12, 4), notLive(s.vips4, s.live4))})
		cc.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: concat(
			nfproto(unix.NFPROTO_IPV6), notLoopback(expr.MetaKeyOIFNAME),
			load(expr.PayloadBaseNetworkHeader, 8, 16), notLive(s.vips6, s.live6))})
		// meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert @th,64,128 @vips6 ... drop
		cc.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: concat(
			nfproto(unix.NFPROTO_IPV6),
			[]expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}}, eq([]byte{unix.IPPROTO_ICMPV6}),
			load(expr.PayloadBaseTransportHeader, 0, 1), eq([]byte{icmpv6NA}),
			load(expr.PayloadBaseTransportHeader, 8, 16), notLive(s.vips6, s.live6))})
	}
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func load(base expr.PayloadBase, off, n uint32) []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: n}}
}

func eq(b []byte) []expr.Any {
	return []expr.Any{&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b}}
}

func nfproto(p byte) []expr.Any {
	return concat([]expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}}, eq([]byte{p}))
}

func notLoopback(k expr.MetaKey) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, "lo")
	return []expr.Any{&expr.Meta{Key: k, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: name}}
}

// notLive drops when register 1 is in vips and not in live.
func notLive(vips, live *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Lookup{SourceRegister: 1, SetName: vips.Name, SetID: vips.ID},
		&expr.Lookup{SourceRegister: 1, SetName: live.Name, SetID: live.ID, Invert: true},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}
