package labhost

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialContext dials addr from inside the host's network namespace, so a test
// process can reach services listening in the lab (an HTTP client's
// Transport.DialContext, a health probe). The socket is created in the lab's
// namespace; the calling goroutine's thread returns to its own namespace.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := h.inNetNS(func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		conn = c
		return err
	})
	return conn, err
}

// inNetNS runs fn on a locked OS thread switched to the host's network
// namespace.
func (h *Host) inNetNS(fn func() error) error {
	target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", h.pid1))
	if err != nil {
		return fmt.Errorf("labhost: %s: open netns: %w", h.name, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("labhost: open own netns: %w", err)
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("labhost: %s: setns: %w", h.name, err)
	}
	ferr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime discards it when the
		// goroutine exits instead of reusing a thread in the wrong namespace.
		return fmt.Errorf("labhost: return from netns: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}
