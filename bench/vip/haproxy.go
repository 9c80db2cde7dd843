package vip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/masterd/masterd/integration/lab"
)

// haproxyConf renders the classic stack's balancer for every master: TCP on
// VIP:6443 to the three masters' apiservers (node address:6443), as
// keepalived + haproxy setups put it in front of the masters. `transparent`
// lets every master bind the VIP whether or not it holds it now (the holder
// receives the traffic), so a VIP move needs no haproxy reload. Health
// checks are `GET /readyz` over TLS (the apiserver's self-signed chain is
// not verified), every second, two to rise, three to fall. Client and server
// timeouts of an hour keep watches open.
//
// Without the kube binaries there is no apiserver: the backends are then the
// standalone etcd of the footprint (plain TCP checks), so haproxy still does
// the same work for the footprint's idle measurement.
func haproxyConf(vip netip.Addr, names []string, addrs []netip.Addr, kube bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by bench/vip
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 2s
  timeout check 2s
  timeout client 1h
  timeout server 1h
frontend api
  bind %s:6443 transparent
  default_backend masters
backend masters
  balance leastconn
`, vip)
	port, check := 12379, "check"
	if kube {
		port, check = 6443, "check check-ssl verify none"
		b.WriteString("  option httpchk GET /readyz\n  http-check expect status 200\n")
	}
	for i, n := range names {
		fmt.Fprintf(&b, "  server %s %s:%d %s inter 1s rise 2 fall 3\n", n, addrs[i], port, check)
	}
	return b.String()
}

// startHAProxy writes haproxyConf into every master and starts it as the
// transient unit bench-haproxy.
func startHAProxy(ctx context.Context, l *lab.Lab) error {
	var errs []error
	for _, m := range l.Masters() {
		errs = append(errs, startHAProxyOn(ctx, l, m))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vip bench: start haproxy: %w", err)
	}
	return nil
}

// startHAProxyOn writes haproxyConf into m and starts bench-haproxy there.
func startHAProxyOn(ctx context.Context, l *lab.Lab, m *lab.Master) error {
	var names []string
	var addrs []netip.Addr
	for _, o := range l.Masters() {
		names, addrs = append(names, o.Name), append(addrs, o.Addr)
	}
	cfg := []byte(haproxyConf(l.VIP(), names, addrs, l.KubeEnabled()))
	if err := m.Host().WriteFile("/etc/haproxy/bench.cfg", cfg, 0o644); err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	return startUnit(ctx, m, haproxyUnit, nil, "/usr/sbin/haproxy", "-Ws", "-f", "/etc/haproxy/bench.cfg")
}

// stopHAProxy stops bench-haproxy in every master.
func stopHAProxy(ctx context.Context, l *lab.Lab) {
	for _, m := range l.Masters() {
		stopUnit(ctx, m, haproxyUnit)
	}
}
