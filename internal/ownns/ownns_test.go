package ownns

import (
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

func TestTheCallingThreadsNamespaceIsNotForeign(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ns, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if Foreign(ns) || FD(ns) != 0 || Handle(&ns) != nil {
		t.Fatal("the thread's own namespace is reported as another: the libraries would setns (CAP_SYS_ADMIN)")
	}
}

func TestAnotherNamespaceIsForeign(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	done := make(chan struct{})
	var other netns.NsHandle
	var err error
	go func() {
		defer close(done)
		runtime.LockOSThread() // not unlocked: the thread dies with the goroutine
		var orig netns.NsHandle
		if orig, err = netns.Get(); err != nil {
			return
		}
		defer orig.Close()
		if other, err = netns.New(); err != nil {
			return
		}
		err = netns.Set(orig)
	}()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if !Foreign(other) || FD(other) != int(other) || Handle(&other) != &other {
		t.Fatal("a namespace the thread is not in is reported as its own")
	}
}
