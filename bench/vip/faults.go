package vip

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/masterd/masterd/integration/lab"
)

// Unit names of the competing stack inside the lab hosts.
const (
	keepalivedUnit = "bench-keepalived"
	etcdUnit       = "bench-etcd"
	haproxyUnit    = "bench-haproxy"
	partitionTable = "masterd_bench_partition"
)

// partition drops every packet between m and the other masters, and VRRP
// (IP protocol 112, multicast to 224.0.0.18, which an address-based rule
// misses) both ways, inside m's namespace. The lab's own Partition matches
// addresses only, so keepalived's multicast adverts would still cross it one
// way.
func partition(ctx context.Context, l *lab.Lab, m *lab.Master) error {
	var others []string
	for _, o := range l.Masters() {
		if o != m {
			others = append(others, o.Addr.String())
		}
	}
	rules := fmt.Sprintf(`table inet %[1]s {
	chain in { type filter hook input priority -300; policy accept; ip saddr { %[2]s } drop; ip protocol 112 drop; }
	chain out { type filter hook output priority -300; policy accept; ip daddr { %[2]s } drop; ip protocol 112 drop; }
}
`, partitionTable, strings.Join(others, ", "))
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", m.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("vip bench: partition %s: %w: %s", m.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// heal removes partition's table (no error when there is none).
func heal(ctx context.Context, m *lab.Master) error {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", m.Name, "nft", "delete", "table", "inet", partitionTable).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("vip bench: heal %s: %w: %s", m.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// delVIP removes the VIP from m's eth0 if it is there (a rebooted or
// reconfigured host starts without it).
func delVIP(ctx context.Context, l *lab.Lab, m *lab.Master) error {
	out, err := exec.CommandContext(ctx, "ip", "-n", m.Name, "addr", "del", l.VIP().String()+"/32", "dev", "eth0").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "Cannot assign") && !strings.Contains(string(out), "Address not found") {
		return fmt.Errorf("vip bench: remove VIP from %s: %w: %s", m.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removeFence deletes the nftables tables of masterd's kernel fence
// (fence.DefaultConfig's masterd_fence, in the arp, netdev and inet
// families) from m's namespace: masterd with vip.enabled false leaves an
// armed fence behind, which would silence keepalived's VIP.
func removeFence(ctx context.Context, m *lab.Master) {
	for _, fam := range []string{"arp", "netdev", "inet"} {
		_ = exec.CommandContext(ctx, "ip", "netns", "exec", m.Name, "nft", "delete", "table", fam, "masterd_fence").Run()
	}
}

// startUnit runs argv as the transient unit name inside m (after stopping
// and forgetting an earlier one).
func startUnit(ctx context.Context, m *lab.Master, name string, props []string, argv ...string) error {
	stopUnit(ctx, m, name)
	args := []string{"systemd-run", "--unit=" + name, "--collect"}
	for _, p := range props {
		args = append(args, "--property="+p)
	}
	args = append(args, argv...)
	if _, err := m.Exec(ctx, args...); err != nil {
		return fmt.Errorf("vip bench: start %s in %s: %w", name, m.Name, err)
	}
	return nil
}

// stopUnit stops a transient unit (SIGTERM to what its KillMode says) and
// forgets it; a unit that does not exist is fine.
func stopUnit(ctx context.Context, m *lab.Master, name string) {
	_, _ = m.Exec(ctx, "systemctl", "stop", name)
	_, _ = m.Exec(ctx, "systemctl", "reset-failed", name)
}

// startKeepalived writes the system's keepalived.conf into m and starts it
// as bench-keepalived, VRRP only, in the foreground of its unit.
func startKeepalived(ctx context.Context, l *lab.Lab, s System, i int) error {
	m := l.Masters()[i]
	if err := m.Host().WriteFile("/etc/keepalived/bench.conf", []byte(keepalivedConf(s, i, l.VIP().String())), 0o644); err != nil {
		return fmt.Errorf("vip bench: %w", err)
	}
	// KillMode=process as in Debian's keepalived.service: SIGTERM goes to
	// the parent, which shuts its VRRP child down gracefully.
	return startUnit(ctx, m, keepalivedUnit, []string{"KillMode=process"},
		"/usr/sbin/keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file=/etc/keepalived/bench.conf",
		"--pid=/run/bench-keepalived.pid", "--vrrp_pid=/run/bench-keepalived-vrrp.pid")
}

// killKeepalived kills keepalived the hard way that leaves no goodbye: freeze
// the parent (so it cannot restart or stop the child), SIGKILL the VRRP
// child, SIGKILL the parent.
func killKeepalived(ctx context.Context, m *lab.Master) error {
	const script = `p=$(systemctl show -p MainPID --value ` + keepalivedUnit + `)
[ -n "$p" ] && [ "$p" != 0 ] || { echo "no keepalived"; exit 1; }
c=$(cat /proc/$p/task/$p/children)
[ -n "$c" ] || { echo "no VRRP child of $p"; exit 1; }
kill -STOP $p; kill -KILL $c; kill -KILL $p`
	if out, err := m.Exec(ctx, "sh", "-c", script); err != nil {
		return fmt.Errorf("vip bench: kill keepalived in %s: %w: %s", m.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// stressUnit is the transient unit stress-ng runs as inside a lab host.
const stressUnit = "bench-stress"

// stress loads m's CPUs with stress-ng for d (bounded by --timeout). It runs
// as its own transient unit in m, not under the benchmark's nsenter: with
// kernel.sched_autogroup_enabled=1 a process started from the benchmark
// stays in the benchmark's session and autogroup and would starve the
// benchmark's own pinger and sampler (false outages) instead of competing
// with masterd like a neighbour service. systemd starts a unit in a session
// (and autogroup) of its own. The unit is stopped on every path.
func stress(ctx context.Context, m *lab.Master, d time.Duration) error {
	stopUnit(ctx, m, stressUnit)
	defer func() {
		// ctx may be over (the run was interrupted): stop with a fresh one.
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopUnit(sctx, m, stressUnit)
	}()
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	if out, err := m.Exec(ctx, "systemd-run", "--wait", "--quiet", "--collect", "--unit", stressUnit, "--",
		"stress-ng", "--cpu", "4", "--timeout", fmt.Sprintf("%ds", int(d.Seconds())), "--quiet"); err != nil {
		return fmt.Errorf("vip bench: stress-ng unit %s in %s: %w: %s", stressUnit, m.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
