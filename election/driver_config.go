package election

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Peer is one configured voter: its memberlist name and gossip address
// ("host:port", the address election messages are sent to).
type Peer struct {
	Name string
	Addr string
}

// DriverConfig configures a Driver.
type DriverConfig struct {
	// Name is this master's name; it must be unique in the cluster.
	Name string
	// BindAddr and BindPort are where memberlist listens (UDP and TCP).
	BindAddr string
	BindPort int
	// AdvertiseAddr is the address peers reach this node at. Set it
	// explicitly: never the VIP, which moves between masters.
	AdvertiseAddr string
	AdvertisePort int
	// Peers are the voters. This node may be listed or not; the voter set is
	// Peers ∪ {Name} and must be the same on every master.
	Peers []Peer
	// Keys are 32-byte AES keys for gossip encryption and authentication:
	// the first encrypts, all decrypt (key rotation).
	Keys [][]byte
	// Label is the cluster name, bound into every packet, so two clusters on
	// one network never merge.
	Label string
	// StateDir holds the persisted per-role term state (fsync, atomic rename).
	StateDir string
	// Roles maps role name to timing.
	Roles map[string]Timing
	// Drift is ε, the tolerated clock-rate drift.
	Drift float64
	// Priority orders candidates after health (higher first).
	Priority int
	// RejoinInterval is how often configured peers that are not alive members
	// are joined again (heals partitions of the gossip layer).
	RejoinInterval time.Duration
	// Logger receives the driver's and memberlist's logs.
	Logger *slog.Logger
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// DefaultGossipPort is memberlist's customary port.
const DefaultGossipPort = 7946

// DefaultDriverConfig returns the defaults; Name, addresses, Peers, Keys,
// Label and StateDir must still be set.
func DefaultDriverConfig() DriverConfig {
	return DriverConfig{
		// memberlist's well-known port, so firewall rules copied from other
		// memberlist users apply.
		BindPort: DefaultGossipPort,
		// Default timings: vip about 1 s failover, units 3.5s/1.5s/0.3s.
		Roles: DefaultRoles(),
		// 1000 ppm: twice what NTP may slew.
		Drift: DefaultDrift,
		// Gossip heals itself within seconds; a re-join every 5 s bounds how
		// long a healed partition leaves members unseen.
		RejoinInterval: 5 * time.Second,
	}
}

// Validate reports every problem at once.
func (c DriverConfig) Validate() error {
	var errs []error
	if c.Name == "" || len(c.Name) > maxNameLen {
		errs = append(errs, fmt.Errorf("name %q: must be 1 to %d bytes", c.Name, maxNameLen))
	}
	if c.BindAddr == "" || net.ParseIP(c.BindAddr) == nil {
		errs = append(errs, fmt.Errorf("bindAddr %q: must be an IP address", c.BindAddr))
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		errs = append(errs, fmt.Errorf("bindPort %d: must be in [0, 65535]", c.BindPort))
	}
	if ip := net.ParseIP(c.AdvertiseAddr); ip == nil || ip.IsUnspecified() {
		errs = append(errs, fmt.Errorf("advertiseAddr %q: must be a specific IP address (never the VIP)", c.AdvertiseAddr))
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		errs = append(errs, fmt.Errorf("advertisePort %d: must be in [0, 65535]", c.AdvertisePort))
	}
	if len(c.Peers) == 0 {
		errs = append(errs, errors.New("peers: need at least one voter"))
	}
	names := map[string]bool{}
	for i, p := range c.Peers {
		if p.Name == "" || len(p.Name) > maxNameLen {
			errs = append(errs, fmt.Errorf("peers[%d].name %q: must be 1 to %d bytes", i, p.Name, maxNameLen))
		}
		if names[p.Name] {
			errs = append(errs, fmt.Errorf("peers[%d].name %q: listed twice", i, p.Name))
		}
		names[p.Name] = true
		if host, port, err := net.SplitHostPort(p.Addr); err != nil || net.ParseIP(host) == nil {
			errs = append(errs, fmt.Errorf("peers[%d].addr %q: must be ip:port", i, p.Addr))
		} else if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("peers[%d].addr %q: bad port", i, p.Addr))
		}
	}
	if len(c.Keys) == 0 {
		errs = append(errs, errors.New("keys: need at least one 32-byte key"))
	}
	for i, k := range c.Keys {
		if len(k) != 32 {
			errs = append(errs, fmt.Errorf("keys[%d]: must be 32 bytes, have %d", i, len(k)))
		}
	}
	if c.Label == "" {
		errs = append(errs, errors.New("label: must be set to the cluster name"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("stateDir: must be set"))
	}
	if c.RejoinInterval <= 0 {
		errs = append(errs, fmt.Errorf("rejoinInterval %v: must be positive", c.RejoinInterval))
	}
	core := Config{ID: c.Name, Voters: c.voters(), Roles: c.Roles, Drift: c.Drift, Rand: func() uint64 { return 0 }}
	if c.Name != "" {
		if err := core.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c DriverConfig) voters() []string {
	vs := []string{c.Name}
	for _, p := range c.Peers {
		if p.Name != c.Name {
			vs = append(vs, p.Name)
		}
	}
	return vs
}
