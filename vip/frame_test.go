package vip

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

var testMAC = net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, 0x02}

func TestGratuitousARPFramesClaimTheVIP(t *testing.T) {
	vip := netip.MustParseAddr("10.0.0.5")
	for i, f := range garpFrames(testMAC, vip) {
		if !bytes.Equal(f[0:6], broadcastMAC) {
			t.Errorf("frame %d goes to %x, want broadcast", i, f[0:6])
		}
		c, ok := parseARPClaim(f)
		if !ok || c.addr != vip || !bytes.Equal(c.mac, testMAC) {
			t.Errorf("frame %d parses as %v %v ok=%v", i, c.addr, c.mac, ok)
		}
	}
}

func TestARPProbeClaimsNothing(t *testing.T) {
	if c, ok := parseARPClaim(arpProbeFrame(testMAC, netip.MustParseAddr("10.0.0.5"))); ok {
		t.Fatalf("probe parsed as a claim of %v by %v", c.addr, c.mac)
	}
}

func TestNeighbourAdvertisementClaimsTheVIPWithOverride(t *testing.T) {
	vip := netip.MustParseAddr("fd00::5")
	f := naFrame(testMAC, vip)
	c, ok := parseNAClaim(f)
	if !ok || c.addr != vip || !bytes.Equal(c.mac, testMAC) {
		t.Fatalf("NA parses as %v %v ok=%v", c.addr, c.mac, ok)
	}
	ip := f[ethHdrLen:]
	if ip[ipv6HdrLen+4]&naFlagOverride == 0 {
		t.Error("override flag not set")
	}
	var src, dst [16]byte
	copy(src[:], ip[8:24])
	copy(dst[:], ip[24:40])
	if icmpv6Checksum(src, dst, ip[ipv6HdrLen:]) != 0 {
		t.Error("ICMPv6 checksum does not verify")
	}
}

func TestNeighbourSolicitationProbeIsNotAnAdvertisement(t *testing.T) {
	f := nsProbeFrame(testMAC, netip.MustParseAddr("fd00::5"))
	if _, ok := parseNAClaim(f); ok {
		t.Fatal("NS probe parsed as an advertisement")
	}
	if got := netip.AddrFrom16([16]byte(f[ethHdrLen+24 : ethHdrLen+40])); got != netip.MustParseAddr("ff02::1:ff00:5") {
		t.Errorf("probe sent to %v, want the solicited-node group", got)
	}
}

func FuzzParseARPClaim(f *testing.F) {
	vip := netip.MustParseAddr("10.0.0.5")
	for _, fr := range garpFrames(testMAC, vip) {
		f.Add(fr)
	}
	f.Add(arpProbeFrame(testMAC, vip))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, ok := parseARPClaim(b)
		if ok && (!c.addr.Is4() || len(c.mac) != 6) {
			t.Fatalf("claim %v %v", c.addr, c.mac)
		}
	})
}

func FuzzParseNAClaim(f *testing.F) {
	vip := netip.MustParseAddr("fd00::5")
	f.Add(naFrame(testMAC, vip))
	f.Add(nsProbeFrame(testMAC, vip))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, ok := parseNAClaim(b)
		if ok && (!c.addr.Is6() || len(c.mac) != 6) {
			t.Fatalf("claim %v %v", c.addr, c.mac)
		}
	})
}
