package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestFreebindListenerAcceptsOnceTheAddressIsAdded runs its body in a child
// process inside a network namespace this test creates, so every socket (the
// listener, the backend, the balancer's dials, the client) lives there and
// nothing touches the host's network.
func TestFreebindListenerAcceptsOnceTheAddressIsAdded(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: creates a network namespace (run without -short as root)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	ns := fmt.Sprintf("lbt-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	dir := t.TempDir()
	if err := getPKI(t).writeFiles(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, os.Args[0])
	cmd.Env = append(os.Environ(), "LB_TEST_HELPER=freebind", "LB_TEST_DIR="+dir)
	out, err := cmd.CombinedOutput()
	t.Logf("namespace %s:\n%s", ns, out)
	if err != nil {
		t.Fatalf("freebind check in namespace: %v", err)
	}
	if !strings.Contains(string(out), "PASS freebind") {
		t.Fatal("the namespace helper did not report success")
	}
}

// helperFreebind is the child process: it runs inside the namespace.
func helperFreebind() int {
	for _, c := range []struct{ vip, backend string }{
		{"10.99.0.1", "127.0.0.1"},
		{"fd00:99::1", "::1"},
	} {
		if err := freebindCase(c.vip, c.backend); err != nil {
			fmt.Printf("FAIL %s: %v\n", c.vip, err)
			return 1
		}
		fmt.Printf("ok %s: listener bound before the address existed, accepted after it was added\n", c.vip)
	}
	fmt.Println("PASS freebind")
	return 0
}

func freebindCase(vipStr, backendIP string) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	vip := netip.MustParseAddr(vipStr)
	listen := netip.AddrPortFrom(vip, 6443)

	// Without freebind the address cannot be bound: it is not here yet.
	if l, err := net.Listen("tcp", listen.String()); err == nil {
		l.Close()
		return errors.New("a plain listen on the VIP succeeded; the address is already present")
	} else if !errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("plain listen: %v, want EADDRNOTAVAIL", err)
	}

	pki, err := makePKIFromDir(os.Getenv("LB_TEST_DIR"))
	if err != nil {
		return err
	}
	bln, err := net.Listen("tcp", net.JoinHostPort(backendIP, "0"))
	if err != nil {
		return err
	}
	back := newBackend("m1", bln, pki.server)
	defer back.close()

	cfg := DefaultConfig()
	cfg.Listen = listen
	cfg.Backends = []Backend{{Name: "m1", Address: back.addrPort()}}
	cfg.HealthCheck.CA = pki.pool
	cfg.HealthCheck.Interval, cfg.HealthCheck.Timeout = 50*time.Millisecond, 45*time.Millisecond
	lb, err := New(cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		return fmt.Errorf("balancer with freebind on an absent address: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(20 * time.Second); !lb.Status()[0].Up; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("backend never came up: %s", lb.Status()[0].LastError)
		}
	}

	// Before the address exists nobody can reach the listener.
	if c, err := net.DialTimeout("tcp", listen.String(), 2*time.Second); err == nil {
		c.Close()
		return errors.New("connected to the VIP before it was added")
	}

	bits := 32
	if vip.Is6() {
		bits = 128
	}
	addr := &netlink.Addr{IPNet: netipPrefixToIPNet(netip.PrefixFrom(vip, bits))}
	if vip.Is6() {
		addr.Flags = unix.IFA_F_NODAD // usable at once, no duplicate detection wait
	}
	if err := netlink.AddrAdd(lo, addr); err != nil {
		return fmt.Errorf("add %s: %w", vip, err)
	}
	defer func() { _ = netlink.AddrDel(lo, addr) }()

	// The same listener, never re-bound, now accepts. The kernel installs
	// an IPv6 address's local route from a work queue (DAD completion, even
	// with nodad), so the address becomes usable a moment after AddrAdd
	// returns: retry until it is.
	var c net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err = net.DialTimeout("tcp", listen.String(), 2*time.Second)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ENETUNREACH) || time.Now().After(deadline) {
			return fmt.Errorf("dial the VIP after adding it: %w", err)
		}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "WHO\n"); err != nil {
		return err
	}
	name, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || name != "m1\n" {
		return fmt.Errorf("through the VIP: %q, %v", name, err)
	}
	return nil
}

func netipPrefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func makePKIFromDir(dir string) (*testPKI, error) {
	p := &testPKI{}
	var err error
	if p.caPEM, err = os.ReadFile(dir + "/ca.pem"); err != nil {
		return nil, err
	}
	if p.certPEM, err = os.ReadFile(dir + "/cert.pem"); err != nil {
		return nil, err
	}
	if p.keyPEM, err = os.ReadFile(dir + "/key.pem"); err != nil {
		return nil, err
	}
	return p, p.parse()
}
