package lab

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// onewayTable is the nftables table (bridge family, in the bridge's
// namespace) CutOneWay installs.
const onewayTable = "masterd_lab_oneway"

// CutOneWay drops every frame the bridge would forward from one master's port
// to the ports of to (ARP, IP, broadcasts): those masters no longer hear
// from, while from still hears them and the client still hears everyone. The
// drop happens on the bridge, so from's sends succeed and vanish on the way,
// as behind a faulty switch port or a one-way firewall rule. Several calls
// add up; HealOneWay removes them all.
func (l *Lab) CutOneWay(ctx context.Context, from *Master, to ...*Master) error {
	var ports []string
	for _, m := range to {
		if m == from {
			return fmt.Errorf("lab: cut one way: %s to itself", from.Name)
		}
		ports = append(ports, fmt.Sprintf("%q", m.Port))
	}
	if len(ports) == 0 {
		return errors.New("lab: cut one way: no destination")
	}
	rules := fmt.Sprintf(`add table bridge %[1]s
add chain bridge %[1]s cut { type filter hook forward priority -300; policy accept; }
add rule bridge %[1]s cut iifname %[2]q oifname { %[3]s } counter drop
`, onewayTable, from.Port, strings.Join(ports, ", "))
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.brNS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: cut %s one way: %w: %s", from.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// HealOneWay removes every one-way cut (no error when there is none).
func (l *Lab) HealOneWay(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.brNS, "nft", "delete", "table", "bridge", onewayTable).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("lab: heal one-way cuts: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// OneWayDrops returns how many frames the one-way cuts dropped so far (0
// without a cut).
func (l *Lab) OneWayDrops(ctx context.Context) (int, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.brNS, "nft", "list", "table", "bridge", onewayTable).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file") {
			return 0, nil
		}
		return 0, fmt.Errorf("lab: list one-way cuts: %w: %s", err, strings.TrimSpace(string(out)))
	}
	n := 0
	for _, f := range strings.Split(string(out), "counter packets ")[1:] {
		var k int
		if _, err := fmt.Sscanf(f, "%d", &k); err == nil {
			n += k
		}
	}
	return n, nil
}

// CanReach sends one UDP datagram from master from to master to (between
// their bridge addresses, on a port nothing else uses) and reports whether it
// arrived within wait: a check of the lab's cuts.
func (l *Lab) CanReach(from, to *Master, wait time.Duration) (bool, error) {
	toNS, err := netns.GetFromName(to.Name)
	if err != nil {
		return false, err
	}
	defer toNS.Close()
	fromNS, err := netns.GetFromName(from.Name)
	if err != nil {
		return false, err
	}
	defer fromNS.Close()
	dst := &unix.SockaddrInet4{Addr: to.Addr.As4()}
	rfd, err := socketIn(toNS, unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0, func(fd int) error {
		return unix.Bind(fd, dst)
	})
	if err != nil {
		return false, fmt.Errorf("lab: udp socket in %s: %w", to.Name, err)
	}
	defer unix.Close(rfd)
	sa, err := unix.Getsockname(rfd)
	if err != nil {
		return false, err
	}
	dst.Port = sa.(*unix.SockaddrInet4).Port
	sfd, err := socketIn(fromNS, unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0, func(fd int) error {
		return unix.Bind(fd, &unix.SockaddrInet4{Addr: from.Addr.As4()})
	})
	if err != nil {
		return false, fmt.Errorf("lab: udp socket in %s: %w", from.Name, err)
	}
	defer unix.Close(sfd)
	token := []byte(fmt.Sprintf("masterd-lab-reach %d", time.Now().UnixNano()))
	if err := unix.Sendto(sfd, token, 0, dst); err != nil {
		return false, fmt.Errorf("lab: send %s -> %s: %w", from.Name, to.Name, err)
	}
	buf := make([]byte, 128)
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		_ = unix.SetsockoptTimeval(rfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, _, err := unix.Recvfrom(rfd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return false, fmt.Errorf("lab: receive in %s: %w", to.Name, err)
		}
		if string(buf[:n]) == string(token) {
			return true, nil
		}
	}
}
