package agent

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// validYAML is a minimal valid three-master config; cases edit it.
const validYAML = `
name: m1
peers:
  - {name: m1, address: 10.0.0.1}
  - {name: m2, address: 10.0.0.2}
  - {name: m3, address: 10.0.0.3}
vip:
  address: 10.0.0.100
`

func load(t *testing.T, yaml string) (Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "masterd.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return LoadConfig(path)
}

func TestValidConfigLoadsWithDefaults(t *testing.T) {
	cfg, err := load(t, validYAML)
	if err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	if cfg.Address.String() != "10.0.0.1" {
		t.Errorf("address defaults to this node's peer address: got %s", cfg.Address)
	}
	if got := cfg.VIPTimings(); got != ProfileDefault {
		t.Errorf("vip timings: got %+v, want default profile", got)
	}
	if !cfg.VIP.Fence {
		t.Error("the kernel fence is on by default")
	}
	if cfg.Etcd.ClientPort != 2379 || cfg.Gossip.Port != 7946 || cfg.Roles.Scheduler.LeaseDuration.String() != "3.5s" || cfg.Roles.ControllerManager.RenewDeadline.String() != "1.5s" || cfg.Roles.ControllerManager.RetryPeriod.String() != "300ms" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if n := len(cfg.RoleTimings()); n != 3 {
		t.Errorf("three roles expected with the VIP enabled, got %d", n)
	}
}

func TestShippedExampleConfigIsValid(t *testing.T) {
	if _, err := LoadConfig("../deploy/masterd.yaml"); err != nil {
		t.Fatalf("deploy/masterd.yaml: %v", err)
	}
}

// Each case is one mistake; the error must name the key path and the reason.
func TestConfigErrorsNameKeyAndReason(t *testing.T) {
	cases := []struct {
		name string
		edit string // appended or replacing, see below
		yaml string // full document when set
		want []string
	}{
		{name: "an unknown key is rejected", edit: "bogus: 1\n", want: []string{"bogus: unknown key (line"}},
		{name: "an unknown nested key is rejected with a case hint", edit: "etcd: {clientport: 1}\n",
			want: []string{`etcd.clientport: unknown key (did you mean "clientPort"?)`}},
		{name: "a bad IP names the peer index", yaml: strings.Replace(validYAML, "10.0.0.3}", "10.0.0.300}", 1),
			want: []string{`peers[2].address: "10.0.0.300" is not an IP address`}},
		{name: "a wrong type is rejected", edit: "etcd: {clientPort: abc}\n", want: []string{`etcd.clientPort: "abc" is not an integer`}},
		{name: "an apiserver SAN that is no IP or DNS name names its index", edit: "kubernetes: {apiserverCertSANs: [lb.example.com, 192.0.2.7, \"bad name\"]}\n",
			want: []string{`kubernetes.apiserverCertSANs[2]: "bad name" is neither an IP address nor a lowercase DNS name`}},
		{name: "a number where a string belongs is rejected", edit: "log: {format: 12}\n", want: []string{`log.format: "12" is not a string`}},
		{name: "a list where a mapping belongs is rejected", edit: "etcd: [1]\n", want: []string{"etcd: must be a mapping, not a list"}},
		{name: "duplicate peer names are rejected", yaml: strings.Replace(validYAML, "name: m3", "name: m2", 1),
			want: []string{`peers[2].name: "m2" is also peers[1].name`}},
		{name: "duplicate peer addresses are rejected", yaml: strings.Replace(validYAML, "10.0.0.3}", "10.0.0.2}", 1),
			want: []string{"peers[2].address: 10.0.0.2 is also peers[1].address"}},
		{name: "this node missing from peers is rejected", yaml: strings.Replace(validYAML, "name: m1\n", "name: m9\n", 1),
			want: []string{`peers: this node "m9" (key name) is not listed`}},
		{name: "a VIP that is a peer address is rejected", edit: "", yaml: strings.Replace(validYAML, "10.0.0.100", "10.0.0.2", 1),
			want: []string{"vip.address: 10.0.0.2 is peers[1].address"}},
		{name: "a missing VIP is rejected while the VIP is enabled", yaml: strings.Replace(validYAML, "  address: 10.0.0.100\n", "", 1),
			want: []string{"vip.address: is required"}},
		{name: "lease not longer than renew deadline is rejected",
			edit: "roles: {scheduler: {leaseDuration: 10s, renewDeadline: 10s, retryPeriod: 2s}}\n",
			want: []string{"roles.scheduler.leaseDuration: 10s is too short"}},
		{name: "renew deadline not above 1.2 retry periods is rejected",
			edit: "roles: {controllerManager: {leaseDuration: 15s, renewDeadline: 2s, retryPeriod: 2s}}\n",
			want: []string{"roles.controllerManager.renewDeadline: 2s must exceed 1.2 × retryPeriod"}},
		{name: "a missing timing is rejected", edit: "roles: {scheduler: {retryPeriod: 0s}}\n",
			want: []string{"roles.scheduler.retryPeriod: is required and must be positive"}},
		{name: "the fast profile without the fence is rejected", edit: "", yaml: validYAML + "  profile: fast\n  fence: false\n",
			want: []string{"vip.profile: fast needs vip.fence: true"}},
		{name: "custom vip timings without enough slack are rejected", yaml: validYAML + "  profile: custom\n  fence: false\n  timings: {leaseDuration: 300ms, renewDeadline: 200ms, retryPeriod: 50ms}\n",
			want: []string{"vip.timings.leaseDuration: 300ms is too short"}},
		{name: "vip timings without the custom profile are rejected", yaml: validYAML + "  timings: {leaseDuration: 1s}\n",
			want: []string{`vip.timings: only used with vip.profile: custom`}},
		{name: "an unknown profile is rejected", yaml: validYAML + "  profile: turbo\n", want: []string{`vip.profile: "turbo" must be default, fast or custom`}},
		{name: "a port used twice is rejected", edit: "etcd: {peerPort: 7946}\n", want: []string{"etcd.peerPort: port 7946 is also gossip.port"}},
		{name: "a port out of range is rejected", edit: "gossip: {port: 70000}\n", want: []string{"gossip.port: 70000 is outside 1..65535"}},
		{name: "a CIDR with host bits is rejected", edit: "kubernetes: {serviceCIDR: 10.96.0.1/12}\n",
			want: []string{`kubernetes.serviceCIDR: "10.96.0.1/12" is not a CIDR`}},
		{name: "a service CIDR holding a master is rejected", edit: "kubernetes: {serviceCIDR: 10.0.0.0/24}\n",
			want: []string{"kubernetes.serviceCIDR: 10.0.0.0/24 contains peers[0].address"}},
		{name: "existing mode without unit names is rejected", edit: "kubernetes: {mode: existing}\n",
			want: []string{"kubernetes.apiserver.unit: is required when kubernetes.mode is existing"}},
		{name: "a relative data dir is rejected", edit: "dataDir: var/lib\n", want: []string{`dataDir: "var/lib" must be an absolute path`}},
		{name: "a bad duration is rejected", edit: "etcd: {snapshotInterval: soon}\n", want: []string{`etcd.snapshotInterval: "soon" is not a duration`}},
		{name: "a bad log level is rejected", edit: "log: {level: loud}\n", want: []string{`log.level: "loud" must be debug`}},
		{name: "a bad metrics address is rejected", edit: "metrics: {listen: nowhere}\n", want: []string{`metrics.listen: "nowhere" is not host:port`}},
		{name: "extra args with dashes are rejected", edit: "kubernetes: {apiserver: {extraArgs: {--v: \"2\"}}}\n",
			want: []string{"kubernetes.apiserver.extraArgs.--v: give the flag name without dashes"}},
		{name: "a duplicate key is rejected", edit: "priority: 1\npriority: 2\n", want: []string{"priority: duplicate key"}},
		{name: "priority out of range is rejected", edit: "priority: 5000\n", want: []string{"priority: 5000 is outside 0..1000"}},
		{name: "an empty file is rejected", yaml: "\n", want: []string{"config is empty"}},
		{name: "malformed YAML is rejected", yaml: "peers: [\n", want: []string{"yaml:"}},
		{name: "three mistakes are all reported at once",
			yaml: strings.Replace(validYAML, "10.0.0.3}", "10.0.0.300}", 1) + "bogus: 1\nroles: {scheduler: {leaseDuration: 3s}}\n",
			want: []string{"peers[2].address", "bogus: unknown key", "roles.scheduler.leaseDuration: 3s is too short"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.yaml
			if doc == "" {
				doc = validYAML + tc.edit
			}
			_, err := load(t, doc)
			if err == nil {
				t.Fatalf("accepted:\n%s", doc)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestDecodeErrorsAreFieldErrors(t *testing.T) {
	_, err := DecodeConfig(strings.NewReader("name: [x]\n"))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "name" || fe.Line != 1 {
		t.Fatalf("got %#v", err)
	}
}

func TestYAMLAnchorsAndAliasesWork(t *testing.T) {
	doc := validYAML + "roles:\n  scheduler: &t {leaseDuration: 20s, renewDeadline: 10s, retryPeriod: 2s}\n  controllerManager: *t\n"
	cfg, err := load(t, doc)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Roles.ControllerManager.LeaseDuration.String() != "20s" {
		t.Errorf("alias not resolved: %+v", cfg.Roles.ControllerManager)
	}
}

// FuzzDecodeConfig feeds DecodeConfig and Validate mutations of the shipped
// example config and of small hand-made ones. The example is seeded without
// its comment lines: every key and value stays, at a quarter of the bytes
// (1.9 of 7.4 KB), and the fuzzer's cost per execution and per
// minimization grows with the input's length (with the comments the
// comment scanner took a fifth of the time).
func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte(validYAML))
	f.Add([]byte("peers: [{name: a, address: ::1}]\nvip: {timings: {leaseDuration: 1h}}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("peers: &x [*x]\n"))
	f.Add([]byte("kubernetes: {apiserver: {extraArgs: {a: b, a: c}}}"))
	example, err := os.ReadFile("../deploy/masterd.yaml")
	if err != nil {
		f.Fatalf("seed: %v", err)
	}
	var keys []byte
	for _, line := range bytes.SplitAfter(example, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			keys = append(keys, line...)
		}
	}
	cfg, err := DecodeConfig(bytes.NewReader(keys))
	if err == nil {
		cfg.derive()
		err = cfg.Validate()
	}
	if err != nil {
		f.Fatalf("seed: the example without comments: %v", err)
	}
	f.Add(keys)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := DecodeConfig(strings.NewReader(string(data)))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		cfg.derive()
		_ = cfg.Validate() // must not panic
	})
}

// TestAPIServerCertSANsReachTheCertificate: the extra SANs of the config
// are in the pki parameters the apiserver certificate is made from, and the
// VIP is not once vip.enabled is false (the external load balancer mode).
func TestAPIServerCertSANsReachTheCertificate(t *testing.T) {
	cfg, err := load(t, validYAML+"  enabled: false\nkubernetes: {apiserverCertSANs: [lb.example.com, 192.0.2.7]}\n")
	if err != nil {
		t.Fatal(err)
	}
	p := pkiParams(cfg)
	if !slices.Equal(p.ExtraAPIServerSANs, []string{"lb.example.com", "192.0.2.7"}) {
		t.Errorf("ExtraAPIServerSANs = %v", p.ExtraAPIServerSANs)
	}
	if p.VIP.IsValid() {
		t.Errorf("VIP %s in the certificate parameters with vip.enabled false", p.VIP)
	}
}
