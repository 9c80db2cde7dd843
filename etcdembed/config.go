package etcdembed

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Peer names one master of the etcd cluster, as listed in masterd.yaml's
// peers (this node included).
type Peer struct {
	// Name is the etcd member name; unique in the cluster.
	Name string
	// Address is the master's node address; peer and client URLs are
	// https://Address:PeerPort and https://Address:ClientPort.
	Address netip.Addr
	// PeerPort and ClientPort override the local Config's ports for this
	// member; 0 means "same as Config" (always the case in production, where
	// every master uses the same ports; tests run several members on one
	// address).
	PeerPort, ClientPort uint16
}

// TLS holds the PEM files for etcd's mutual TLS. All files are required.
type TLS struct {
	// CAFile is the cluster CA; it verifies peers, clients and servers.
	CAFile string
	// ServerCertFile/ServerKeyFile serve the client listeners; the
	// certificate needs the node address and 127.0.0.1 as IP SANs.
	ServerCertFile, ServerKeyFile string
	// PeerCertFile/PeerKeyFile serve the peer listener and authenticate this
	// member to the other members: the certificate is used both as server
	// and as client certificate (ExtKeyUsage serverAuth and clientAuth) and
	// needs the node address as IP SAN.
	PeerCertFile, PeerKeyFile string
	// ClientCertFile/ClientKeyFile are masterd's own client identity, used
	// by Member.Client, by the join procedure towards the peers and by
	// etcd's internal gateway.
	ClientCertFile, ClientKeyFile string
}

// Config configures one embedded member.
type Config struct {
	// Name is this member's name; it must appear in Members.
	Name string
	// DataDir holds the member's WAL and database (etcd's --data-dir).
	DataDir string
	// Address is this node's address: peers connect to it and clients may
	// use it. The client port also listens on 127.0.0.1 for local clients.
	Address netip.Addr
	// ClientPort and PeerPort are etcd's client and peer ports.
	ClientPort, PeerPort uint16
	// Members lists every master of the cluster, this one included.
	Members []Peer
	// ClusterToken is etcd's initial-cluster-token; it keeps members of
	// two clusters that share addresses from talking to each other.
	ClusterToken string
	// TLS holds the certificate files.
	TLS TLS
	// QuotaBytes is the backend size after which etcd raises a NOSPACE
	// alarm and refuses writes.
	QuotaBytes int64
	// HeartbeatInterval and ElectionTimeout are raft's timings.
	HeartbeatInterval, ElectionTimeout time.Duration
	// SnapshotInterval is the period of automatic snapshots, measured from
	// Start; 0 disables them.
	SnapshotInterval time.Duration
	// SnapshotRetention is how many automatic snapshots are kept.
	SnapshotRetention int
	// SnapshotDir receives automatic snapshots; empty means
	// <DataDir>/../snapshots.
	SnapshotDir string
	// OnSnapshot, when set, is called after each automatic snapshot was
	// written (whether or not pruning the old ones worked). It is called
	// serially from the member's background loop and must return quickly
	// (start slow work such as an upload elsewhere); the file may be
	// pruned by a later snapshot.
	OnSnapshot func(SavedSnapshot)
	// ReadyTimeout bounds how long Start waits for the member to serve,
	// when the context passed to Start has no earlier deadline.
	ReadyTimeout time.Duration
	// ProgressInterval is how often Start logs that it is still waiting.
	ProgressInterval time.Duration
	// Logger receives masterd's and etcd's log lines; nil discards them.
	Logger *slog.Logger
	// Registerer receives masterd_etcd_* metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// DefaultConfig returns the defaults; the caller fills Name, DataDir,
// Address, Members, TLS, Logger and Registerer.
func DefaultConfig() Config {
	return Config{
		// etcd's well-known ports, which kube-apiserver's docs assume.
		ClientPort: 2379,
		PeerPort:   2380,
		// One token per masterd cluster is enough: the CA already keeps
		// foreign clusters out; the token guards against reused data dirs.
		ClusterToken: "masterd",
		// etcd's recommended maximum: a control plane's keyspace is far
		// smaller, and a too-small quota turns a busy week into NOSPACE.
		QuotaBytes: 8 << 30,
		// etcd's defaults suit masters on one LAN (RTT well under 10 ms);
		// the election timeout is 10 heartbeats as etcd recommends.
		HeartbeatInterval: 100 * time.Millisecond,
		ElectionTimeout:   time.Second,
		// Twice a day, keep five: two and a half days to notice a
		// problem before its last good snapshot is rotated away.
		SnapshotInterval:  12 * time.Hour,
		SnapshotRetention: 5,
		// Long enough for a learner to catch up on a large keyspace; the
		// progress lines tell the operator what it is waiting for.
		ReadyTimeout:     5 * time.Minute,
		ProgressInterval: 5 * time.Second,
	}
}

// Validate reports every problem of c at once; it changes nothing.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Name == "" {
		add("name: must not be empty")
	}
	if c.DataDir == "" {
		add("data_dir: must not be empty")
	} else if !filepath.IsAbs(c.DataDir) {
		add("data_dir: %q must be an absolute path", c.DataDir)
	}
	if !c.Address.IsValid() {
		add("address: must be set")
	}
	if c.ClientPort == 0 {
		add("client_port: must be 1-65535")
	}
	if c.PeerPort == 0 {
		add("peer_port: must be 1-65535")
	}
	if c.ClientPort != 0 && c.ClientPort == c.PeerPort {
		add("peer_port: must differ from client_port %d", c.ClientPort)
	}
	if c.ClusterToken == "" {
		add("cluster_token: must not be empty")
	}
	if len(c.Members) == 0 {
		add("members: must list at least this member")
	}
	seen := map[string]bool{}
	self := false
	for i, m := range c.Members {
		switch {
		case m.Name == "":
			add("members[%d].name: must not be empty", i)
		case seen[m.Name]:
			add("members[%d].name: %q listed twice", i, m.Name)
		}
		seen[m.Name] = true
		if !m.Address.IsValid() {
			add("members[%d].address: must be set", i)
		}
		if m.Name == c.Name {
			self = true
			if m.Address.IsValid() && c.Address.IsValid() && m.Address != c.Address {
				add("members[%d].address: %s differs from address %s of this member", i, m.Address, c.Address)
			}
		}
	}
	if c.Name != "" && len(c.Members) > 0 && !self {
		add("members: must include this member %q", c.Name)
	}
	for _, f := range []struct{ name, v string }{
		{"tls.ca_file", c.TLS.CAFile},
		{"tls.server_cert_file", c.TLS.ServerCertFile},
		{"tls.server_key_file", c.TLS.ServerKeyFile},
		{"tls.peer_cert_file", c.TLS.PeerCertFile},
		{"tls.peer_key_file", c.TLS.PeerKeyFile},
		{"tls.client_cert_file", c.TLS.ClientCertFile},
		{"tls.client_key_file", c.TLS.ClientKeyFile},
	} {
		if f.v == "" {
			add("%s: must not be empty (mutual TLS is mandatory)", f.name)
		}
	}
	if c.QuotaBytes < 0 {
		add("quota_bytes: must not be negative")
	}
	if c.HeartbeatInterval < time.Millisecond {
		add("heartbeat_interval: must be at least 1ms")
	}
	if c.ElectionTimeout < 5*c.HeartbeatInterval {
		add("election_timeout: must be at least 5 heartbeat intervals (%s)", 5*c.HeartbeatInterval)
	}
	if c.ElectionTimeout > 50*time.Second {
		add("election_timeout: must be at most 50s")
	}
	if c.SnapshotInterval < 0 {
		add("snapshot_interval: must not be negative")
	} else if c.SnapshotInterval > 0 && c.SnapshotInterval < time.Minute {
		add("snapshot_interval: must be 0 (off) or at least 1m")
	}
	if c.SnapshotInterval > 0 && c.SnapshotRetention < 1 {
		add("snapshot_retention: must be at least 1 when snapshots are on")
	}
	if c.ReadyTimeout <= 0 {
		add("ready_timeout: must be positive")
	}
	if c.ProgressInterval <= 0 {
		add("progress_interval: must be positive")
	}
	return errors.Join(errs...)
}

// snapshotDir is where automatic snapshots go.
func (c Config) snapshotDir() string {
	if c.SnapshotDir != "" {
		return c.SnapshotDir
	}
	return filepath.Join(filepath.Dir(filepath.Clean(c.DataDir)), "snapshots")
}

// ports returns m's ports, defaulting to c's.
func (c Config) ports(m Peer) (peer, client uint16) {
	peer, client = m.PeerPort, m.ClientPort
	if peer == 0 {
		peer = c.PeerPort
	}
	if client == 0 {
		client = c.ClientPort
	}
	return peer, client
}
