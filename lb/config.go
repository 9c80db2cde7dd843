package lb

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Config describes one balancer: where it listens, where it forwards, and how
// it decides that a backend may receive new connections.
type Config struct {
	// Listen is the VIP and port clients connect to (VIP:6443). It is bound
	// with IP_FREEBIND / IPV6_FREEBIND, so it may be an address this host does
	// not hold yet; traffic arrives once the VIP is added to an interface.
	// Port 0 picks a free port (tests); Addr reports it.
	Listen netip.AddrPort

	// Backends are the kube-apiservers, one per master, at the node address
	// their --bind-address uses. Names must be unique; they label metrics.
	Backends []Backend

	// HealthCheck decides which backends get new connections.
	HealthCheck HealthCheck

	// DialTimeout bounds the TCP connect to a backend. A failed or timed-out
	// dial is retried on the next backend, so a dead host costs one timeout,
	// not a failed client connection.
	DialTimeout time.Duration

	// KeepAlive is the TCP keepalive idle time and probe interval set on both
	// legs of every proxied connection; KeepAliveCount unanswered probes end
	// the connection. This is the only thing that ever ends an idle
	// connection: there is no idle timeout, because watches legitimately sit
	// idle for minutes. Keepalive probes are answered by a live peer's kernel,
	// so they cut only connections whose peer host is gone (no FIN, no RST),
	// after about (KeepAliveCount+1)·KeepAlive. The same bound is set as
	// TCP_USER_TIMEOUT, which covers a dead peer while data is in flight
	// (keepalive only runs on idle connections). Whole seconds, at least 1s.
	KeepAlive      time.Duration
	KeepAliveCount int

	// ChunkSize is how many bytes one splice round may move before the byte
	// counters are updated. Larger means fewer wake-ups per byte, smaller
	// means fresher masterd_lb_bytes_total for long watches.
	ChunkSize int64

	// MaxConns caps the client connections open through the balancer at
	// once, and MaxConnsPerSource those from one source address; past a
	// cap a new connection is reset at once, counted and (rate-limited)
	// logged. 0 means no cap.
	MaxConns          int
	MaxConnsPerSource int
}

// Backend is one kube-apiserver.
type Backend struct {
	Name    string
	Address netip.AddrPort
}

// HealthCheck is the apiserver readiness probe: an HTTPS GET of Path on each
// backend's Address, verified against the cluster CA. Status 200 is a success;
// anything else, a TLS failure or a timeout is a failure.
type HealthCheck struct {
	// Path is requested on every backend; kube-apiserver's /readyz turns
	// unready while it drains or loses etcd, which is exactly when it should
	// get no new connections.
	Path string
	// Interval between the start of two checks of the same backend.
	Interval time.Duration
	// Timeout bounds one check (connect, TLS handshake, response).
	Timeout time.Duration
	// Rise consecutive successes mark a down backend up; Fall consecutive
	// failures mark an up backend down. A backend starts down and its first
	// success marks it up at once, so a fresh balancer is usable after one
	// check instead of Rise intervals.
	Rise int
	Fall int

	// CA verifies the apiservers' serving certificates. Either CA or CAFile
	// must be set; CA wins when both are.
	CA     *x509.CertPool
	CAFile string
	// ServerName overrides the name verified in the backend certificate; by
	// default the backend's IP address is verified (apiserver serving
	// certificates carry the node address as an IP SAN).
	ServerName string
	// ClientCert is presented to the apiserver if set (needed only when
	// anonymous access to /readyz is disabled). CertFile/KeyFile load it
	// from disk instead.
	ClientCert *tls.Certificate
	CertFile   string
	KeyFile    string
}

// DefaultConfig returns a Config with every timing filled in; the caller sets
// Listen, Backends and the CA.
func DefaultConfig() Config {
	return Config{
		Listen: netip.AddrPortFrom(netip.Addr{}, 6443),
		HealthCheck: HealthCheck{
			// kube-apiserver's readiness endpoint; /livez would keep
			// sending traffic to an apiserver that lost etcd.
			Path: "/readyz",
			// One check per second per backend is negligible load
			// (three TLS handshakes a second) and, with Fall 3, takes
			// an unready apiserver out within about 3 s — shorter than
			// a client's request timeout.
			Interval: time.Second,
			// Below Interval so checks never overlap; a healthy
			// apiserver answers /readyz in milliseconds.
			Timeout: 900 * time.Millisecond,
			// Two successes before an apiserver that was down gets
			// traffic again, so one lucky answer while it restarts
			// does not attract a burst of clients.
			Rise: 2,
			// Three failures so one lost packet or GC pause does not
			// drain a healthy apiserver (haproxy's default too).
			Fall: 3,
		},
		// Masters are on one LAN, where a live host's kernel answers a SYN
		// in well under a millisecond whatever its load; a connect still
		// pending after 500 ms is a dead or cut-off host (or a lost SYN,
		// whose retransmission would come only after 1 s), better retried
		// on the next backend at once. The failed backend is marked down
		// until its checks pass again, so after a master's crash clients
		// pay this at most once instead of until Fall checks failed.
		DialTimeout: 500 * time.Millisecond,
		// A dead master host (no FIN, no RST) is noticed after about
		// (3+1)·10 s = 40 s on idle connections; live idle watches are
		// never cut.
		KeepAlive:      10 * time.Second,
		KeepAliveCount: 3,
		// 256 KiB keeps splice rounds large for list responses while
		// byte counters of watch streams stay fresh.
		ChunkSize: 256 << 10,
		// Each proxied connection costs two file descriptors, two
		// goroutines and kernel socket buffers in masterd's own process.
		// 20,000 is several times what a large cluster's kubelets,
		// controllers and users keep open through the VIP (pods reach the
		// apiservers through the kubernetes Service, not the VIP), and
		// keeps the worst case near 40,000 descriptors and a few hundred MB.
		MaxConns: 20000,
		// One address rarely needs more than a few connections (a kubelet
		// two or three); 1,000 leaves room for a NAT gateway in front of
		// many users and stops one host from taking the whole cap.
		MaxConnsPerSource: 1000,
	}
}

// Validate reports every problem in c at once. It changes nothing.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if !c.Listen.Addr().IsValid() {
		bad("listen: address must be set (the VIP)")
	}
	if len(c.Backends) == 0 {
		bad("backends: at least one backend is required")
	}
	names := map[string]bool{}
	addrs := map[netip.AddrPort]bool{}
	for i, b := range c.Backends {
		switch {
		case b.Name == "":
			bad("backends[%d].name: must not be empty", i)
		case strings.ContainsAny(b.Name, " \t\n\""):
			bad("backends[%d].name: %q must not contain spaces or quotes", i, b.Name)
		case names[b.Name]:
			bad("backends[%d].name: %q is used twice", i, b.Name)
		}
		names[b.Name] = true
		switch {
		case !b.Address.Addr().IsValid() || b.Address.Port() == 0:
			bad("backends[%d].address: must be ip:port with a non-zero port", i)
		case addrs[b.Address]:
			bad("backends[%d].address: %s is used twice", i, b.Address)
		case b.Address == c.Listen:
			bad("backends[%d].address: %s is the listen address (would loop)", i, b.Address)
		}
		addrs[b.Address] = true
	}

	h := c.HealthCheck
	if !strings.HasPrefix(h.Path, "/") {
		bad("healthCheck.path: %q must start with /", h.Path)
	}
	if h.Interval <= 0 {
		bad("healthCheck.interval: must be positive, got %s", h.Interval)
	}
	if h.Timeout <= 0 || h.Timeout > h.Interval {
		bad("healthCheck.timeout: must be positive and at most interval (%s), got %s", h.Interval, h.Timeout)
	}
	if h.Rise < 1 || h.Rise > 100 {
		bad("healthCheck.rise: must be in 1..100, got %d", h.Rise)
	}
	if h.Fall < 1 || h.Fall > 100 {
		bad("healthCheck.fall: must be in 1..100, got %d", h.Fall)
	}
	if h.CA == nil && h.CAFile == "" {
		bad("healthCheck.ca: a CA pool or caFile is required to verify the apiservers")
	}
	if (h.CertFile == "") != (h.KeyFile == "") {
		bad("healthCheck.certFile, keyFile: set both or neither")
	}
	if h.ClientCert != nil && h.CertFile != "" {
		bad("healthCheck.clientCert: set either clientCert or certFile/keyFile, not both")
	}

	if c.DialTimeout <= 0 {
		bad("dialTimeout: must be positive, got %s", c.DialTimeout)
	}
	if c.KeepAlive < time.Second || c.KeepAlive%time.Second != 0 {
		bad("keepAlive: must be whole seconds, at least 1s (kernel granularity), got %s", c.KeepAlive)
	}
	if c.KeepAliveCount < 1 || c.KeepAliveCount > 127 {
		bad("keepAliveCount: must be in 1..127, got %d", c.KeepAliveCount)
	}
	if c.MaxConns < 0 {
		bad("maxConns: must be 0 (no cap) or positive, got %d", c.MaxConns)
	}
	if c.MaxConnsPerSource < 0 {
		bad("maxConnsPerSource: must be 0 (no cap) or positive, got %d", c.MaxConnsPerSource)
	}
	if c.MaxConns > 0 && c.MaxConnsPerSource > c.MaxConns {
		bad("maxConnsPerSource: %d is above maxConns %d", c.MaxConnsPerSource, c.MaxConns)
	}
	if c.ChunkSize < 4<<10 || c.ChunkSize > 16<<20 {
		bad("chunkSize: must be in 4KiB..16MiB, got %d", c.ChunkSize)
	}
	return errors.Join(errs...)
}
