package fence

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// With a check interval of an hour only the kernel's change notification
// (or an Arm that finds the tables gone) can make Run notice a flushed
// ruleset: it must report the fence missing and repair it within
// milliseconds, keeping the VIP's arm.
func TestRunRepairsAFlushedRulesetAtOnceNotAtTheNextCheck(t *testing.T) {
	requireNft(t)
	l := newLab(t, 1)
	h := l.Hosts[0]
	vip := vip4(h)
	var f *Fence
	h.In(func() error {
		cfg := DefaultConfig("eth0", vip)
		cfg.CheckInterval = time.Hour
		var err error
		f, err = New(cfg, nil, prometheus.NewRegistry())
		return err
	})
	t.Cleanup(func() { f.Close() })
	if err := f.Install(); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(10 * time.Second)
	if err := f.ArmUntil(vip, end); err != nil {
		t.Fatal(err)
	}
	type event struct {
		missing bool
		at      time.Time
		err     error
	}
	events := make(chan event, 10)
	ctx, cancel := contextWithCancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx, Events{
			Missing:  func(err error) { events <- event{missing: true, at: time.Now(), err: err} },
			Repaired: func() { events <- event{at: time.Now()} },
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(50 * time.Millisecond) // Run subscribed
	for round := range 3 {
		t0 := time.Now()
		h.MustExec("nft", "flush", "ruleset")
		flushed := time.Now()
		var got []event
		for len(got) < 2 {
			select {
			case e := <-events:
				got = append(got, e)
			case <-time.After(2 * time.Second):
				t.Fatalf("round %d: events %+v within 2 s of flush ruleset (check interval 1 h), want missing then repaired", round, got)
			}
		}
		if !got[0].missing || got[1].missing || !errors.Is(got[0].err, ErrMissing) {
			t.Fatalf("round %d: events %+v, want missing (ErrMissing) then repaired", round, got)
		}
		t.Logf("round %d: `nft flush ruleset` took %s; missing reported %s after it returned, repaired %s after",
			round, flushed.Sub(t0).Round(time.Microsecond), got[0].at.Sub(flushed).Round(time.Microsecond), got[1].at.Sub(flushed).Round(time.Microsecond))
		if d := got[1].at.Sub(flushed); d > 200*time.Millisecond {
			t.Errorf("round %d: repaired %s after the flush, want within 200 ms", round, d)
		}
		if err := f.Check(); err != nil {
			t.Fatalf("round %d: Check after the repair: %v", round, err)
		}
		if over, armed := expiryPast(t, h, vip, end); !armed || over > ExpirySlack {
			t.Fatalf("round %d: after the repair the VIP is armed=%v, %s past its end: want what was left of the arm", round, armed, over)
		}
	}
	// Our own arms and disarms are no trigger.
	if err := f.Disarm(vip); err != nil {
		t.Fatal(err)
	}
	if err := f.ArmUntil(vip, end); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		t.Fatalf("event %+v after a disarm and arm", e)
	case <-time.After(100 * time.Millisecond):
	}
}
