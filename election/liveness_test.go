package election

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var liveTimings = map[string]Timing{
	RoleVIP:       {LeaseDuration: 800 * time.Millisecond, RenewDeadline: 500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond},
	RoleScheduler: {LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second},
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// Scenario steps of the liveness rule, each at a local time: the roles'
// status, messages heard, gossip views, and the peers reported.
func TestLivenessReportsASilentPeerOncePerDeath(t *testing.T) {
	voters := []string{"m1", "m2", "m3"}
	follow := func(holder string) map[string]RoleStatus {
		return map[string]RoleStatus{RoleVIP: {Holder: holder}, RoleScheduler: {Holder: holder}}
	}
	lead := map[string]RoleStatus{RoleVIP: {Leader: true, Holder: "m1"}, RoleScheduler: {Holder: "m2"}}
	type step struct {
		at     int
		st     map[string]RoleStatus
		hear   []string
		gossip map[string]bool // peer -> alive
		want   []string        // reported silent
		wantG  []string        // reported by gossip
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a follower reports the holder whose heartbeats stopped for three retry periods, once", []step{
			{at: 0, st: follow("m2"), hear: []string{"m2"}},
			{at: 299, st: follow("m2")},
			{at: 300, st: follow("m2"), want: []string{"m2"}},
			{at: 400, st: follow("m2")},
			{at: 2000, st: follow("m2")},
		}},
		{"hearing the peer again re-arms the report", []step{
			{at: 0, st: follow("m2"), hear: []string{"m2"}},
			{at: 300, st: follow("m2"), want: []string{"m2"}},
			{at: 350, st: follow("m2"), hear: []string{"m2"}},
			{at: 649, st: follow("m2")},
			{at: 650, st: follow("m2"), want: []string{"m2"}},
		}},
		{"a follower never reports another follower, which owes it nothing", []step{
			{at: 0, st: follow("m2"), hear: []string{"m2"}},
			{at: 100, st: follow("m2"), hear: []string{"m2"}},
			{at: 200, st: follow("m2"), hear: []string{"m2"}},
			{at: 5000, st: follow("")},
		}},
		{"a new leader counts its voters' silence from when it leads, not from the last time it heard them", []step{
			{at: 0, st: follow(""), hear: []string{"m2", "m3"}},
			{at: 1000, st: lead},
			{at: 1299, st: lead, hear: []string{"m3"}},
			{at: 1300, st: lead, want: []string{"m2"}},
			{at: 1598, st: lead},
			{at: 1599, st: lead, want: []string{"m3"}},
		}},
		{"the fastest role sets the pace: the scheduler holder is also heard on the vip role", []step{
			{at: 0, st: map[string]RoleStatus{RoleVIP: {Holder: "m3"}, RoleScheduler: {Holder: "m3"}}, hear: []string{"m3"}},
			{at: 300, st: map[string]RoleStatus{RoleVIP: {Holder: "m3"}, RoleScheduler: {Holder: "m3"}}, want: []string{"m3"}},
		}},
		{"gossip reports a dead peer not already reported, and again only after seeing it alive", []step{
			{at: 0, st: follow(""), gossip: map[string]bool{"m2": true, "m3": true}},
			{at: 10, st: follow(""), gossip: map[string]bool{"m2": false, "m3": true}, wantG: []string{"m2"}},
			{at: 20, st: follow(""), gossip: map[string]bool{"m2": false, "m3": true}},
			{at: 30, st: follow(""), gossip: map[string]bool{"m2": true, "m3": true}},
			{at: 40, st: follow(""), gossip: map[string]bool{"m2": false, "m3": true}, wantG: []string{"m2"}},
		}},
		{"gossip does not repeat a death the silence already reported", []step{
			{at: 0, st: follow("m2"), hear: []string{"m2"}, gossip: map[string]bool{"m2": true, "m3": true}},
			{at: 300, st: follow("m2"), want: []string{"m2"}},
			{at: 5000, st: follow(""), gossip: map[string]bool{"m2": false, "m3": true}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLiveness()
			for _, s := range tt.steps {
				now := ms(s.at)
				for _, p := range s.hear {
					l.hear(p, now)
				}
				var gotG []string
				for _, p := range []string{"m2", "m3"} {
					if alive, ok := s.gossip[p]; ok && l.gossip(p, alive) {
						gotG = append(gotG, p)
					}
				}
				got := l.check(now, "m1", voters, s.st, liveTimings)
				slices.Sort(got)
				if !slices.Equal(got, s.want) || !slices.Equal(gotG, s.wantG) {
					t.Fatalf("at %d ms: silent %v gossip %v, want %v and %v", s.at, got, gotG, s.want, s.wantG)
				}
				if l.next <= now {
					t.Fatalf("at %d ms: next check at %v, not after now", s.at, l.next)
				}
			}
		})
	}
}

// check schedules itself at the earliest silence deadline, and at least
// every fastest retry period.
func TestLivenessNextCheckIsTheEarliestDeadline(t *testing.T) {
	l := newLiveness()
	l.hear("m2", ms(0))
	l.check(ms(0), "m1", []string{"m1", "m2", "m3"}, map[string]RoleStatus{RoleVIP: {Holder: "m2"}}, liveTimings)
	if l.next != ms(100) {
		t.Fatalf("next = %v, want 100ms (every retry period)", l.next)
	}
	l.check(ms(250), "m1", []string{"m1", "m2", "m3"}, map[string]RoleStatus{RoleVIP: {Holder: "m2"}}, liveTimings)
	if l.next != ms(300) {
		t.Fatalf("next = %v, want 300ms (m2's deadline)", l.next)
	}
}

// Real drivers over memberlist: when the holder is killed (a crash: no
// Release, no Leave), both survivors report it down, before either takes
// the role over; the holder's own driver reports nothing of itself.
func TestDriverReportsAKilledHolderDownBeforeTheRoleMoves(t *testing.T) {
	c := newCluster(t, 3)
	var mu sync.Mutex
	type report struct {
		by, peer, reason string
		at               time.Time
	}
	var reports []report
	for _, p := range c.peers {
		name := p.Name
		cb := c.rec.callbacks(name)
		cb.OnPeerDown = func(peer, reason string) {
			mu.Lock()
			reports = append(reports, report{name, peer, reason, time.Now()})
			mu.Unlock()
		}
		reg := prometheus.NewRegistry()
		cfg := c.config(name, [][]byte{c.key})
		cfg.Registerer = reg
		d, err := NewDriver(cfg, cb)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.drivers[name], c.regs[name] = d, reg
		t.Cleanup(d.Kill)
	}
	l := c.waitLeader(10 * time.Second)
	// Every member alive in gossip, so a later report is about the kill.
	waitMembers(t, c, l, 3)
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	reports = nil
	mu.Unlock()
	t0 := time.Now()
	c.drivers[l].Kill()
	e := c.rec.waitStarted(t, t0, l, 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	for _, p := range c.peers {
		if p.Name == l {
			continue
		}
		var first *report
		for i, r := range reports {
			if r.by == p.Name && r.peer == l {
				first = &reports[i]
				break
			}
		}
		if first == nil {
			t.Fatalf("%s never reported the killed holder %s down (reports %+v)", p.Name, l, reports)
		}
		t.Logf("%s reported %s down (%s) %v after the kill; %s took the role %v after it", p.Name, l, first.reason, first.at.Sub(t0), e.node, e.at.Sub(t0))
		if first.reason != PeerSilent || !first.at.Before(e.at) {
			t.Errorf("%s: report %+v, want reason %q before the new holder started at %v", p.Name, *first, PeerSilent, e.at)
		}
	}
	for _, r := range reports {
		if r.peer != l {
			t.Errorf("report about a live peer: %+v", r)
		}
	}
	c.checkNoOverlap()
}

func waitMembers(t *testing.T, c *cluster, name string, n int) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		alive := 0
		for _, m := range c.drivers[name].Status().Members {
			if m.State == "alive" {
				alive++
			}
		}
		if alive == n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s does not see %d alive members", name, n)
}
