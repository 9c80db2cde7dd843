package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CutLink takes the master's bridge port down: a pulled cable. The master
// keeps its addresses and sees no carrier.
func (l *Lab) CutLink(ctx context.Context, m *Master) error {
	_, err := run(ctx, "ip", "-n", l.brNS, "link", "set", m.Port, "down")
	return err
}

// RestoreLink puts the master's bridge port back up.
func (l *Lab) RestoreLink(ctx context.Context, m *Master) error {
	_, err := run(ctx, "ip", "-n", l.brNS, "link", "set", m.Port, "up")
	return err
}

// partitionTable is the nftables table Partition installs in a master's
// namespace (the fence's tables have other names).
const partitionTable = "masterd_lab_partition"

// Partition drops every IP packet between m and the other masters, in both
// directions, with an nftables table inside m's namespace. The client still
// reaches every master.
func (l *Lab) Partition(ctx context.Context, m *Master) error {
	var others []string
	for _, o := range l.masters {
		if o != m {
			others = append(others, o.Addr.String())
		}
	}
	if len(others) == 0 {
		return errors.New("lab: partition: no other master")
	}
	set := strings.Join(others, ", ")
	rules := fmt.Sprintf(`table inet %[1]s {
	chain in { type filter hook input priority -300; policy accept; ip saddr { %[2]s } drop; }
	chain out { type filter hook output priority -300; policy accept; ip daddr { %[2]s } drop; }
}
`, partitionTable, set)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", m.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: partition %s: %w: %s", m.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Heal removes the partition of m (no error when there is none).
func (l *Lab) Heal(ctx context.Context, m *Master) error {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", m.Name, "nft", "delete", "table", "inet", partitionTable).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("lab: heal %s: %w: %s", m.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// KillPID1 SIGKILLs the master's systemd: every process of the host dies at
// once (a kernel panic or a power cut), while its network namespace keeps the
// addresses it had (the kernel keeps answering ARP for them, as a hung
// machine would). Combine with CutLink for a crash (Crash), or Reboot it.
func (l *Lab) KillPID1(m *Master) error {
	h := m.Host()
	if h == nil {
		return fmt.Errorf("lab: %s: not booted", m.Name)
	}
	if err := syscall.Kill(h.PID1(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("lab: kill %s's PID 1: %w", m.Name, err)
	}
	select {
	case <-h.Exited():
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("lab: %s's PID 1 still running 10s after SIGKILL", m.Name)
	}
}

// Crash cuts the master's link, then kills its PID 1: the machine is gone.
func (l *Lab) Crash(ctx context.Context, m *Master) error {
	if err := l.CutLink(ctx, m); err != nil {
		return err
	}
	return l.KillPID1(m)
}

// StopMasterd runs `systemctl stop masterd` in the master (graceful).
func (m *Master) StopMasterd(ctx context.Context) error {
	_, err := m.Exec(ctx, "systemctl", "stop", "masterd")
	return err
}

// StartMasterd runs `systemctl start --no-block masterd` in the master.
func (m *Master) StartMasterd(ctx context.Context) error {
	_, err := m.Exec(ctx, "systemctl", "start", "--no-block", "masterd")
	return err
}

// KillMasterd SIGKILLs masterd (systemctl kill); systemd runs ExecStopPost
// and restarts it.
func (m *Master) KillMasterd(ctx context.Context) error {
	_, err := m.Exec(ctx, "systemctl", "kill", "--signal=SIGKILL", "masterd")
	return err
}

// Wipe stops masterd, removes its data directory (/var/lib/masterd) and
// starts it again: a master whose disk was replaced.
func (m *Master) Wipe(ctx context.Context) error {
	if err := m.StopMasterd(ctx); err != nil {
		return err
	}
	if _, err := m.Exec(ctx, "sh", "-c", "rm -rf /var/lib/masterd/* /var/lib/masterd/.[!.]*"); err != nil {
		return err
	}
	return m.StartMasterd(ctx)
}

// Reboot power-cycles the master and keeps its disk: if it runs, its PID 1 is
// killed (no clean shutdown); /etc/masterd and /var/lib/masterd are saved,
// the host is torn down, its namespace loses every address but its own (a
// rebooted machine starts without the VIP), its link comes back up, and a
// fresh host boots with masterd installed, the disk restored and masterd
// enabled. It does not wait for masterd to be ready.
func (l *Lab) Reboot(ctx context.Context, m *Master) error {
	h := m.Host()
	if h == nil {
		return fmt.Errorf("lab: %s: not booted", m.Name)
	}
	select {
	case <-h.Exited():
	default:
		if err := l.KillPID1(m); err != nil {
			return err
		}
	}
	disk := filepath.Join(l.dir, "disk", m.Name)
	if err := os.RemoveAll(disk); err != nil {
		return err
	}
	// labhost keeps the host's overlay mounted at <state>/<name>/merged until
	// Close: the disk is readable after PID 1 died.
	merged := filepath.Join(stateRoot, m.Name, "merged")
	for _, d := range []string{"etc/masterd", "var/lib/masterd"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(disk, d)), 0o700); err != nil {
			return err
		}
		if _, err := run(ctx, "cp", "-a", filepath.Join(merged, d), filepath.Join(disk, d)); err != nil {
			return fmt.Errorf("lab: reboot %s: save disk: %w", m.Name, err)
		}
	}
	if err := h.Close(); err != nil {
		return fmt.Errorf("lab: reboot %s: %w", m.Name, err)
	}
	if _, err := run(ctx, "ip", "-n", m.Name, "addr", "flush", "dev", "eth0"); err != nil {
		return err
	}
	if _, err := run(ctx, "ip", "-n", m.Name, "addr", "add", m.Addr.String()+"/24", "dev", "eth0"); err != nil {
		return err
	}
	if err := l.Heal(ctx, m); err != nil {
		return err
	}
	if err := l.RestoreLink(ctx, m); err != nil {
		return err
	}
	if err := m.boot(ctx, &disk); err != nil {
		return fmt.Errorf("lab: reboot %s: %w", m.Name, err)
	}
	return l.saveState()
}

// RebootAll reboots every master at once (a power cut of the whole rack).
func (l *Lab) RebootAll(ctx context.Context) error {
	errs := make([]error, len(l.masters))
	var wg sync.WaitGroup
	for i, m := range l.masters {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = l.KillPID1(m) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, m := range l.masters {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = l.Reboot(ctx, m) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}
