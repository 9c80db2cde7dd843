// sandboxprobe runs, inside masterd.service's sandbox, each operation masterd
// needs (and a few it must not be able to do) and prints one line per check:
// "ok <name>" or "FAIL <name>: <reason>". It exits 1 if any check failed.
// integration/packagetest starts it in a lab host through a drop-in that
// replaces masterd.service's ExecStart, so the sandbox is the real unit's.
package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/masterd/masterd/fence"
	"github.com/masterd/masterd/internal/sched"
	"github.com/masterd/masterd/vip"
)

func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func writeRemove(path string) error {
	if err := os.WriteFile(path, []byte("probe\n"), 0o600); err != nil {
		return err
	}
	return os.Remove(path)
}

// mustFail turns "the operation was refused" into success.
func mustFail(err error) error {
	if err == nil {
		return errors.New("succeeded, want refused")
	}
	return nil
}

func capBits(field string) (uint64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

func main() {
	checks := []struct {
		name string
		fn   func() error
	}{
		{"netlink-address", func() error {
			if err := sh("ip", "addr", "add", "192.0.2.199/32", "dev", "lo"); err != nil {
				return err
			}
			return sh("ip", "addr", "del", "192.0.2.199/32", "dev", "lo")
		}},
		{"nftables", func() error {
			if err := sh("nft", "add", "table", "inet", "sandboxprobe"); err != nil {
				return err
			}
			return sh("nft", "delete", "table", "inet", "sandboxprobe")
		}},
		{"packet-socket", func() error {
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
			if err != nil {
				return err
			}
			return unix.Close(fd)
		}},
		{"bind-port-80", func() error {
			l, err := net.Listen("tcp", "127.0.0.1:80")
			if err != nil {
				return err
			}
			return l.Close()
		}},
		{"systemd-private-socket", func() error {
			for _, args := range [][]string{
				{"daemon-reload"},
				{"start", "pkgt-target.service"},
				{"is-active", "--quiet", "pkgt-target.service"},
				{"kill", "--signal=SIGKILL", "pkgt-target.service"},
				{"stop", "pkgt-target.service"},
			} {
				if err := sh("systemctl", args...); err != nil {
					return err
				}
			}
			return nil
		}},
		{"write-runtime-unit", func() error { return writeRemove("/run/systemd/system/pkgt-written.service") }},
		{"write-state-dir", func() error { return writeRemove("/var/lib/masterd/probe") }},
		{"write-runtime-dir", func() error { return writeRemove("/run/masterd/probe") }},
		{"write-net-sysctl", func() error {
			p := "/proc/sys/net/ipv4/conf/lo/arp_notify"
			v, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, v, 0)
		}},
		{"read-config", func() error {
			_, err := os.ReadDir("/etc/masterd")
			return err
		}},
		{"config-read-only", func() error { return mustFail(writeRemove("/etc/masterd/probe")) }},
		{"usr-read-only", func() error { return mustFail(writeRemove("/usr/bin/sandboxprobe-written")) }},
		{"kernel-sysctl-read-only", func() error {
			return mustFail(os.WriteFile("/proc/sys/kernel/domainname", []byte("probe"), 0))
		}},
		{"home-hidden", func() error {
			entries, err := os.ReadDir("/root")
			if err == nil && len(entries) > 0 {
				return fmt.Errorf("/root lists %d entries", len(entries))
			}
			return nil
		}},
		{"capabilities", func() error {
			bnd, err := capBits("CapBnd")
			if err != nil {
				return err
			}
			want, err := capMask(os.Getenv("PROBE_WANT_CAPS"))
			if err != nil {
				return err
			}
			if bnd != want {
				return fmt.Errorf("CapBnd %#x, want %#x (%s)", bnd, want, os.Getenv("PROBE_WANT_CAPS"))
			}
			return nil
		}},
		{"vip-and-fence", func() error {
			// masterd's own code: the VIP manager's and the fence's
			// sockets, and the fence's tables, with no CAP_SYS_ADMIN.
			a := netip.MustParseAddr("192.0.2.100")
			m, err := vip.New(vip.DefaultConfig(a), nil, nil)
			if err != nil {
				return err
			}
			if err := m.Close(); err != nil {
				return err
			}
			cfg := fence.DefaultConfig("lo", a)
			cfg.Table = "sandboxprobe_fence"
			f, err := fence.New(cfg, nil, nil)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := f.Install(); err != nil {
				return err
			}
			if err := f.Check(); err != nil {
				return err
			}
			return f.Remove()
		}},
		{"setns-refused", func() error {
			// vip and fence no longer enter their own namespace; the unit
			// grants no CAP_SYS_ADMIN, so setns(2) must be refused.
			fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return mustFail(unix.Setns(fd, unix.CLONE_NEWNET))
		}},
		{"autogroup-nice", func() error {
			// What masterd run does first: its session's autogroup takes the
			// unit's Nice=-10 (CAP_SYS_NICE).
			r, err := sched.MatchAutogroup()
			if err != nil {
				var lim unix.Rlimit
				_ = unix.Getrlimit(unix.RLIMIT_NICE, &lim)
				return fmt.Errorf("%w (RLIMIT_NICE %d)", err, lim.Cur)
			}
			if r.Nice != -10 {
				return fmt.Errorf("process nice %d, want the unit's -10", r.Nice)
			}
			if r.Skipped != "" && r.Skipped != "autogroup scheduling is off (kernel.sched_autogroup_enabled is not 1)" {
				return fmt.Errorf("not applied: %s", r.Skipped)
			}
			if r.Skipped == "" && r.After != -10 {
				return fmt.Errorf("autogroup nice %d after the change, want -10", r.After)
			}
			return nil
		}},
		{"no-new-namespaces", func() error {
			if err := mustFail(unix.Unshare(unix.CLONE_NEWUTS)); err != nil {
				return fmt.Errorf("uts: %w", err)
			}
			if err := mustFail(unix.Unshare(unix.CLONE_NEWNET)); err != nil {
				return fmt.Errorf("net: %w", err)
			}
			return mustFail(unix.Unshare(unix.CLONE_NEWNS))
		}},
	}
	failed := false
	for _, c := range checks {
		if err := c.fn(); err != nil {
			failed = true
			fmt.Printf("FAIL %s: %v\n", c.name, err)
			continue
		}
		fmt.Printf("ok %s\n", c.name)
	}
	if failed {
		os.Exit(1)
	}
}

var capNumbers = map[string]uint{
	"CAP_KILL": unix.CAP_KILL, "CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
	"CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_NET_RAW": unix.CAP_NET_RAW,
	"CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_SYS_NICE": unix.CAP_SYS_NICE,
	"CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_CHOWN": unix.CAP_CHOWN,
	"CAP_FOWNER": unix.CAP_FOWNER, "CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE,
}

// capMask turns "CAP_A CAP_B" into a capability bit mask.
func capMask(names string) (uint64, error) {
	var m uint64
	for _, n := range strings.Fields(names) {
		c, ok := capNumbers[n]
		if !ok {
			return 0, fmt.Errorf("unknown capability %q", n)
		}
		m |= 1 << c
	}
	if m == 0 {
		return 0, fmt.Errorf("PROBE_WANT_CAPS is empty")
	}
	return m, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
