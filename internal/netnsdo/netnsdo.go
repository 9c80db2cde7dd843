// Package netnsdo runs a function on an OS thread switched into another
// network namespace, for tests and benchmarks that open sockets inside a
// lab's namespaces: a socket stays in the namespace it was created in, so
// only its creation needs the switch.
//
// The function runs on a goroutine of its own, locked to its thread, so
// the caller's thread never changes namespace. The thread is switched back
// before it is released; when that fails it stays locked and the runtime
// ends it with the goroutine, so no other goroutine ever runs in the wrong
// namespace.
package netnsdo

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs f in network namespace ns and returns its error, or the error of
// entering ns (f does not run then).
func Do(ns netns.NsHandle, f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("netnsdo: read the thread's namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("netnsdo: enter namespace: %w", err)
			return
		}
		err = f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
}
