package etcdembed

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Name = "a"
	c.DataDir = "/var/lib/masterd/etcd"
	c.Address = netip.MustParseAddr("10.0.0.1")
	c.Members = []Peer{
		{Name: "a", Address: netip.MustParseAddr("10.0.0.1")},
		{Name: "b", Address: netip.MustParseAddr("10.0.0.2")},
		{Name: "c", Address: netip.MustParseAddr("10.0.0.3")},
	}
	c.TLS = TLS{CAFile: "ca", ServerCertFile: "s", ServerKeyFile: "sk", PeerCertFile: "p", PeerKeyFile: "pk",
		ClientCertFile: "c", ClientKeyFile: "ck"}
	return c
}

func TestConfigValidateNamesEveryProblem(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for _, c := range []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"an empty name", func(c *Config) { c.Name = "" }, []string{"name: must not be empty"}},
		{"a relative data dir", func(c *Config) { c.DataDir = "etcd" }, []string{"data_dir:"}},
		{"equal ports", func(c *Config) { c.PeerPort = c.ClientPort }, []string{"peer_port: must differ"}},
		{"a member list without this member", func(c *Config) { c.Members = c.Members[1:] }, []string{`members: must include this member "a"`}},
		{"a member listed twice", func(c *Config) { c.Members = append(c.Members, c.Members[1]) }, []string{`members[3].name: "b" listed twice`}},
		{"this member at another address", func(c *Config) { c.Members[0].Address = netip.MustParseAddr("10.0.0.9") }, []string{"members[0].address"}},
		{"a missing certificate", func(c *Config) { c.TLS.PeerKeyFile = "" }, []string{"tls.peer_key_file"}},
		{"an election timeout under 5 heartbeats", func(c *Config) { c.ElectionTimeout = 300 * time.Millisecond }, []string{"election_timeout"}},
		{"snapshots every second", func(c *Config) { c.SnapshotInterval = time.Second }, []string{"snapshot_interval"}},
		{"snapshots kept zero times", func(c *Config) { c.SnapshotRetention = 0 }, []string{"snapshot_retention"}},
		{"several problems at once", func(c *Config) { c.Name = ""; c.ClientPort = 0; c.TLS = TLS{} },
			[]string{"name:", "client_port:", "tls.ca_file", "tls.client_key_file"}},
	} {
		t.Run(c.name+" is rejected", func(t *testing.T) {
			cfg := validConfig()
			c.mutate(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, err := New(cfg); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func TestConfigDerivesURLsAndSnapshotDir(t *testing.T) {
	c := validConfig()
	c.Members[1].PeerPort = 3380
	if got, want := c.initialClusterFromConfig(), "a=https://10.0.0.1:2380,b=https://10.0.0.2:3380,c=https://10.0.0.3:2380"; got != want {
		t.Errorf("initial cluster %q, want %q", got, want)
	}
	if got, want := strings.Join(c.peerEndpoints(), ","), "https://10.0.0.2:2379,https://10.0.0.3:2379"; got != want {
		t.Errorf("peer endpoints %q, want %q", got, want)
	}
	if got, want := c.localEndpoint(), "https://127.0.0.1:2379"; got != want {
		t.Errorf("local endpoint %q, want %q", got, want)
	}
	if got, want := c.snapshotDir(), "/var/lib/masterd/snapshots"; got != want {
		t.Errorf("snapshot dir %q, want %q", got, want)
	}
	ec, err := c.embedConfig("new", c.initialClusterFromConfig(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	var listen []string
	for _, u := range ec.ListenClientUrls {
		listen = append(listen, u.String())
	}
	if got, want := strings.Join(listen, ","), "https://10.0.0.1:2379,https://127.0.0.1:2379"; got != want {
		t.Errorf("client listeners %q, want %q", got, want)
	}
	if !ec.ClientTLSInfo.ClientCertAuth || !ec.PeerTLSInfo.ClientCertAuth {
		t.Error("client certificate authentication not required")
	}
	if ec.QuotaBackendBytes != 8<<30 || ec.TickMs != 100 || ec.ElectionMs != 1000 {
		t.Errorf("quota %d, tick %d, election %d", ec.QuotaBackendBytes, ec.TickMs, ec.ElectionMs)
	}
	for _, g := range []string{"InitialCorruptCheck", "CompactHashCheck"} {
		if !strings.Contains(ec.ServerFeatureGate.(interface{ String() string }).String(), g+"=true") {
			t.Errorf("feature gate %s not on: %s", g, ec.ServerFeatureGate)
		}
	}
	if err := ec.Validate(); err != nil {
		t.Errorf("etcd rejects the derived config: %v", err)
	}
}

func TestEtcdLogsReachSlogAtSaneLevels(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	last := &lastProblem{}
	zl := newZapLogger(log, last).With(zap.String("member", "a"))
	zl.Info("applied entries") // routine: Debug, dropped at Info
	zl.Info("ready to serve client requests")
	zl.Error("setting up serving from embedded etcd failed.", zap.Error(errors.New("accept tcp 127.0.0.1:2379: use of closed network connection")))
	zl.Warn("prober detected unhealthy status", zap.Error(errors.New("connection refused")))
	out := buf.String()
	if strings.Contains(out, "applied entries") {
		t.Errorf("routine etcd info line logged at Info: %s", out)
	}
	if strings.Contains(out, "setting up serving") {
		t.Errorf("listener-closed noise of a stop logged as an error: %s", out)
	}
	if !strings.Contains(out, `level=INFO msg="ready to serve client requests" member=a`) {
		t.Errorf("lifecycle line missing: %s", out)
	}
	if !strings.Contains(out, `level=WARN msg="prober detected unhealthy status"`) || !strings.Contains(out, "error=\"connection refused\"") {
		t.Errorf("warning missing: %s", out)
	}
	if got := last.get(); got != "prober detected unhealthy status: connection refused" {
		t.Errorf("last problem %q", got)
	}
}
