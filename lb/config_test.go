package lb

import (
	"crypto/x509"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func validConfig() Config {
	c := DefaultConfig()
	c.Listen = netip.MustParseAddrPort("10.0.0.5:6443")
	c.Backends = []Backend{
		{Name: "m1", Address: netip.MustParseAddrPort("10.0.0.11:6443")},
		{Name: "m2", Address: netip.MustParseAddrPort("10.0.0.12:6443")},
	}
	c.HealthCheck.CA = x509.NewCertPool()
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error; none means valid
	}{
		{"the defaults with listen, backends and CA are valid", func(*Config) {}, nil},
		{"a CA file instead of a pool is valid", func(c *Config) { c.HealthCheck.CA, c.HealthCheck.CAFile = nil, "/etc/ca.pem" }, nil},
		{"no listen address", func(c *Config) { c.Listen = netip.AddrPort{} }, []string{"listen:"}},
		{"no backends", func(c *Config) { c.Backends = nil }, []string{"backends: at least one"}},
		{"duplicate names and addresses", func(c *Config) { c.Backends[1] = c.Backends[0] }, []string{"backends[1].name", "backends[1].address"}},
		{"backend on the listen address", func(c *Config) { c.Backends[0].Address = c.Listen }, []string{"would loop"}},
		{"backend without port", func(c *Config) { c.Backends[0].Address = netip.MustParseAddrPort("10.0.0.11:0") }, []string{"backends[0].address"}},
		{"bad name", func(c *Config) { c.Backends[0].Name = `a"b` }, []string{"backends[0].name"}},
		{"every health check problem at once", func(c *Config) {
			c.HealthCheck = HealthCheck{Path: "readyz", Interval: time.Second, Timeout: 2 * time.Second, CertFile: "x"}
		}, []string{"healthCheck.path", "healthCheck.timeout", "healthCheck.rise", "healthCheck.fall", "healthCheck.ca", "keyFile"}},
		{"sub-second keepalive", func(c *Config) { c.KeepAlive = 1500 * time.Millisecond }, []string{"keepAlive: must be whole seconds"}},
		{"zero timings", func(c *Config) { c.DialTimeout, c.KeepAlive, c.KeepAliveCount, c.ChunkSize = 0, 0, 0, 0 },
			[]string{"dialTimeout", "keepAlive:", "keepAliveCount", "chunkSize"}},
		{"no connection caps are valid", func(c *Config) { c.MaxConns, c.MaxConnsPerSource = 0, 0 }, nil},
		{"negative caps", func(c *Config) { c.MaxConns, c.MaxConnsPerSource = -1, -1 }, []string{"maxConns: must be 0", "maxConnsPerSource: must be 0"}},
		{"a per-source cap above the global one", func(c *Config) { c.MaxConns, c.MaxConnsPerSource = 10, 20 }, []string{"maxConnsPerSource: 20 is above maxConns 10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNewRejectsInvalidConfigAndDuplicateMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Config{}, reg, nil); err == nil {
		t.Fatal("New accepted an empty config")
	}
	c := validConfig()
	c.Listen = netip.MustParseAddrPort("127.0.0.90:0")
	b, err := New(c, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := New(c, reg, nil); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Fatalf("second New on one registry: %v, want a registration error", err)
	}
}

func TestHealthStateRiseAndFall(t *testing.T) {
	tests := []struct {
		name    string
		results string // s = success, f = failure
		rise    int
		fall    int
		want    string // up after each result: U or d
	}{
		{"first success marks a fresh backend up", "s", 2, 3, "U"},
		{"a fresh backend that fails stays down", "ffs", 2, 3, "ddd"},
		{"then it needs rise successes", "fss", 2, 3, "ddU"},
		{"fall failures take it down", "sfff", 2, 3, "UUUd"},
		{"a success resets the failure streak", "sffsff", 2, 3, "UUUUUU"},
		{"a failure resets the success streak", "sfffsfss", 2, 3, "UUUddddU"},
		{"rise 1 fall 1 follows every result", "sfsf", 1, 1, "UdUd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s healthState
			got := ""
			for _, r := range tt.results {
				s.observe(r == 's', tt.rise, tt.fall)
				if s.up {
					got += "U"
				} else {
					got += "d"
				}
			}
			if got != tt.want {
				t.Fatalf("results %s: up states %s, want %s", tt.results, got, tt.want)
			}
		})
	}
}
