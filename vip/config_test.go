package vip

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	for _, a := range []string{"10.0.0.5", "fd00::5"} {
		if err := DefaultConfig(netip.MustParseAddr(a)).Validate(); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
}

func TestValidateReportsEveryProblemByField(t *testing.T) {
	c := Config{
		Address:               netip.MustParseAddr("::ffff:10.0.0.5"),
		Interface:             "a-very-long-interface-name",
		Announce:              []time.Duration{time.Second, 0},
		ValidLifetime:         time.Second,
		ConflictProbeInterval: time.Millisecond,
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, field := range []string{"address:", "interface:", "announce[1]:", "validLifetime:", "conflictProbeInterval:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
}

func TestValidateRejectsAddressesThatCannotFloat(t *testing.T) {
	for _, a := range []string{"", "0.0.0.0", "127.0.0.1", "224.0.0.1", "fe80::1", "::"} {
		c := DefaultConfig(netip.Addr{})
		if a != "" {
			c.Address = netip.MustParseAddr(a)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "address:") {
			t.Errorf("%q: %v, want an address error", a, err)
		}
	}
}
