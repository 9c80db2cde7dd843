package agent

import (
	"net/netip"
	"os"
	"time"

	"github.com/masterd/masterd/election"
)

// Config is the schema of /etc/masterd/masterd.yaml. Every field has a yaml key and
// a doc tag; the README's configuration reference and deploy/masterd.yaml are
// checked against these tags by tests, so the documentation cannot drift.
//
// DefaultConfig fills every default; LoadConfig decodes a file over it strictly
// (unknown keys and wrong types are errors naming the key path) and then
// validates it.
type Config struct {
	Name           string     `yaml:"name" doc:"this master's name; must be one of peers[].name (default: the hostname)"`
	Address        netip.Addr `yaml:"address" doc:"this master's own address: gossip, etcd, kube-apiserver bind here; never the VIP (default: peers[name].address)"`
	Peers          []Peer     `yaml:"peers" doc:"every master of the cluster at its first boot, this one included; afterwards the membership record in etcd (masterd member add/remove) is the source of the voters and etcd members"`
	ClusterKeyFile string     `yaml:"clusterKeyFile" doc:"the cluster secret made by 'masterd init', identical on every master, mode 0600"`
	DataDir        string     `yaml:"dataDir" doc:"etcd data, snapshots, generated PKI, election state (mode 0700)"`
	Priority       int        `yaml:"priority" doc:"election preference among healthy masters, higher wins (0..1000)"`

	PKI        PKIConfig        `yaml:"pki" doc:"certificates: derived from the cluster secret, or your own"`
	Gossip     GossipConfig     `yaml:"gossip" doc:"memberlist transport between masters"`
	Election   ElectionConfig   `yaml:"election" doc:"settings shared by every role's election"`
	VIP        VIPConfig        `yaml:"vip" doc:"the floating address of the Kubernetes API"`
	Roles      RolesConfig      `yaml:"roles" doc:"lease timings of the leader-only components"`
	Etcd       EtcdConfig       `yaml:"etcd" doc:"the embedded etcd member"`
	Kubernetes KubernetesConfig `yaml:"kubernetes" doc:"the control-plane components masterd supervises"`
	Firewall   FirewallConfig   `yaml:"firewall" doc:"nftables allow-list of the masters' internal ports"`
	Nodes      NodesConfig      `yaml:"nodes" doc:"what masterd publishes for worker nodes and the addons it keeps applied (managed mode; the same on every master)"`
	Metrics    MetricsConfig    `yaml:"metrics" doc:"HTTP endpoint for /metrics, /healthz, /readyz and /status"`
	Log        LogConfig        `yaml:"log" doc:"logging to stderr (journald)"`
}

// FirewallConfig configures the allow-list of the gossip and etcd peer ports.
type FirewallConfig struct {
	Enabled bool `yaml:"enabled" doc:"drop packets to the gossip port (TCP, UDP) and the etcd peer port unless they come from a master (the membership record, peers, the VIP); an nftables table inet masterd_allow"`
}

// Peer is one master.
type Peer struct {
	Name    string     `yaml:"name" doc:"the master's name (unique)"`
	Address netip.Addr `yaml:"address" doc:"the master's address (unique)"`
}

// PKIConfig selects where certificates come from.
type PKIConfig struct {
	ExternalDir  string   `yaml:"externalDir" doc:"bring your own PKI: a directory holding every file in masterd's pki layout (see README); masterd checks them and generates nothing"`
	LeafValidity Duration `yaml:"leafValidity" doc:"lifetime of the certificates masterd issues (at least 2m; short values are for exercising renewal)"`
	RenewBefore  Duration `yaml:"renewBefore" doc:"a running masterd renews a certificate that expires within this time (checked every renewBefore/10, at most daily) and makes its consumers load it"`
}

// GossipConfig configures memberlist.
type GossipConfig struct {
	Port        int    `yaml:"port" doc:"UDP and TCP port of memberlist on address"`
	ClusterName string `yaml:"clusterName" doc:"label on every gossip packet, so two clusters on one network never merge"`
}

// ElectionConfig holds what is common to every role.
type ElectionConfig struct {
	ClockDriftPPM int `yaml:"clockDriftPPM" doc:"tolerated clock-rate error ε in parts per million, used in the lease safety inequality"`
}

// VIPConfig configures the floating address and the balancer behind it.
type VIPConfig struct {
	Enabled   bool       `yaml:"enabled" doc:"hold a floating VIP; false when an external load balancer fronts the apiservers"`
	Address   netip.Addr `yaml:"address" doc:"the VIP; required when enabled"`
	Interface string     `yaml:"interface" doc:"interface for the VIP (default: the one whose subnet holds the VIP)"`
	Profile   string     `yaml:"profile" doc:"timing profile: default (about 1 s failover), fast (about 0.25 s, needs fence), or custom (use timings)"`
	Fence     bool       `yaml:"fence" doc:"install the nftables kernel fence that silences the VIP when the lease lapses; required by the fast profile"`
	Timings   Timings    `yaml:"timings" doc:"lease timings when profile is custom"`
	Balancer  LBConfig   `yaml:"balancer" doc:"TCP balancer on the VIP over every ready kube-apiserver"`
}

// LBConfig configures the built-in balancer.
type LBConfig struct {
	Enabled bool `yaml:"enabled" doc:"balance VIP:port over all ready apiservers (false: the VIP leads to the holder's apiserver only)"`
	Port    int  `yaml:"port" doc:"port the balancer listens on at the VIP"`
	// Caps against a connection flood (issue 25); a reload applies them.
	MaxConnections          int `yaml:"maxConnections" doc:"client connections open through the balancer at once, in all (0: no cap); past it a new connection is reset; applied by a reload"`
	MaxConnectionsPerSource int `yaml:"maxConnectionsPerSource" doc:"client connections open at once from one source address (0: no cap); applied by a reload"`
}

// Timings are one role's lease timings, measured on each node's own monotonic clock.
type Timings struct {
	LeaseDuration Duration `yaml:"leaseDuration" doc:"how long a voter's promise lasts from the moment it answers"`
	RenewDeadline Duration `yaml:"renewDeadline" doc:"a leader that has not renewed within this time of its lease start gives the role up"`
	RetryPeriod   Duration `yaml:"retryPeriod" doc:"interval between a leader's heartbeats and between candidates' attempts"`
}

// RolesConfig holds the leader-only components' timings.
type RolesConfig struct {
	Scheduler         Timings `yaml:"scheduler" doc:"lease timings of the kube-scheduler role"`
	ControllerManager Timings `yaml:"controllerManager" doc:"lease timings of the kube-controller-manager role"`
}

// EtcdConfig configures the embedded member.
type EtcdConfig struct {
	ClientPort        int          `yaml:"clientPort" doc:"client port (mutual TLS) on address and 127.0.0.1"`
	PeerPort          int          `yaml:"peerPort" doc:"peer port (mutual TLS) on address"`
	QuotaBytes        int64        `yaml:"quotaBytes" doc:"backend size quota in bytes"`
	SnapshotInterval  Duration     `yaml:"snapshotInterval" doc:"interval between automatic snapshots into dataDir/snapshots (0 disables)"`
	SnapshotRetention int          `yaml:"snapshotRetention" doc:"automatic snapshots kept"`
	Backup            BackupConfig `yaml:"backup" doc:"off-host copies of the automatic snapshots"`
}

// KubernetesConfig configures the supervised components.
type KubernetesConfig struct {
	Mode              string           `yaml:"mode" doc:"managed (masterd writes the units) or existing (masterd starts and stops units already installed) or none"`
	BinDir            string           `yaml:"binDir" doc:"directory of kube-apiserver, kube-scheduler and kube-controller-manager"`
	ServiceCIDR       netip.Prefix     `yaml:"serviceCIDR" doc:"the Service IP range (--service-cluster-ip-range)"`
	ClusterDomain     string           `yaml:"clusterDomain" doc:"the cluster DNS domain, used in the apiserver certificate"`
	APIServerPort     int              `yaml:"apiserverPort" doc:"kube-apiserver's secure port on address"`
	APIServerCertSANs []string         `yaml:"apiserverCertSANs" doc:"extra IP addresses or DNS names in the apiserver certificate, e.g. an external load balancer's when vip.enabled is false"`
	APIServer         ComponentConfig  `yaml:"apiserver" doc:"kube-apiserver, on every master"`
	Scheduler         ComponentConfig  `yaml:"scheduler" doc:"kube-scheduler, only on the scheduler role's holder"`
	ControllerManager ComponentConfig  `yaml:"controllerManager" doc:"kube-controller-manager, only on the controller-manager role's holder"`
	Encryption        EncryptionConfig `yaml:"encryption" doc:"encryption at rest of Secrets in etcd and its snapshots"`
	Audit             AuditConfig      `yaml:"audit" doc:"kube-apiserver's audit log"`
}

// EncryptionConfig configures encryption at rest of Secrets (kube-apiserver
// --encryption-provider-config, written into the pki directory).
type EncryptionConfig struct {
	Enabled bool  `yaml:"enabled" doc:"encrypt Secrets (secretbox, keys derived from the cluster secret); false writes them in plain text but still reads encrypted ones"`
	Keys    []int `yaml:"keys" doc:"key generations, the first encrypts, the others only decrypt; rotation: [1, 2] on every master, then [2, 1], then rewrite the Secrets, then [2]"`
}

// AuditConfig configures kube-apiserver's audit log (metadata level).
type AuditConfig struct {
	Enabled    bool   `yaml:"enabled" doc:"write an audit log of every request (metadata only: who, what, when, result)"`
	Path       string `yaml:"path" doc:"the audit log file"`
	MaxAgeDays int    `yaml:"maxAgeDays" doc:"days to keep rotated audit files"`
	MaxBackups int    `yaml:"maxBackups" doc:"rotated audit files to keep"`
	MaxSizeMB  int    `yaml:"maxSizeMB" doc:"size in MB at which the audit file is rotated"`
}

// ComponentConfig configures one kube component.
type ComponentConfig struct {
	Unit      string            `yaml:"unit" doc:"existing mode: the name of the installed unit"`
	ExtraArgs map[string]string `yaml:"extraArgs" doc:"flags without leading dashes; they override generated ones"`
}

// MetricsConfig configures the HTTP endpoint.
type MetricsConfig struct {
	Listen string `yaml:"listen" doc:"host:port of /metrics, /healthz, /readyz and /status; 'masterd status' reads it"`
	// Pprof is off by default: profiles show internals and cost CPU while
	// taken; the validator allows it on a loopback listen address only.
	Pprof bool `yaml:"pprof" doc:"serve Go's /debug/pprof/ on metrics.listen too (loopback addresses only)"`
}

// LogConfig configures logging.
type LogConfig struct {
	Format string `yaml:"format" doc:"text or json"`
	Level  string `yaml:"level" doc:"debug, info, warn or error"`
}

// Role names as they appear in metrics, status and callbacks: the election
// package's.
const (
	RoleVIP               = election.RoleVIP
	RoleScheduler         = election.RoleScheduler
	RoleControllerManager = election.RoleControllerManager
)

// VIP timing profiles, the election package's (see election.VIPProfile).
var (
	// ProfileDefault fails over in about one second and tolerates daemon
	// stalls of a few hundred milliseconds.
	ProfileDefault = timingsOf(election.DefaultVIPTiming())
	// ProfileFast fails over in about a quarter second; its small slack is
	// only safe with the kernel fence.
	ProfileFast = timingsOf(election.FastVIPTiming())
	// unitRoleTimings are the scheduler and controller-manager roles'
	// default, election.DefaultUnitTiming (3.5 s / 1.5 s / 0.3 s: a
	// takeover in the lease plus the component's start-up). The
	// components' own --leader-elect stays at kube's 15 s / 10 s / 2 s.
	unitRoleTimings = timingsOf(election.DefaultUnitTiming())
)

// timingsOf is the configuration's form of an election timing (without its
// slack, which follows from the role and the fence).
func timingsOf(t election.Timing) Timings {
	return Timings{LeaseDuration: Duration(t.LeaseDuration), RenewDeadline: Duration(t.RenewDeadline), RetryPeriod: Duration(t.RetryPeriod)}
}

// DefaultConfig returns the configuration used for every key a file leaves out.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Name:           host,
		ClusterKeyFile: "/etc/masterd/cluster.key",
		DataDir:        "/var/lib/masterd",
		Gossip: GossipConfig{
			Port:        7946, // memberlist's customary port
			ClusterName: "masterd",
		},
		// 1000 ppm is ten times the worst crystal drift NTP tolerates (500 ppm),
		// with room for VMs whose clocks run unevenly.
		Election: ElectionConfig{ClockDriftPPM: 1000},
		// kubeadm's one year, renewed 30 days ahead (pki.DefaultParams).
		PKI: PKIConfig{LeafValidity: Duration(365 * 24 * time.Hour), RenewBefore: Duration(30 * 24 * time.Hour)},
		VIP: VIPConfig{
			Enabled: true,
			Profile: election.ProfileDefault,
			// On by default: without it a SIGKILLed or hung holder's kernel
			// keeps answering for the VIP until ExecStopPost's cleanup runs,
			// and another master takes it meanwhile (measured: two holders in
			// 6 of 7 SIGKILL trials with the fence off).
			Fence: true,
			Balancer: LBConfig{
				Enabled: true,
				Port:    6443,
				// lb.DefaultConfig's: far above what a control plane's
				// clients open, low enough that a flood cannot exhaust
				// the daemon's file descriptors.
				MaxConnections:          20000,
				MaxConnectionsPerSource: 1000,
			},
		},
		Roles: RolesConfig{
			Scheduler:         unitRoleTimings,
			ControllerManager: unitRoleTimings,
		},
		Etcd: EtcdConfig{
			ClientPort:        2379,
			PeerPort:          2380,
			QuotaBytes:        8 << 30, // etcd's recommended maximum
			SnapshotInterval:  Duration(12 * time.Hour),
			SnapshotRetention: 5,
			Backup:            defaultBackupConfig(),
		},
		Kubernetes: KubernetesConfig{
			Mode:          "managed",
			BinDir:        "/usr/local/bin",
			ServiceCIDR:   netip.MustParsePrefix("10.96.0.0/12"), // kubeadm's default
			ClusterDomain: "cluster.local",
			APIServerPort: 6443,
			// RKE2 encrypts Secrets by default; kubeadm leaves it to the user.
			Encryption: EncryptionConfig{Enabled: true, Keys: []int{1}},
			// Metadata-level audit with kubeadm's documented rotation values.
			Audit: AuditConfig{Enabled: true, Path: "/var/log/masterd/kube-apiserver-audit.log", MaxAgeDays: 30, MaxBackups: 10, MaxSizeMB: 100},
		},
		// Only masters need those ports; memberlist buffers a stranger's
		// stream before it checks the key (issue 25).
		Firewall: FirewallConfig{Enabled: true},
		Nodes:    DefaultNodesConfig(),
		Metrics:  MetricsConfig{Listen: "127.0.0.1:9990"},
		Log:      LogConfig{Format: "text", Level: "info"},
	}
}

// VIPTimings returns the effective timings of the vip role.
func (c *Config) VIPTimings() Timings {
	switch c.VIP.Profile {
	case election.ProfileFast:
		return ProfileFast
	case election.ProfileCustom:
		return c.VIP.Timings
	default:
		return ProfileDefault
	}
}

// ElectionRoles returns every role's effective timing with the slack it runs
// with, as the election takes them.
func (c *Config) ElectionRoles() map[string]election.Timing {
	m := map[string]election.Timing{}
	for role, t := range c.RoleTimings() {
		m[role] = electionTiming(t, election.RoleSlack(role, c.VIP.Fence))
	}
	return m
}

// RoleTimings returns every role's effective timings, keyed by role name.
func (c *Config) RoleTimings() map[string]Timings {
	m := map[string]Timings{
		RoleScheduler:         c.Roles.Scheduler,
		RoleControllerManager: c.Roles.ControllerManager,
	}
	if c.VIP.Enabled {
		m[RoleVIP] = c.VIPTimings()
	}
	return m
}

// Self returns this node's peer entry, if it is in peers.
func (c *Config) Self() (Peer, bool) {
	for _, p := range c.Peers {
		if p.Name == c.Name {
			return p, true
		}
	}
	return Peer{}, false
}
