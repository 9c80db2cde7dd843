package fence

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A refresh must never revive an element that expired before the kernel
// processed it (a stall between computing the timeout and the send): it is
// one batch that deletes the element and adds it back, and the kernel
// aborts the batch when the delete finds nothing. These tests check that
// claim on this kernel, then RefreshUntil on top of it.

// refreshBatch is the refresh of vip for ms milliseconds as RefreshUntil
// sends it, built by hand: per table, DELSETELEM then NEWSETELEM.
func refreshBatch(t testing.TB, f *Fence, vip netip.Addr, ms uint64) []netlink.Message {
	t.Helper()
	var msgs []netlink.Message
	for _, ts := range layout {
		if vip.Is6() && !ts.v6 {
			continue
		}
		del, err := elemMsg(unix.NFT_MSG_DELSETELEM, ts.family, f.cfg.Table, liveSet(vip), key(vip), 0)
		if err != nil {
			t.Fatal(err)
		}
		add, err := elemMsg(unix.NFT_MSG_NEWSETELEM, ts.family, f.cfg.Table, liveSet(vip), key(vip), ms)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, del, add)
	}
	return msgs
}

// inLiveSets lists the live sets with nft and reports in which tables vip
// is (as the kernel shows it: an expired element is not listed).
func inLiveSets(t *testing.T, h *labHost, vip netip.Addr) []string {
	t.Helper()
	var in []string
	for _, ts := range layout {
		if vip.Is6() && !ts.v6 {
			continue
		}
		fam := familyName(ts.family)
		out := h.MustExec("nft", "list", "set", fam, DefaultTable, liveSet(vip))
		if strings.Contains(out, vip.String()) {
			in = append(in, fam)
		}
	}
	return in
}

// The kernel's side of the rule, with the batch built by hand: an element
// armed for 50 ms, 100 ms later a delete+add batch fails (the delete with
// ENOENT, the add accepted but aborted with it) and the element stays
// absent; an element still live is deleted and re-added with the new
// timeout by the same batch.
func TestKernelAbortsDeleteAddBatchOfExpiredElement(t *testing.T) {
	requireNft(t)
	l := newLab(t, 1)
	h := l.Hosts[0]
	for _, vip := range []netip.Addr{vip4(h), vip6(h)} {
		f := newFence(t, h, vip)
		if err := f.Install(); err != nil {
			t.Fatal(err)
		}
		armed := time.Now()
		if err := f.Arm(vip, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		left, err := f.Armed(vip)
		if err != nil {
			t.Fatal(err)
		}
		if left == 0 && time.Since(armed) < 45*time.Millisecond {
			t.Fatalf("%s: not in the live sets right after a 50 ms arm", vip)
		}
		time.Sleep(100 * time.Millisecond)
		f.rawMu.Lock()
		res, err := f.execBatchResults(refreshBatch(t, f, vip, 5000))
		f.rawMu.Unlock()
		if err != nil {
			t.Fatalf("%s: batch: %v", vip, err)
		}
		t.Logf("%s: delete+add of an element expired 50 ms ago: per-message answers %v", vip, res)
		for i, r := range res {
			if i%2 == 0 && !errors.Is(r, unix.ENOENT) {
				t.Errorf("%s: delete %d of the expired element: %v, want ENOENT", vip, i/2, r)
			}
			if i%2 == 1 && r != nil {
				t.Errorf("%s: add %d (aborted with the batch): %v, want it acknowledged", vip, i/2, r)
			}
		}
		if in := inLiveSets(t, h, vip); len(in) > 0 {
			t.Fatalf("%s: the failed batch revived the expired element in %v", vip, in)
		}
		if left, err := f.Armed(vip); err != nil || left != 0 {
			t.Fatalf("%s: read back after the failed batch: left %s, %v; want absent", vip, left, err)
		}

		// Live: the same batch succeeds and extends the element.
		if err := f.Arm(vip, 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		f.rawMu.Lock()
		res, err = f.execBatchResults(refreshBatch(t, f, vip, 5000))
		f.rawMu.Unlock()
		if err != nil || errors.Join(res...) != nil {
			t.Fatalf("%s: delete+add of a live element: %v %v", vip, err, res)
		}
		left, err = f.Armed(vip)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: live element (200 ms left) after delete+add for 5 s: %s left", vip, left)
		if left < 4900*time.Millisecond {
			t.Errorf("%s: delete+add did not extend the element: %s left, want about 5 s", vip, left)
		}
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
	}
}

// RefreshUntil of an element that expired fails with ErrExpired and
// leaves nothing; of a live one it extends it.
func TestRefreshOfExpiredElementFailsAndLeavesNothing(t *testing.T) {
	requireNft(t)
	l := newLab(t, 1)
	h := l.Hosts[0]
	for _, vip := range []netip.Addr{vip4(h), vip6(h)} {
		f := newFence(t, h, vip)
		if err := f.Install(); err != nil {
			t.Fatal(err)
		}
		if err := f.ArmUntil(vip, time.Now().Add(50*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		err := f.RefreshUntil(vip, time.Now().Add(time.Second))
		t.Logf("%s: refresh 50 ms after expiry: %v", vip, err)
		if !errors.Is(err, ErrExpired) || errors.Is(err, ErrMissing) {
			t.Fatalf("%s: refresh of an expired element: %v, want ErrExpired (and not ErrMissing)", vip, err)
		}
		if in := inLiveSets(t, h, vip); len(in) > 0 {
			t.Fatalf("%s: the refresh revived the expired element in %v", vip, in)
		}
		if got := value(f.m.expiredRefreshes); got != 1 {
			t.Errorf("%s: vip_fence_expired_refreshes_total = %v, want 1", vip, got)
		}
		// An absent element (disarmed) is refused the same way.
		if err := f.RefreshUntil(vip, time.Now().Add(time.Second)); !errors.Is(err, ErrExpired) {
			t.Fatalf("%s: refresh of an absent element: %v, want ErrExpired", vip, err)
		}
		// Live: extended, read back.
		if err := f.ArmUntil(vip, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		end := time.Now().Add(2 * time.Second)
		if err := f.RefreshUntil(vip, end); err != nil {
			t.Fatalf("%s: refresh of a live element: %v", vip, err)
		}
		over, armed := expiryPast(t, h, vip, end)
		if !armed || over > ExpirySlack || over < -250*time.Millisecond {
			t.Fatalf("%s: after refreshing a live element until +2 s: armed %v, expiry %s from the end", vip, armed, over)
		}
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
	}
}

// A stall between computing a refresh's timeout and the send, longer than
// what was left of the element: the kernel gets the refresh after the
// element expired; it must fail and the element must be absent right
// after (read back from the kernel and listed with nft), not revived until
// a read-back deletes it.
func TestRefreshStalledPastExpiryDoesNotReviveTheElement(t *testing.T) {
	h, vip, f := installedFence(t)
	if err := f.ArmUntil(vip, time.Now().Add(60*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	// The renewal that follows: validated now, deadline 1 s away, but the
	// daemon stalls 150 ms before the kernel gets the refresh.
	f.beforeSend = stallOnce(150 * time.Millisecond)
	t0 := time.Now()
	err := f.RefreshUntil(vip, time.Now().Add(time.Second))
	took := time.Since(t0)
	f.beforeSend = nil
	left, rerr := f.Armed(vip)
	in := inLiveSets(t, h, vip)
	t.Logf("refresh stalled 150 ms past a 60 ms element: %v after %s; read back right after: %s left (%v), nft lists it in %v",
		err, took.Round(time.Microsecond), left, rerr, in)
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("stalled refresh: %v, want ErrExpired", err)
	}
	if rerr != nil || left != 0 || len(in) > 0 {
		t.Fatal("the stalled refresh revived the expired element")
	}
	if got := value(f.m.corrections); got != 0 {
		t.Errorf("corrections %v: the refresh must fail before any read-back correction", got)
	}

	// A stall shorter than what is left: the refresh succeeds, the
	// read-back corrects the overshoot as for a first arm. (On a loaded
	// host the read-back, which dates the kernel's answer after the dump
	// and so may overstate the expiry, can find the shorter re-arm past
	// the end too and delete the element: safe, and said in the error.)
	if err := f.ArmUntil(vip, time.Now().Add(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	f.beforeSend = stallOnce(150 * time.Millisecond)
	end := time.Now().Add(time.Second)
	err = f.RefreshUntil(vip, end)
	f.beforeSend = nil
	over, armed := expiryPast(t, h, vip, end)
	t.Logf("refresh stalled 150 ms with 500 ms left: %v; expiry %s past the end, corrections %v", err, over, value(f.m.corrections))
	switch {
	case err == nil && (!armed || over > ExpirySlack):
		t.Fatalf("after a stalled live refresh: armed %v, %s past the end", armed, over)
	case err != nil && !strings.Contains(err.Error(), "disarmed"):
		t.Fatalf("refresh stalled 150 ms with 500 ms left: %v", err)
	case err != nil && armed:
		t.Fatalf("the refresh says it disarmed, but the element is there, %s past the end", over)
	}
}

// A refresh after `nft flush ruleset` is the missing-tables case, not an
// expired element: ErrMissing (Run repairs), not ErrExpired.
func TestRefreshOnMissingTablesIsErrMissing(t *testing.T) {
	h, vip, f := installedFence(t)
	if err := f.ArmUntil(vip, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	h.MustExec("nft", "flush", "ruleset")
	err := f.RefreshUntil(vip, time.Now().Add(time.Second))
	if !errors.Is(err, ErrMissing) || errors.Is(err, ErrExpired) {
		t.Fatalf("refresh after flush ruleset: %v, want ErrMissing only", err)
	}
	// Only the inet table gone: still missing, not expired.
	if err := f.Repair(); err != nil {
		t.Fatal(err)
	}
	h.MustExec("nft", "delete", "table", "inet", DefaultTable)
	err = f.RefreshUntil(vip, time.Now().Add(time.Second))
	if !errors.Is(err, ErrMissing) || errors.Is(err, ErrExpired) {
		t.Fatalf("refresh with the inet table deleted: %v, want ErrMissing only", err)
	}
}
