package units

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// Config tunes the supervisor. Durations are measured on the local monotonic
// clock from the call that uses them.
type Config struct {
	// Socket is systemd's private D-Bus socket. As root masterd talks to PID 1
	// directly instead of through the system bus: no dbus-daemon needed, and it
	// keeps working while the bus restarts.
	Socket string
	// UnitDir receives managed unit files. /run/systemd/system holds runtime
	// units: gone at reboot, so nothing stale survives masterd's removal, and
	// it outranks /etc and /lib, so a distribution unit of the same name does
	// not win by accident.
	UnitDir string
	// RuntimeDir receives per-unit environment files (MASTERD_TERM), rewritten
	// before each start so a new term needs no daemon-reload.
	RuntimeDir string
	// StartTimeout bounds Start from the start job to healthy. kube-apiserver
	// needs 5-20 s on a quiet master (post-start hooks, RBAC bootstrap) and
	// took 72 s in the lab on 2 cores at load 36; a Start that gives up too
	// early only delays eligibility, systemd keeps the unit running.
	StartTimeout time.Duration
	// StopGrace is how long a normal unit (kube-apiserver) may take to exit
	// after SIGTERM before its cgroup is SIGKILLed; covers the apiserver's
	// graceful shutdown of in-flight requests.
	StopGrace time.Duration
	// LeaderKillWait bounds the stop of a leader-only unit (scheduler,
	// controller-manager), which gets no grace: from the SIGKILL of its
	// control group until the group is empty and systemd reports the unit
	// inactive. The stop must end inside the role's release slack, and the
	// successor hands the component's Lease over, so its graceful exit buys
	// nothing.
	LeaderKillWait time.Duration
	// KillWait bounds the wait after the SIGKILL that ends a normal unit's
	// grace (for it to be inactive), and Kill's wait for the control group
	// to be empty.
	KillWait time.Duration
	// ProbeInterval is the pause between health probes while starting.
	ProbeInterval time.Duration
	// Settle is how long a unit without a probe must stay active/running
	// before Start returns: long enough to catch a process that rejects its
	// flags and exits right after the fork.
	Settle time.Duration
	// ProbeTimeout bounds one health probe.
	ProbeTimeout time.Duration
	// ResyncInterval is how often watched units are re-read besides the
	// D-Bus signals (a backstop for lost signals and reconnections).
	ResyncInterval time.Duration
	// ReconnectBackoff is the pause between attempts to reach systemd.
	ReconnectBackoff time.Duration
	// JournalLines is how many of the unit's journal lines an error quotes.
	JournalLines int
}

// DefaultConfig returns the production settings.
func DefaultConfig() Config {
	return Config{
		Socket:           "/run/systemd/private",
		UnitDir:          "/run/systemd/system",
		RuntimeDir:       "/run/masterd/units",
		StartTimeout:     2 * time.Minute,
		StopGrace:        20 * time.Second,
		LeaderKillWait:   500 * time.Millisecond,
		KillWait:         3 * time.Second,
		ProbeInterval:    100 * time.Millisecond,
		Settle:           time.Second,
		ProbeTimeout:     2 * time.Second,
		ResyncInterval:   5 * time.Second,
		ReconnectBackoff: 200 * time.Millisecond,
		JournalLines:     10,
	}
}

// Validate reports every problem at once and changes nothing.
func (c Config) Validate() error {
	var errs []error
	for _, p := range []struct{ name, v string }{{"socket", c.Socket}, {"unit_dir", c.UnitDir}, {"runtime_dir", c.RuntimeDir}} {
		if !filepath.IsAbs(p.v) {
			errs = append(errs, fmt.Errorf("units: %s %q: must be an absolute path", p.name, p.v))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"start_timeout", c.StartTimeout}, {"stop_grace", c.StopGrace}, {"leader_kill_wait", c.LeaderKillWait},
		{"kill_wait", c.KillWait}, {"probe_interval", c.ProbeInterval}, {"settle", c.Settle}, {"probe_timeout", c.ProbeTimeout},
		{"resync_interval", c.ResyncInterval}, {"reconnect_backoff", c.ReconnectBackoff},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("units: %s %s: must be positive", d.name, d.v))
		}
	}
	if c.JournalLines < 0 || c.JournalLines > 1000 {
		errs = append(errs, fmt.Errorf("units: journal_lines %d: must be in [0, 1000]", c.JournalLines))
	}
	return errors.Join(errs...)
}
