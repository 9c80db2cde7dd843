package fence

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig("eth0", netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateReportsEveryProblemByField(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.5")
	c := Config{Table: "9bad-name", Interface: "", VIPs: []netip.Addr{a, a, netip.MustParseAddr("::ffff:10.0.0.6")}, CheckInterval: time.Millisecond}
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"table:", "interface:", "vips[1]:", "vips[2]:", "checkInterval:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if err := (Config{Table: "t", Interface: "eth0", CheckInterval: time.Second}).Validate(); err == nil || !strings.Contains(err.Error(), "vips:") {
		t.Errorf("no VIPs: %v, want a vips error", err)
	}
}
