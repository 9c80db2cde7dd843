package ownns

import "github.com/vishvananda/netns"

// Foreign reports whether ns is another network namespace than the calling
// thread's (true also when the thread's cannot be read).
func Foreign(ns netns.NsHandle) bool {
	cur, err := netns.Get()
	if err != nil {
		return true
	}
	defer cur.Close()
	return !cur.Equal(ns)
}

// FD is ns as a socket library's "enter this namespace first" file
// descriptor: 0 (none, no setns) when the calling thread is in ns.
func FD(ns netns.NsHandle) int {
	if Foreign(ns) {
		return int(ns)
	}
	return 0
}

// Handle is ns for a library taking a *netns.NsHandle: nil (none, no
// setns) when the calling thread is in ns.
func Handle(ns *netns.NsHandle) *netns.NsHandle {
	if Foreign(*ns) {
		return ns
	}
	return nil
}
