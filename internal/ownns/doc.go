// Package ownns lets a package that remembers the network namespace it was
// created in (vip, fence) open later sockets there without setns(2) when
// the calling thread is already in it, as every thread of masterd is:
// entering a namespace, even one's own, needs CAP_SYS_ADMIN, which
// masterd.service does not grant. A test that drives such a package from a
// thread in another namespace still gets its sockets where the package
// lives (tests run as root).
package ownns
