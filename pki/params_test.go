package pki

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDefaultParamsWithANodeAreValid(t *testing.T) {
	if err := testParams().Validate(); err != nil {
		t.Fatal(err)
	}
	p := DefaultParams()
	if p.APIServerPort != 6443 || p.ClusterDomain != "cluster.local" || p.RenewBefore != 30*24*time.Hour {
		t.Errorf("defaults %+v", p)
	}
	if err := p.Validate(); err == nil {
		t.Error("defaults without a node name and address validate")
	}
}

func TestValidateReportsEveryProblemNamingTheField(t *testing.T) {
	p := Params{
		NodeName:           "Node_1",
		Peers:              []Peer{{Name: "", Address: netip.IPv4Unspecified()}},
		VIP:                netip.IPv4Unspecified(),
		LocalAPIAddress:    netip.IPv6Unspecified(),
		ServiceCIDR:        netip.MustParsePrefix("10.0.0.1/32"),
		ClusterDomain:      "",
		ExtraAPIServerSANs: []string{"not a name"},
		LeafValidity:       time.Minute,
		RenewBefore:        2 * time.Minute,
	}
	err := p.Validate()
	if err == nil {
		t.Fatal("valid")
	}
	wants := []string{"node name", "node address", "peers[0].name", "peers[0].address", "vip", "local api address",
		"apiserver port", "service cidr 10.0.0.1/32: too small", "cluster domain", "extra apiserver sans[0]",
		"leaf validity", "renew before"}
	for _, w := range wants {
		if !strings.Contains(err.Error(), "pki: "+w) {
			t.Errorf("error lacks %q", w)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(wants) {
		t.Errorf("%d problems reported, want %d:\n%v", n, len(wants), err)
	}
}

func TestFirstServiceIP(t *testing.T) {
	for in, want := range map[string]string{"10.96.0.0/12": "10.96.0.1", "10.96.5.7/12": "10.96.0.1", "fd00:10::/108": "fd00:10::1", "10.0.0.0/30": "10.0.0.1"} {
		got, ok := firstServiceIP(netip.MustParsePrefix(in))
		if !ok || got.String() != want {
			t.Errorf("%s: %v %v, want %s", in, got, ok, want)
		}
	}
}
