// Package freeport hands tests loopback ports that were free a moment ago.
//
// A port is found by listening on port 0 and closing the listener, so the
// kernel may offer the same port again at the next call: two ports of one
// test configuration (etcd's peer and client port) then collide. freeport
// never hands out a port twice in one process.
package freeport

import (
	"fmt"
	"net"
	"sync"
	"testing"
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// TCP returns a loopback TCP port that was free a moment ago and that no
// earlier call in this process returned.
func TCP(t testing.TB) int {
	t.Helper()
	return find(t, false)
}

// TCPAndUDP is TCP for a port that must be free for UDP too (memberlist
// listens on both).
func TCPAndUDP(t testing.TB) int {
	t.Helper()
	return find(t, true)
}

func find(t testing.TB, udp bool) int {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	for range 1000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("freeport: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		ok := !handed[port]
		if ok && udp {
			u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if ok = err == nil; ok {
				u.Close()
			}
		}
		l.Close()
		if ok {
			handed[port] = true
			return port
		}
	}
	t.Fatal("freeport: no free loopback port in 1000 tries")
	return 0
}
