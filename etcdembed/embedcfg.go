package etcdembed

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func httpsURL(host string, port uint16) url.URL {
	return url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(int(port)))}
}

// peerURL is m's advertised peer URL.
func (c Config) peerURL(m Peer) url.URL {
	p, _ := c.ports(m)
	if m.Name == c.Name {
		p = c.PeerPort
	}
	return httpsURL(m.Address.String(), p)
}

// clientURL is m's advertised client URL.
func (c Config) clientURL(m Peer) url.URL {
	_, p := c.ports(m)
	if m.Name == c.Name {
		p = c.ClientPort
	}
	return httpsURL(m.Address.String(), p)
}

func (c Config) self() Peer {
	return Peer{Name: c.Name, Address: c.Address, PeerPort: c.PeerPort, ClientPort: c.ClientPort}
}

// peerEndpoints are the client URLs of every other member.
func (c Config) peerEndpoints() []string {
	var eps []string
	for _, m := range c.Members {
		if m.Name != c.Name {
			u := c.clientURL(m)
			eps = append(eps, u.String())
		}
	}
	return eps
}

// localEndpoint is the loopback client URL Member.Client uses.
// A member whose node address is itself a loopback address (several members
// on one host, in tests) is reached there and listens on no other loopback.
func (c Config) localEndpoint() string {
	if c.Address.IsLoopback() {
		u := httpsURL(c.Address.String(), c.ClientPort)
		return u.String()
	}
	u := httpsURL("127.0.0.1", c.ClientPort)
	return u.String()
}

// initialClusterFromConfig is the initial-cluster flag for a first boot.
func (c Config) initialClusterFromConfig() string {
	parts := make([]string, 0, len(c.Members))
	for _, m := range c.Members {
		u := c.peerURL(m)
		parts = append(parts, m.Name+"="+u.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// clientTLS is masterd's client identity as a tls.Config.
func (c Config) clientTLS() (*tls.Config, error) {
	info := transport.TLSInfo{
		CertFile:      c.TLS.ClientCertFile,
		KeyFile:       c.TLS.ClientKeyFile,
		TrustedCAFile: c.TLS.CAFile,
	}
	tc, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcdembed: client tls: %w", err)
	}
	return tc, nil
}

// embedConfig translates c into etcd's configuration.
func (c Config) embedConfig(state, initialCluster string, lg *zap.Logger) (*embed.Config, error) {
	ec := embed.NewConfig()
	ec.Name = c.Name
	ec.Dir = c.DataDir
	ec.ClusterState = state
	ec.InitialCluster = initialCluster
	ec.InitialClusterToken = c.ClusterToken

	self := c.self()
	peer := c.peerURL(self)
	client := c.clientURL(self)
	ec.ListenPeerUrls = []url.URL{peer}
	ec.AdvertisePeerUrls = []url.URL{peer}
	ec.ListenClientUrls = []url.URL{client}
	if !c.Address.IsLoopback() {
		ec.ListenClientUrls = append(ec.ListenClientUrls, httpsURL("127.0.0.1", c.ClientPort))
	}
	ec.AdvertiseClientUrls = []url.URL{client}

	clients, err := c.clientAllowedCNs(lg)
	if err != nil {
		return nil, err
	}
	ec.ClientTLSInfo = transport.TLSInfo{
		CertFile:       c.TLS.ServerCertFile,
		KeyFile:        c.TLS.ServerKeyFile,
		ClientCertFile: c.TLS.ClientCertFile,
		ClientKeyFile:  c.TLS.ClientKeyFile,
		TrustedCAFile:  c.TLS.CAFile,
		ClientCertAuth: true,
		AllowedCNs:     clients,
	}
	allowed, err := c.peerAllowedHostnames()
	if err != nil {
		return nil, err
	}
	ec.PeerTLSInfo = transport.TLSInfo{
		CertFile:         c.TLS.PeerCertFile,
		KeyFile:          c.TLS.PeerKeyFile,
		TrustedCAFile:    c.TLS.CAFile,
		ClientCertAuth:   true,
		AllowedHostnames: allowed,
	}

	ec.QuotaBackendBytes = c.QuotaBytes
	ec.TickMs = uint(c.HeartbeatInterval / time.Millisecond)
	ec.ElectionMs = uint(c.ElectionTimeout / time.Millisecond)
	// Periodic compaction keeps the keyspace history bounded, as
	// kube-apiserver expects of its etcd (it also compacts itself).
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "1h"
	// Corruption checks: before serving (initial), and periodically by the
	// leader against followers (full and compaction hashes).
	if err := ec.ServerFeatureGate.(interface{ Set(string) error }).Set("InitialCorruptCheck=true,CompactHashCheck=true"); err != nil {
		return nil, fmt.Errorf("etcdembed: feature gates: %w", err)
	}
	ec.CorruptCheckTime = 10 * time.Minute
	ec.CompactHashCheckTime = time.Minute
	// The HTTP gateway is not needed: kube-apiserver and masterd speak gRPC.
	ec.EnableGRPCGateway = false
	// "basic" metrics: etcd's own series without per-RPC latency histograms,
	// registered once per process on prometheus.DefaultRegisterer.
	ec.Metrics = "basic"
	ec.StrictReconfigCheck = true
	ec.MaxLearners = 1
	ec.Logger = "zap"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	return ec, nil
}
