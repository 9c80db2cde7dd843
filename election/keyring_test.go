package election

import (
	"bytes"
	"testing"
	"time"
)

// aliveMembers is how many members d's gossip lists alive.
func aliveMembers(d *Driver) int {
	n := 0
	for _, m := range d.Status().Members {
		if m.State == "alive" {
			n++
		}
	}
	return n
}

// TestDriverKeyRollInstallUseRemoveKeepsOneLeaderAndEveryMember rolls the
// gossip key of a running three-node cluster the way the agent does
// (install the new key everywhere, then make it primary everywhere, then
// remove the old one everywhere): the leader never changes and every node
// keeps the other two alive. A node that then still has only the old key
// (it missed the roll) is cut off, and SetKeys with the new key brings it
// back.
func TestDriverKeyRollInstallUseRemoveKeepsOneLeaderAndEveryMember(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	leader := c.waitLeader(10 * time.Second)
	waitAlive := func(what string) {
		t.Helper()
		end := time.Now().Add(10 * time.Second)
		for time.Now().Before(end) {
			ok := true
			for _, d := range c.drivers {
				ok = ok && aliveMembers(d) == 3
			}
			if ok {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		for name, d := range c.drivers {
			t.Logf("%s sees %d alive", name, aliveMembers(d))
		}
		t.Fatalf("%s: not every node sees three alive members", what)
	}
	waitAlive("before the roll")
	old, next := c.key, testKey(t)
	steps := []struct {
		name string
		keys [][]byte
	}{
		{"install", [][]byte{old, next}},
		{"use", [][]byte{next, old}},
		{"remove", [][]byte{next}},
	}
	for _, s := range steps {
		// One node at a time, with gossip running between the changes.
		for _, p := range c.peers {
			if err := c.drivers[p.Name].SetKeys(s.keys); err != nil {
				t.Fatalf("%s on %s: %v", s.name, p.Name, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
		waitAlive("after " + s.name)
		if ls := c.leaders(); len(ls) != 1 || ls[0] != leader {
			t.Fatalf("after %s: leaders %v, want %s throughout", s.name, ls, leader)
		}
	}
	for name, d := range c.drivers {
		if ks := d.Keys(); len(ks) != 1 || !bytes.Equal(ks[0], next) {
			t.Errorf("%s keyring holds %d keys after the roll, want only the new one", name, len(ks))
		}
	}
	c.checkNoOverlap()

	// A node still on the old key alone is cut off...
	stale := c.peers[2].Name
	if stale == leader {
		stale = c.peers[1].Name
	}
	if err := c.drivers[stale].SetKeys([][]byte{old}); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(15 * time.Second)
	for time.Now().Before(end) && aliveMembers(c.drivers[leader]) == 3 {
		time.Sleep(50 * time.Millisecond)
	}
	if n := aliveMembers(c.drivers[leader]); n == 3 {
		t.Fatalf("a node with only the old key stayed alive for %s", leader)
	}
	// ... until it is given the current keys (the agent reads them from etcd).
	if err := c.drivers[stale].SetKeys([][]byte{next}); err != nil {
		t.Fatal(err)
	}
	waitAlive("after the stale node got the new key")
	if err := c.drivers[stale].SetKeys(nil); err == nil {
		t.Error("an empty keyring was accepted")
	}
}
