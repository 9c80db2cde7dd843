package agent

import (
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends sd_notify(3) state lines to the service manager.
type Notifier interface {
	// Notify sends state ("READY=1", "STATUS=...", "WATCHDOG=1", "STOPPING=1").
	Notify(state string) error
	// WatchdogInterval is the service's WatchdogSec, or 0 when it has none.
	WatchdogInterval() time.Duration
}

// SystemdNotifier talks to $NOTIFY_SOCKET through go-systemd. Outside systemd
// (no NOTIFY_SOCKET) every call is a no-op.
type SystemdNotifier struct{}

var _ Notifier = SystemdNotifier{}

// Notify implements Notifier.
func (SystemdNotifier) Notify(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// WatchdogInterval implements Notifier. It honours WATCHDOG_PID, so a child
// process that inherited the variables does not ping for its parent.
func (SystemdNotifier) WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}
