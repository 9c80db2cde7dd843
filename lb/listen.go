package lb

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenFreebind opens a TCP listener on addr even if no interface holds the
// address yet. IP_FREEBIND (IPV6_FREEBIND for IPv6) lets bind(2) take a
// non-local address; the socket receives connections as soon as the address
// is added, with no new bind. This is what lets every master keep its
// listener open before it holds the VIP, so a failover costs no listener
// start (the same thing haproxy and nginx need net.ipv4.ip_nonlocal_bind for;
// the socket option works per socket and needs no sysctl).
func listenFreebind(ctx context.Context, addr netip.AddrPort) (*net.TCPListener, error) {
	lc := net.ListenConfig{
		Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if addr.Addr().Is4() || addr.Addr().Is4In6() {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
				} else {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
				}
			})
			if err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("set freebind: %w", serr)
			}
			return nil
		},
		// Keepalive on accepted connections is configured per connection
		// (see proxy.go), not here.
		KeepAlive: -1,
	}
	network := "tcp4"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		network = "tcp6"
	}
	l, err := lc.Listen(ctx, network, addr.String())
	if err != nil {
		return nil, fmt.Errorf("lb: listen on %s: %w", addr, err)
	}
	return l.(*net.TCPListener), nil
}
