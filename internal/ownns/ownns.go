// Package ownns lets a package that remembers the network namespace it was
// created in (vip, fence) open later sockets there without setns(2) when
// the calling thread is already in it, as every thread of masterd is:
// entering a namespace, even one's own, needs CAP_SYS_ADMIN, which
// masterd.service does not grant. A test that drives such a package from a
// thread in another namespace still gets its sockets where the package
// lives (tests run as root).
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
