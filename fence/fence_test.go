package fence

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func requireNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (Debian package nftables) to inspect and flush rulesets")
	}
}

func vip4(h *labHost) netip.Addr { return h.V4.Masked().Addr().Next().Next().Next().Next() } // .4 of the lab subnet

func vip6(h *labHost) netip.Addr {
	a := h.V6.Masked().Addr().As16()
	a[15] = 0x64
	return netip.AddrFrom16(a)
}

// newFence creates a fence inside h's namespace with its own registry.
// installedFence returns a one-host lab's host, its IPv4 VIP and a fence
// for it with its tables installed.
func installedFence(t *testing.T) (*labHost, netip.Addr, *Fence) {
	t.Helper()
	requireNft(t)
	h := newLab(t, 1).Hosts[0]
	vip := vip4(h)
	f := newFence(t, h, vip)
	if err := f.Install(); err != nil {
		t.Fatal(err)
	}
	return h, vip, f
}

func newFence(t *testing.T, h *labHost, vips ...netip.Addr) *Fence {
	t.Helper()
	var f *Fence
	h.In(func() error {
		var err error
		f, err = New(DefaultConfig("eth0", vips...), nil, prometheus.NewRegistry())
		return err
	})
	t.Cleanup(func() { f.Close() })
	return f
}

func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Histogram != nil:
		return float64(d.Histogram.GetSampleCount())
	}
	return 0
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// liveExpiry returns the remaining expiry of vip in the inet table's live
// set, and whether it is there.
func liveExpiry(t *testing.T, f *Fence, vip netip.Addr) (time.Duration, bool) {
	t.Helper()
	f.nftMu.Lock()
	defer f.nftMu.Unlock()
	tbl := &nftables.Table{Name: f.cfg.Table, Family: nftables.TableFamilyINet}
	set, err := f.nft.GetSetByName(tbl, liveSet(vip))
	if err != nil {
		t.Fatalf("live set: %v", err)
	}
	elems, err := f.nft.GetSetElements(set)
	if err != nil {
		t.Fatalf("live elements: %v", err)
	}
	for _, e := range elems {
		if a, ok := netip.AddrFromSlice(e.Key); ok && a == vip {
			return e.Expires, true
		}
	}
	return 0, false
}

func TestInstallBuildsTheFenceAndCheckAcceptsIt(t *testing.T) {
	requireNft(t)
	l := newLab(t, 1)
	h := l.Hosts[0]
	f := newFence(t, h, vip4(h), vip6(h))
	if err := f.Check(); err != nil {
		t.Fatalf("Check before Install: %v, want nil (nothing to check yet)", err)
	}
	if err := f.Install(); err != nil {
		t.Fatal(err)
	}
	if err := f.Install(); err != nil {
		t.Fatalf("second Install (replaces atomically): %v", err)
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	out := h.MustExec("nft", "list", "ruleset")
	t.Logf("installed ruleset:\n%s", out)
	for _, want := range []string{"table arp masterd_fence", "table netdev masterd_fence", "table inet masterd_fence",
		"hook egress device \"eth0\"", "flags timeout", vip4(h).String(), vip6(h).String()} {
		if !strings.Contains(out, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, out)
		}
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if out := h.MustExec("nft", "list", "ruleset"); strings.Contains(out, "masterd_fence") {
		t.Fatalf("tables left after Remove:\n%s", out)
	}
}

// RemoveTables takes out a fence a previous configuration left, without
// the Fence that installed it (the agent's start with vip.fence off).
func TestRemoveTablesRemovesALeftFenceWithoutItsFence(t *testing.T) {
	requireNft(t)
	l := newLab(t, 1)
	h := l.Hosts[0]
	f := newFence(t, h, vip4(h))
	if err := f.Install(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for range 2 { // the second finds nothing and still succeeds
		h.In(func() error { return RemoveTables(DefaultTable) })
	}
	if out := h.MustExec("nft", "list", "ruleset"); strings.Contains(out, DefaultTable) {
		t.Fatalf("tables left after RemoveTables:\n%s", out)
	}
	h.In(func() error {
		if err := RemoveTables("bad name"); err == nil {
			return errors.New("RemoveTables accepted the table name \"bad name\"")
		}
		return nil
	})
}

// A re-arm with the same duration must extend the expiry: the kernel keeps
// the old expiry unless the update carries an expiration.
func TestRearmWithTheSameDurationExtendsTheExpiry(t *testing.T) {
	l := newLab(t, 1)
	h := l.Hosts[0]
	for _, vip := range []netip.Addr{vip4(h), vip6(h)} {
		f := newFence(t, h, vip)
		if err := f.Install(); err != nil {
			t.Fatal(err)
		}
		if err := f.Arm(vip, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(600 * time.Millisecond)
		before, ok := liveExpiry(t, f, vip)
		if !ok {
			t.Fatalf("%s not in the live set after Arm", vip)
		}
		if err := f.Arm(vip, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		after, ok := liveExpiry(t, f, vip)
		if !ok {
			t.Fatalf("%s not in the live set after the second Arm", vip)
		}
		if after <= before+300*time.Millisecond {
			t.Fatalf("%s: expiry %s before the re-arm, %s after: not extended", vip, before, after)
		}
		if err := f.Disarm(vip); err != nil {
			t.Fatal(err)
		}
		if _, ok := liveExpiry(t, f, vip); ok {
			t.Fatalf("%s still live after Disarm", vip)
		}
		if err := f.Disarm(vip); err != nil {
			t.Fatalf("Disarm of a disarmed VIP: %v", err)
		}
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestArmRejectsAnAddressItDoesNotFence(t *testing.T) {
	l := newLab(t, 1)
	h := l.Hosts[0]
	f := newFence(t, h, vip4(h))
	if err := f.Install(); err != nil {
		t.Fatal(err)
	}
	if err := f.Arm(netip.MustParseAddr("192.0.2.1"), time.Second); err == nil {
		t.Fatal("Arm of an unfenced address succeeded")
	}
}

func TestFlushedRulesetIsDetectedAndRepairedKeepingTheArm(t *testing.T) {
	h, vip, f := installedFence(t)
	if err := f.Arm(vip, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	h.MustExec("nft", "flush", "ruleset")
	err := f.Check()
	if !errors.Is(err, ErrMissing) {
		t.Fatalf("Check after flush ruleset: %v, want ErrMissing", err)
	}
	if got := value(f.m.missing); got != 1 {
		t.Fatalf("fence_missing_total %v, want 1", got)
	}
	if err := f.Repair(); err != nil {
		t.Fatal(err)
	}
	if err := f.Check(); err != nil {
		t.Fatalf("Check after Repair: %v", err)
	}
	left, ok := liveExpiry(t, f, vip)
	if !ok || left > 10*time.Second || left < 5*time.Second {
		t.Fatalf("after Repair the VIP's expiry is %s (present %v), want what was left of the 10 s arm", left, ok)
	}

	// A partial flush (rules only) is a missing fence too.
	h.MustExec("nft", "flush", "chain", "arp", "masterd_fence", "output")
	if err := f.Check(); !errors.Is(err, ErrMissing) {
		t.Fatalf("Check after flushing a chain: %v, want ErrMissing", err)
	}
	h.MustExec("nft", "flush", "set", "inet", "masterd_fence", "vips4")
	if err := f.Check(); !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "vips4") {
		t.Fatalf("Check after flushing the vips set: %v, want ErrMissing naming vips4", err)
	}
}

func TestRunRepairsAFlushedRuleset(t *testing.T) {
	requireNft(t)
	l := newLab(t, 1)
	h := l.Hosts[0]
	vip := vip4(h)
	var f *Fence
	h.In(func() error {
		cfg := DefaultConfig("eth0", vip)
		cfg.CheckInterval = 20 * time.Millisecond
		var err error
		f, err = New(cfg, nil, prometheus.NewRegistry())
		return err
	})
	t.Cleanup(func() { f.Close() })
	if err := f.Install(); err != nil {
		t.Fatal(err)
	}
	repaired := make(chan struct{}, 10)
	ctx, cancel := contextWithCancel()
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx, Events{Repaired: func() { repaired <- struct{}{} }}) }()
	t.Cleanup(func() { cancel(); <-done })
	h.MustExec("nft", "flush", "ruleset")
	select {
	case <-repaired:
	case <-time.After(5 * time.Second):
		t.Fatal("no repair within 5 s of flush ruleset")
	}
	if err := f.Check(); err != nil {
		t.Fatalf("Check after Run's repair: %v", err)
	}
	if value(f.m.missing) < 1 || value(f.m.repairs) < 1 {
		t.Fatalf("missing_total %v repairs_total %v, want both >= 1", value(f.m.missing), value(f.m.repairs))
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// LiveFor reads, without a Fence, how long the kernel still lets a VIP
// answer: what `masterd cleanup` waits out before it deletes a dead
// holder's address.
func TestLiveForTellsHowLongTheKernelLetsTheVIPAnswer(t *testing.T) {
	l := newLab(t, 1)
	h := l.Hosts[0]
	for _, vip := range []netip.Addr{vip4(h), vip6(h)} {
		liveFor := func() time.Duration {
			t.Helper()
			var d time.Duration
			h.In(func() error {
				var err error
				d, err = LiveFor(DefaultTable, vip)
				return err
			})
			return d
		}
		if d := liveFor(); d != 0 {
			t.Fatalf("%s: LiveFor without a fence = %s, want 0", vip, d)
		}
		f := newFence(t, h, vip)
		if err := f.Install(); err != nil {
			t.Fatal(err)
		}
		if d := liveFor(); d != 0 {
			t.Fatalf("%s: LiveFor of an unarmed VIP = %s, want 0", vip, d)
		}
		if err := f.Arm(vip, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if d := liveFor(); d <= time.Second || d > 2*time.Second {
			t.Fatalf("%s: LiveFor right after Arm(2s) = %s, want (1s, 2s]", vip, d)
		}
		if err := f.Disarm(vip); err != nil {
			t.Fatal(err)
		}
		if d := liveFor(); d != 0 {
			t.Fatalf("%s: LiveFor after Disarm = %s, want 0", vip, d)
		}
		if err := f.Arm(vip, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
		if d := liveFor(); d != 0 {
			t.Fatalf("%s: LiveFor after the tables are gone = %s, want 0", vip, d)
		}
	}
	h.In(func() error {
		if _, err := LiveFor("bad name", vip4(h)); err == nil || !strings.Contains(err.Error(), "bad name") {
			return fmt.Errorf("LiveFor with table \"bad name\": err %v, want one naming the table", err)
		}
		return nil
	})
}
