package vip

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// recordingAnnouncer records the Manager's calls: the seam a route
// announcer would plug into.
type recordingAnnouncer struct {
	mu    sync.Mutex
	calls []string
	links []Link
}

func (r *recordingAnnouncer) add(call string, l Link) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
	r.links = append(r.links, l)
}

func (r *recordingAnnouncer) Announce(l Link, first bool) {
	if first {
		r.add("announce-first", l)
	} else {
		r.add("announce", l)
	}
}
func (r *recordingAnnouncer) Refresh(l Link) { r.add("refresh", l) }
func (r *recordingAnnouncer) Stop()          { r.add("stop", Link{}) }

func (r *recordingAnnouncer) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// A Manager with its own Announcer calls it on acquire, refresh, reannounce
// and release, with the interface the VIP is on, and sends no ARP itself.
func TestTheManagerDrivesItsAnnouncer(t *testing.T) {
	l := newLab(t, 1)
	h := l.Hosts[0]
	rec := &recordingAnnouncer{}
	cfg := DefaultConfig(families[0].vip(h))
	cfg.Announcer = rec
	cfg.ValidLifetime = 2 * time.Second
	cfg.ConflictProbeInterval = 0
	m := newManager(t, h, cfg, nil)
	ctx := context.Background()
	if err := m.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	// Refresh reaches the kernel (and the announcer) once a quarter
	// lifetime has passed since the VIP was added.
	m.mu.Lock()
	m.lastRefresh = time.Now().Add(-time.Second)
	m.mu.Unlock()
	if err := m.Refresh(); err != nil {
		t.Fatal(err)
	}
	m.Reannounce()
	if err := m.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []string{"announce-first", "refresh", "announce", "stop"}; !slices.Equal(rec.got(), want) {
		t.Fatalf("announcer calls %v, want %v", rec.got(), want)
	}
	for i, l := range rec.links[:3] {
		if l.Name != "eth0" || l.Index == 0 || l.MAC.String() != h.MAC.String() {
			t.Errorf("call %d got link %+v, want eth0 with %s", i, l, h.MAC)
		}
	}
	if v := value(m.m.garpSent); v != 0 {
		t.Errorf("the Manager sent %v announcements itself beside its Announcer", v)
	}
}

// The neighbour announcer sends the zero offsets before Announce returns and
// nothing after Stop.
func TestNeighbourAnnouncerScheduleAndStop(t *testing.T) {
	var mu sync.Mutex
	var frames int
	send := func(ifindex int, frame []byte) error {
		mu.Lock()
		defer mu.Unlock()
		frames++
		return nil
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return frames }
	a := NewNeighbourAnnouncer(netip.MustParseAddr("10.0.0.100"), []time.Duration{0, 0, time.Hour}, send, nil, nil)
	mac := []byte{2, 0, 0, 0, 0, 1}
	a.Announce(Link{Index: 1, MAC: mac}, true)
	if n := count(); n != 4 { // two rounds of request and reply
		t.Fatalf("%d frames before Announce returned, want 4", n)
	}
	a.Announce(Link{Index: 1, MAC: mac}, false) // not first: nothing at once
	if n := count(); n != 4 {
		t.Fatalf("%d frames after a reannounce, want still 4", n)
	}
	a.Stop()
	a.Stop() // idempotent
	a6 := NewNeighbourAnnouncer(netip.MustParseAddr("fd00::100"), []time.Duration{0}, send, nil, nil)
	a6.Announce(Link{Index: 1, MAC: mac}, true)
	if n := count(); n != 5 {
		t.Fatalf("%d frames, want one NA more (5)", n)
	}
}
