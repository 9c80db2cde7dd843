package fence

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// stallOnce returns a beforeSend hook that sleeps d on its first call
// only: one stall between computing an arm's timeout and sending it.
func stallOnce(d time.Duration) func() {
	done := false
	return func() {
		if !done {
			done = true
			time.Sleep(d)
		}
	}
}

// stallAlways sleeps d before every send.
func stallAlways(d time.Duration) func() { return func() { time.Sleep(d) } }

// expiryPast reads vip's latest expiry in every table of the fence from
// the kernel and returns how far past end it lies (negative: before end),
// and whether vip is armed at all. The value is a lower bound: dated from
// a clock read before the dumps, since the kernel computed the remaining
// time after it. The upper bound (dated after the dumps) exceeds it by how
// long LiveFor took, which on a loaded 2-core host reached 67 ms — a delay
// the tests must not take for a late fence; the width is logged when it
// is over 2 ms.
func expiryPast(t *testing.T, h *labHost, vip netip.Addr, end time.Time) (time.Duration, bool) {
	t.Helper()
	var left time.Duration
	var before, after time.Time
	h.In(func() error {
		var err error
		before = time.Now()
		left, err = LiveFor(DefaultTable, vip)
		after = time.Now()
		return err
	})
	if w := after.Sub(before); w > 2*time.Millisecond {
		t.Logf("LiveFor took %s: the expiry lies %s to %s past the end", w.Round(time.Microsecond),
			before.Add(left).Sub(end).Round(time.Microsecond), after.Add(left).Sub(end).Round(time.Microsecond))
	}
	return before.Add(left).Sub(end), left > 0
}

// The kernel counts an arm's relative timeout from when it processes the
// message: a 300 ms stall between computing the timeout and sending it
// leaves the element 300 ms past its end unless the arm is read back and
// corrected. With the read-back the expiry is at most ExpirySlack past the
// end, and the VIP stays armed (shorter, not dropped).
func TestArmStalledBeforeTheSendIsReadBackAndCorrected(t *testing.T) {
	requireNft(t)
	l := newLab(t, 1)
	h := l.Hosts[0]
	for _, vip := range []netip.Addr{vip4(h), vip6(h)} {
		f := newFence(t, h, vip)
		if err := f.Install(); err != nil {
			t.Fatal(err)
		}
		f.beforeSend = stallOnce(300 * time.Millisecond)
		end := time.Now().Add(time.Second)
		t0 := time.Now()
		if err := f.ArmUntil(vip, end); err != nil {
			t.Fatalf("%s: ArmUntil with one stall: %v", vip, err)
		}
		took := time.Since(t0)
		f.beforeSend = nil
		over, armed := expiryPast(t, h, vip, end)
		t.Logf("%s: 300 ms stall before the send: ArmUntil took %s; expiry %s past the end afterwards (slack %s); corrections %v",
			vip, took.Round(time.Microsecond), over, ExpirySlack, value(f.m.corrections))
		if over > ExpirySlack {
			t.Errorf("%s: the element expires %s after the arm's end: the stall extended the fence past the deadline", vip, over)
		}
		if !armed || over < -400*time.Millisecond {
			t.Errorf("%s: after one stall the VIP is armed=%v, %s before the end: the correction must re-arm shorter, not drop it", vip, armed, -over)
		}
		if got := value(f.m.corrections); got != 1 {
			t.Errorf("%s: vip_fence_expiry_corrections_total = %v, want 1", vip, got)
		}
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
	}
}

// Stalls before every send: the re-arm overshoots too, so the element is
// deleted (the VIP silent until the next renewal) and ArmUntil says so.
func TestArmStalledAgainOnTheReArmIsDisarmed(t *testing.T) {
	h, vip, f := installedFence(t)
	f.beforeSend = stallAlways(100 * time.Millisecond)
	end := time.Now().Add(time.Second)
	err := f.ArmUntil(vip, end)
	f.beforeSend = nil
	if err == nil || !strings.Contains(err.Error(), "disarmed") {
		t.Fatalf("ArmUntil stalled on every send: %v, want an error saying it disarmed", err)
	}
	if _, armed := expiryPast(t, h, vip, end); armed {
		t.Fatal("the VIP is still armed after two overshooting arms")
	}
}

// Repair re-arms each VIP with what is left of its last arm, computed
// before the batch is sent: the same stall, the same read-back.
func TestRepairStalledBeforeTheSendIsReadBackAndCorrected(t *testing.T) {
	h, vip, f := installedFence(t)
	end := time.Now().Add(2 * time.Second)
	if err := f.ArmUntil(vip, end); err != nil {
		t.Fatal(err)
	}
	h.MustExec("nft", "flush", "ruleset")
	if err := f.ArmUntil(vip, end); !errors.Is(err, ErrMissing) {
		t.Fatalf("ArmUntil after flush ruleset: %v, want ErrMissing", err)
	}
	f.beforeSend = stallOnce(300 * time.Millisecond)
	if err := f.Repair(); err != nil {
		t.Fatal(err)
	}
	f.beforeSend = nil
	over, armed := expiryPast(t, h, vip, end)
	t.Logf("repair with a 300 ms stall: expiry %s past the end", over)
	if over > ExpirySlack {
		t.Errorf("after the stalled repair the element expires %s after the arm's end", over)
	}
	if !armed {
		t.Error("the repair dropped the arm instead of shortening it")
	}
}
