package agent

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/masterd/masterd/election"
	"github.com/masterd/masterd/internal/nslab"
	"github.com/prometheus/client_golang/prometheus"
)

// stepDowns records the roles a vip component asked the election to step
// down (the driver's StepDown, injected).
type stepDowns struct {
	mu    sync.Mutex
	roles []string
}

func (s *stepDowns) stepDown(role string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles = append(s.roles, role)
	return true
}

func (s *stepDowns) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.roles...)
}

// A fence that lapses under the held VIP (the renewal's arm reaches the
// kernel after the element expired, as after a stall): the refresh does
// not revive it, the component calls StepDown for the vip role, and the
// VIP stays silent for the rest of the term — no element, no address,
// whatever renewals and fence repairs follow — until a new term.
func TestFenceLapseUnderHeldVIPStepsDownAndKeepsItSilentForTheTerm(t *testing.T) {
	l := nslab.New(t, "agvt", 1)
	c, _, recs := startVIP(t, l.Hosts[0], true)
	var sd stepDowns
	c.setStepDown(sd.stepDown)

	// Term 8: armed until 200 ms from now, the address added.
	c.renewed(8, time.Now().Add(200*time.Millisecond+fenceMargin))
	c.acquire(context.Background(), 8)
	if !vipPresent(t, c) || armedFor(t, c) == 0 {
		t.Fatal("holder of term 8 without its address or fence arm")
	}
	// The next renewal is validated but its arm runs 250 ms later: the
	// element expired meanwhile.
	time.Sleep(250 * time.Millisecond)
	if left := armedFor(t, c); left != 0 {
		t.Fatalf("the element is still live %s after its end", left)
	}
	c.renewed(8, time.Now().Add(5*time.Second))
	if got := sd.get(); len(got) != 1 || got[0] != RoleVIP {
		t.Fatalf("StepDown calls after the lapse: %v, want [%s]", got, RoleVIP)
	}
	if left := armedFor(t, c); left != 0 {
		t.Fatalf("the late refresh revived the fence for %s", left)
	}
	if vipPresent(t, c) || c.m.Owned() {
		t.Fatal("the address is still on (or owned) after the fence lapsed")
	}
	if _, ok := logged(recs(), "fence lapsed under the held vip role: the vip stays silent for the rest of the term, stepping down"); !ok {
		t.Error("the lapse was not logged")
	}

	// Until the loss arrives, more renewals of term 8 and a fence repair
	// bring nothing back, and StepDown is not called again.
	for range 3 {
		c.renewed(8, time.Now().Add(5*time.Second))
	}
	c.fenceMissing(nil)
	c.fenceRepaired()
	time.Sleep(50 * time.Millisecond) // the manager's watch would re-add an owned address
	if left := armedFor(t, c); left != 0 {
		t.Fatalf("a renewal of the lapsed term re-armed the fence for %s", left)
	}
	if vipPresent(t, c) || c.m.Owned() {
		t.Fatal("the address came back in the lapsed term")
	}
	if got := sd.get(); len(got) != 1 {
		t.Errorf("StepDown called %d times, want once per lapsed term", len(got))
	}

	// The loss StepDown caused: a verified release.
	if err := c.release(releaseCtx(t), 8); err != nil {
		t.Fatalf("release of the lapsed term: %v", err)
	}
	// A new term arms and adds the VIP again.
	hold(t, c, 9)
	if !vipPresent(t, c) || armedFor(t, c) == 0 {
		t.Fatal("term 9 without its address or fence arm")
	}
	// Refreshes of a live element in term 9 keep it armed, no step-down.
	c.renewed(9, time.Now().Add(3*time.Second))
	if left := armedFor(t, c); left < 2*time.Second {
		t.Errorf("term 9's refresh left %s, want about 3 s", left)
	}
	if got := sd.get(); len(got) != 1 {
		t.Errorf("StepDown called again in a healthy term: %v", got)
	}
}

// Without the driver wired in, a lapse still keeps the VIP silent (and
// says it cannot step down).
func TestFenceLapseWithoutDriverKeepsTheVIPSilent(t *testing.T) {
	l := nslab.New(t, "agvt", 1)
	c, _, recs := startVIP(t, l.Hosts[0], true)
	c.renewed(10, time.Now().Add(150*time.Millisecond+fenceMargin))
	c.acquire(context.Background(), 10)
	time.Sleep(200 * time.Millisecond)
	c.renewed(10, time.Now().Add(5*time.Second))
	if vipPresent(t, c) || armedFor(t, c) != 0 {
		t.Fatal("the VIP answers again after its fence lapsed")
	}
	if _, ok := logged(recs(), "fence lapsed but the vip role cannot be stepped down (no election driver): the vip stays silent until the role is lost"); !ok {
		t.Error("the missing driver was not logged")
	}
	if err := c.release(releaseCtx(t), 10); err != nil {
		t.Fatal(err)
	}
}

// The address comes only after the term's first successful arm: an
// acquisition whose first renewal could not arm (its deadline already
// past when the callback ran) adds nothing; the next renewal arms (a first
// arm, not a refresh: nothing to step down for) and adds the address.
func TestVIPIsAddedOnlyAfterTheTermsFirstArm(t *testing.T) {
	l := nslab.New(t, "agvt", 1)
	c, _, _ := startVIP(t, l.Hosts[0], true)
	var sd stepDowns
	c.setStepDown(sd.stepDown)
	c.renewed(11, time.Now().Add(-time.Millisecond))
	c.acquire(context.Background(), 11)
	if vipPresent(t, c) || c.m.Owned() {
		t.Fatal("acquire added the VIP before any fence arm of the term")
	}
	c.fenceRepaired() // nothing armed in the term: still nothing to add
	if vipPresent(t, c) {
		t.Fatal("a fence repair added the VIP before any fence arm of the term")
	}
	c.renewed(11, time.Now().Add(5*time.Second))
	if !vipPresent(t, c) || !c.m.Owned() || armedFor(t, c) == 0 {
		t.Fatalf("after the first arm: address %v, owned %v, armed %s; want all", vipPresent(t, c), c.m.Owned(), armedFor(t, c))
	}
	if got := sd.get(); len(got) != 0 {
		t.Errorf("StepDown called on a first arm: %v", got)
	}
	if err := c.release(releaseCtx(t), 11); err != nil {
		t.Fatal(err)
	}
}

// The whole path with a real election driver (one voter over memberlist
// on loopback), wired as the election component is to wire it
// (setStepDown(d.StepDown)): a lapsed fence under the held VIP (the
// element deleted behind the holder's back, so the next renewal's
// refresh finds it gone) makes the component step the role down from
// inside OnRenewed without deadlocking the driver; the term ends
// (released, verified), and the VIP comes back only under a higher term.
func TestFenceLapseStepsTheElectionDriverDown(t *testing.T) {
	l := nslab.New(t, "agvt", 1)
	c, a, recs := startVIP(t, l.Hosts[0], true)

	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.LocalAddr().(*net.UDPAddr).Port
	ln.Close()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	cfg := election.DefaultDriverConfig()
	cfg.Name = "m1"
	cfg.BindAddr, cfg.AdvertiseAddr = "127.0.0.1", "127.0.0.1"
	cfg.BindPort, cfg.AdvertisePort = port, port
	cfg.Peers = []election.Peer{{Name: "m1", Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}}
	cfg.Keys = [][]byte{key}
	cfg.Label = "agvt-lapse"
	cfg.StateDir = t.TempDir()
	cfg.Roles = map[string]election.Timing{RoleVIP: election.DefaultVIPTiming()}
	cfg.RejoinInterval = 200 * time.Millisecond
	cfg.Registerer = prometheus.NewRegistry()

	var mu sync.Mutex
	var events []string
	note := func(s string) {
		mu.Lock()
		events = append(events, s)
		mu.Unlock()
	}
	var sd stepDowns
	var d *election.Driver
	d, err = election.NewDriver(cfg, election.Callbacks{
		OnStartedLeading: func(ctx context.Context, role string, term uint64) {
			note(fmt.Sprintf("acquired %d", term))
			c.acquire(ctx, term)
		},
		OnStoppedLeading: func(ctx context.Context, role string, term uint64) error {
			note(fmt.Sprintf("lost %d", term))
			return c.release(ctx, term)
		},
		OnRenewed: func(role string, term uint64, deadline time.Time) { c.renewed(term, deadline) },
	})
	if err != nil {
		t.Fatal(err)
	}
	c.setStepDown(func(role string) bool { sd.stepDown(role); return d.StepDown(role) })
	d.SetHealthy(RoleVIP, true)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Kill)

	term := func() uint64 { return d.Status().Roles[RoleVIP].Term }
	waitUntil := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		end := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(end) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("gave up after %s waiting for %s; events %v", limit, what, events)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitUntil("the VIP held and armed", 15*time.Second, func() bool {
		return d.Status().Roles[RoleVIP].Leader && vipPresent(t, c) && armedFor(t, c) > 0
	})
	t1 := term()
	// The lapse: the element gone under the holder (as if it had expired
	// during a stall); the next renewal's refresh must not revive it.
	if err := c.f.Disarm(a); err != nil {
		t.Fatal(err)
	}
	waitUntil("StepDown", 2*time.Second, func() bool { return len(sd.get()) > 0 })
	waitUntil(fmt.Sprintf("term %d lost", t1), 2*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(events, fmt.Sprintf("lost %d", t1))
	})
	// Between the lapse and a new term, the VIP never answers again.
	for term() <= t1 && d.Status().Roles[RoleVIP].Leader {
		if vipPresent(t, c) || armedFor(t, c) > 0 {
			t.Fatalf("the VIP came back in the lapsed term %d", t1)
		}
		time.Sleep(2 * time.Millisecond)
	}
	waitUntil("the VIP held again under a new term", 15*time.Second, func() bool {
		return d.Status().Roles[RoleVIP].Leader && term() > t1 && vipPresent(t, c) && armedFor(t, c) > 0
	})
	mu.Lock()
	t.Logf("lapsed term %d, now term %d; events %v", t1, term(), events)
	mu.Unlock()
	if _, ok := logged(recs(), "vip role stepped down after its fence lapsed"); !ok {
		t.Error("the step-down was not logged")
	}
	if got := sd.get(); len(got) != 1 {
		t.Errorf("StepDown called %d times, want 1", len(got))
	}
	// Stop the driver (hands the role over, releasing the VIP) before the
	// component's cleanup.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Stop(sctx); err != nil {
		t.Logf("driver stop: %v", err)
	}
}

// A flushed fence is the missing-tables path, not a lapse: renewals
// around `nft flush ruleset` (refreshes that may reach the kernel before
// or after the repair) never step the role down, and the VIP is held and
// armed again once the fence is back.
func TestFlushedFenceIsNotALapse(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (Debian package nftables)")
	}
	l := nslab.New(t, "agvt", 1)
	h := l.Hosts[0]
	c, _, recs := startVIP(t, h, true)
	var sd stepDowns
	c.setStepDown(sd.stepDown)
	hold(t, c, 12)
	time.Sleep(50 * time.Millisecond) // fence.Run subscribed
	// Holding mu keeps fence.Run in Events.Missing (the component's
	// fenceMissing), which it calls before it repairs: the refresh below
	// surely finds the tables gone.
	c.mu.Lock()
	h.MustExec("nft", "flush", "ruleset")
	lapsed := c.renewedLocked(12, time.Now().Add(5*time.Second))
	c.mu.Unlock()
	if lapsed {
		t.Fatal("a refresh on flushed tables was taken for a lapse")
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		end := time.Now().Add(2 * time.Second)
		for !cond() {
			if time.Now().After(end) {
				t.Fatalf("gave up waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	_, missed := logged(recs(), "fence arm failed")
	if !missed {
		t.Fatal("the refresh on flushed tables did not fail")
	}
	waitFor("the repair", func() bool { _, ok := logged(recs(), "fence repaired: vip added again"); return ok })
	c.renewed(12, time.Now().Add(5*time.Second))
	if got := sd.get(); len(got) != 0 {
		t.Fatalf("a flushed fence stepped the role down: %v", got)
	}
	if _, ok := logged(recs(), "fence lapsed under the held vip role: the vip stays silent for the rest of the term, stepping down"); ok {
		t.Fatal("a flushed fence was taken for a lapse")
	}
	if !vipPresent(t, c) || !c.m.Owned() || armedFor(t, c) < 4*time.Second {
		t.Fatalf("after the repair and a refresh: address %v, owned %v, armed %s", vipPresent(t, c), c.m.Owned(), armedFor(t, c))
	}
}
