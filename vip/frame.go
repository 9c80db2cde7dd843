package vip

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Frame layouts of the announcements and probes, and the parsers the
// conflict detector applies to frames read from the wire. Parsers never
// trust lengths they have not checked; FuzzParse* exercise them.

const (
	ethHdrLen  = 14
	arpLen     = 28
	ipv6HdrLen = 40

	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd

	arpRequest = 1
	arpReply   = 2

	protoICMPv6    = 58
	icmpv6NS       = 135
	icmpv6NA       = 136
	optSourceLLA   = 1
	optTargetLLA   = 2
	naFlagOverride = 0x20
)

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zeroMAC      = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	allNodes     = netip.MustParseAddr("ff02::1")
)

func putEth(b []byte, dst, src net.HardwareAddr, etherType uint16) {
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], etherType)
}

// arpFrame builds an Ethernet ARP frame. Gratuitous ARP: spa == tpa == VIP,
// broadcast; a probe: spa 0.0.0.0, tha zero, tpa the VIP.
func arpFrame(op uint16, ethDst, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	b := make([]byte, ethHdrLen+arpLen)
	putEth(b, ethDst, sha, etherTypeARP)
	a := b[ethHdrLen:]
	binary.BigEndian.PutUint16(a[0:2], 1) // Ethernet
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], op)
	copy(a[8:14], sha)
	s, t := spa.As4(), tpa.As4()
	copy(a[14:18], s[:])
	copy(a[18:24], tha)
	copy(a[24:28], t[:])
	return b
}

// garpFrames returns the gratuitous ARP request and reply for vip.
func garpFrames(mac net.HardwareAddr, vip netip.Addr) [][]byte {
	return [][]byte{
		arpFrame(arpRequest, broadcastMAC, mac, vip, zeroMAC, vip),
		arpFrame(arpReply, broadcastMAC, mac, vip, broadcastMAC, vip),
	}
}

// arpProbeFrame asks who has vip without claiming it (RFC 5227 probe):
// a host holding vip answers with a unicast reply to mac.
func arpProbeFrame(mac net.HardwareAddr, vip netip.Addr) []byte {
	return arpFrame(arpRequest, broadcastMAC, mac, netip.IPv4Unspecified(), zeroMAC, vip)
}

func multicastMAC(ip netip.Addr) net.HardwareAddr {
	a := ip.As16()
	return net.HardwareAddr{0x33, 0x33, a[12], a[13], a[14], a[15]}
}

func solicitedNode(ip netip.Addr) netip.Addr {
	a := ip.As16()
	s := [16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]}
	return netip.AddrFrom16(s)
}

// icmpv6Frame wraps an ICMPv6 message in IPv6 (hop limit 255, as neighbour
// discovery requires) and Ethernet, filling in the checksum.
func icmpv6Frame(ethDst, ethSrc net.HardwareAddr, src, dst netip.Addr, msg []byte) []byte {
	b := make([]byte, ethHdrLen+ipv6HdrLen+len(msg))
	putEth(b, ethDst, ethSrc, etherTypeIPv6)
	ip := b[ethHdrLen:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(msg)))
	ip[6] = protoICMPv6
	ip[7] = 255
	s, d := src.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	m := ip[ipv6HdrLen:]
	copy(m, msg)
	binary.BigEndian.PutUint16(m[2:4], icmpv6Checksum(s, d, m))
	return b
}

func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(msg)))
	l[7] = protoICMPv6
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// naFrame is the unsolicited neighbour advertisement for vip: to all nodes,
// override flag set, solicited flag clear, target link-layer address mac.
func naFrame(mac net.HardwareAddr, vip netip.Addr) []byte {
	msg := make([]byte, 24+8)
	msg[0] = icmpv6NA
	msg[4] = naFlagOverride
	t := vip.As16()
	copy(msg[8:24], t[:])
	msg[24], msg[25] = optTargetLLA, 1
	copy(msg[26:32], mac)
	return icmpv6Frame(multicastMAC(allNodes), mac, vip, allNodes, msg)
}

// nsProbeFrame is a DAD-style neighbour solicitation for vip (source ::, no
// source link-layer option): a host holding vip answers with an NA to all
// nodes.
func nsProbeFrame(mac net.HardwareAddr, vip netip.Addr) []byte {
	msg := make([]byte, 24)
	msg[0] = icmpv6NS
	t := vip.As16()
	copy(msg[8:24], t[:])
	dst := solicitedNode(vip)
	return icmpv6Frame(multicastMAC(dst), mac, netip.IPv6Unspecified(), dst, msg)
}

// claim is what a received frame says: that mac answers for addr.
type claim struct {
	addr netip.Addr
	mac  net.HardwareAddr
}

// parseARPClaim returns the sender of an Ethernet/IPv4 ARP frame, or
// ok=false for anything else (including probes, whose sender IP is 0).
func parseARPClaim(b []byte) (c claim, ok bool) {
	if len(b) < ethHdrLen+arpLen || binary.BigEndian.Uint16(b[12:14]) != etherTypeARP {
		return claim{}, false
	}
	a := b[ethHdrLen:]
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != etherTypeIPv4 || a[4] != 6 || a[5] != 4 {
		return claim{}, false
	}
	if op := binary.BigEndian.Uint16(a[6:8]); op != arpRequest && op != arpReply {
		return claim{}, false
	}
	spa := netip.AddrFrom4([4]byte(a[14:18]))
	if spa.IsUnspecified() {
		return claim{}, false
	}
	return claim{addr: spa, mac: net.HardwareAddr(append([]byte(nil), a[8:14]...))}, true
}

// parseNAClaim returns the target of an Ethernet/IPv6 neighbour
// advertisement and the MAC it advertises (the target link-layer option,
// else the frame's source MAC). Extension headers are not followed: ND
// messages do not carry them.
func parseNAClaim(b []byte) (c claim, ok bool) {
	if len(b) < ethHdrLen+ipv6HdrLen+24 || binary.BigEndian.Uint16(b[12:14]) != etherTypeIPv6 {
		return claim{}, false
	}
	ip := b[ethHdrLen:]
	if ip[0]>>4 != 6 || ip[6] != protoICMPv6 || ip[7] != 255 {
		return claim{}, false
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	m := ip[ipv6HdrLen:]
	if plen < 24 || plen > len(m) {
		return claim{}, false
	}
	m = m[:plen]
	if m[0] != icmpv6NA || m[1] != 0 {
		return claim{}, false
	}
	c.addr = netip.AddrFrom16([16]byte(m[8:24]))
	c.mac = net.HardwareAddr(append([]byte(nil), b[6:12]...))
	for opts := m[24:]; len(opts) >= 8; {
		l := int(opts[1]) * 8
		if l == 0 || l > len(opts) {
			return claim{}, false
		}
		if opts[0] == optTargetLLA && l >= 8 {
			c.mac = net.HardwareAddr(append([]byte(nil), opts[2:8]...))
		}
		opts = opts[l:]
	}
	return c, true
}
