package netnsdo

import (
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// A socket made inside Do lives in the namespace Do entered: in a fresh
// namespace only lo exists and it is down, so a dial to the host's
// loopback listener fails there, while the caller's thread stays where it
// was.
func TestDoCreatesSocketsInTheNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace (CI runs as root)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	// A fresh namespace, made on a locked thread that is switched back.
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	runtime.UnlockOSThread()
	defer fresh.Close()
	defer orig.Close()

	var inside error
	if err := Do(fresh, func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		inside = err
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if inside == nil {
		t.Error("a dial made inside the fresh namespace reached the host's loopback listener")
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("the caller's dial after Do: %v (its thread changed namespace?)", err)
	}
	c.Close()
}
