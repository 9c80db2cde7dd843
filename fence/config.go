package fence

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"time"
)

// Config names the fence's tables and what it guards.
type Config struct {
	// Table is the name of the arp, netdev and inet tables the fence owns.
	Table string
	// Interface carries the VIPs; the netdev egress chain hooks it.
	Interface string
	// VIPs are the addresses fenced (IPv4 and/or IPv6, not 4-in-6 mapped).
	VIPs []netip.Addr
	// CheckInterval is how often Run checks that the fence is present.
	CheckInterval time.Duration
}

// DefaultTable is the default name of the fence's tables: one name for all
// three families; `nft list tables` shows whose.
const DefaultTable = "masterd_fence"

// DefaultConfig returns the defaults for vips on interface iface.
func DefaultConfig(iface string, vips ...netip.Addr) Config {
	return Config{
		Table:     DefaultTable,
		Interface: iface,
		VIPs:      vips,
		// A flushed ruleset leaves the holder unfenced until the next
		// check: a second bounds that window without measurable cost (a
		// check is a handful of netlink dumps).
		CheckInterval: time.Second,
	}
}

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Validate reports every problem of c at once. It changes nothing.
func (c Config) Validate() error {
	var errs []error
	if !tableName.MatchString(c.Table) {
		errs = append(errs, fmt.Errorf("table: %q must be 1-63 letters, digits or _, not starting with a digit", c.Table))
	}
	if c.Interface == "" || len(c.Interface) > 15 {
		errs = append(errs, fmt.Errorf("interface: %q must be 1-15 bytes", c.Interface))
	}
	if len(c.VIPs) == 0 {
		errs = append(errs, errors.New("vips: at least one address"))
	}
	seen := map[netip.Addr]bool{}
	for i, a := range c.VIPs {
		switch {
		case !a.IsValid() || a.Is4In6() || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast():
			errs = append(errs, fmt.Errorf("vips[%d]: %v is not a plain unicast IPv4 or IPv6 address", i, a))
		case seen[a]:
			errs = append(errs, fmt.Errorf("vips[%d]: %v listed twice", i, a))
		}
		seen[a] = true
	}
	if c.CheckInterval < 10*time.Millisecond || c.CheckInterval > time.Hour {
		errs = append(errs, fmt.Errorf("checkInterval: %s outside [10ms, 1h]", c.CheckInterval))
	}
	return errors.Join(errs...)
}
