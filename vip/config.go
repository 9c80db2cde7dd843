package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Config describes the VIP this node may hold.
type Config struct {
	// Address is the floating address (IPv4 or IPv6, not 4-in-6 mapped).
	Address netip.Addr
	// Interface carries the VIP. Empty: the interface holding another
	// address whose prefix contains Address, looked up at each Acquire.
	Interface string
	// Announce lists when to send gratuitous ARP / unsolicited NA, as
	// offsets from the move (Acquire or Reannounce), ascending.
	Announce []time.Duration
	// ValidLifetime is the valid_lft the VIP is added with and that Refresh
	// renews; the kernel removes the address when it runs out. Whole
	// seconds (the kernel's unit), rounded up.
	ValidLifetime time.Duration
	// ConflictProbeInterval is how often, while holding, an ARP probe or
	// DAD-style neighbour solicitation asks whether another host answers
	// for the VIP. Zero disables active probing; ARP and NA seen passively
	// are still checked.
	ConflictProbeInterval time.Duration
	// Announcer tells the network where the VIP is. Nil: gratuitous ARP or
	// unsolicited NAs at the offsets of Announce (NewNeighbourAnnouncer).
	Announcer Announcer
}

// DefaultConfig returns the defaults for address a.
func DefaultConfig(a netip.Addr) Config {
	return Config{
		Address: a,
		// 0 answers at once; 0.1 and 0.5 cover a lost first frame; 1.2
		// and 2.5 land after the 1 s neighbour locktime of a Linux client
		// whose entry was just refreshed by the previous holder, which
		// otherwise ignores the announcement and stays on a stale MAC.
		Announce: []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond,
			1200 * time.Millisecond, 2500 * time.Millisecond},
		// Long enough that a daemon stall of a few seconds does not drop
		// the VIP under a healthy holder (renewals refresh it every retry
		// period), short enough to bound a hung holder without the fence.
		ValidLifetime: 5 * time.Second,
		// One broadcast a second is negligible traffic and finds a second
		// holder (for example a keepalived left running) within a second.
		ConflictProbeInterval: time.Second,
	}
}

// maxAnnounceOffset bounds the schedule: announcements long after the move
// serve no client and keep a goroutine alive.
const maxAnnounceOffset = time.Minute

// Validate reports every problem of c at once. It changes nothing.
func (c Config) Validate() error {
	var errs []error
	switch {
	case !c.Address.IsValid():
		errs = append(errs, errors.New("address: must be set"))
	case c.Address.Is4In6():
		errs = append(errs, fmt.Errorf("address: %s is 4-in-6 mapped, give the IPv4 form", c.Address))
	case c.Address.IsUnspecified() || c.Address.IsLoopback() || c.Address.IsMulticast() ||
		c.Address.IsLinkLocalUnicast() || c.Address.Zone() != "":
		errs = append(errs, fmt.Errorf("address: %s is not a global or private unicast address", c.Address))
	}
	if len(c.Interface) > 15 {
		errs = append(errs, fmt.Errorf("interface: %q is longer than 15 bytes", c.Interface))
	}
	if len(c.Announce) == 0 {
		errs = append(errs, errors.New("announce: needs at least one offset"))
	}
	for i, d := range c.Announce {
		if d < 0 || d > maxAnnounceOffset {
			errs = append(errs, fmt.Errorf("announce[%d]: %s outside [0, %s]", i, d, maxAnnounceOffset))
		}
		if i > 0 && d < c.Announce[i-1] {
			errs = append(errs, fmt.Errorf("announce[%d]: %s before announce[%d] %s, offsets must ascend", i, d, i-1, c.Announce[i-1]))
		}
	}
	if c.ValidLifetime < 2*time.Second || c.ValidLifetime > 24*time.Hour {
		errs = append(errs, fmt.Errorf("validLifetime: %s outside [2s, 24h] (the kernel expires addresses with 1 s granularity)", c.ValidLifetime))
	}
	if c.ConflictProbeInterval != 0 && (c.ConflictProbeInterval < 10*time.Millisecond || c.ConflictProbeInterval > time.Hour) {
		errs = append(errs, fmt.Errorf("conflictProbeInterval: %s outside [10ms, 1h] (0 disables probing)", c.ConflictProbeInterval))
	}
	return errors.Join(errs...)
}

// lifetimeSeconds is the valid_lft sent to the kernel.
func (c Config) lifetimeSeconds() int {
	return int((c.ValidLifetime + time.Second - 1) / time.Second)
}
