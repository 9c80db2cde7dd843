package fence

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/masterd/masterd/internal/ownns/ownnstest"
)

// helperEnv makes the test binary run TestHelperWithoutCapSysAdmin's body;
// its value is the VIP to fence on eth0.
const helperEnv = "MASTERD_FENCE_NOCAP_HELPER"

// masterd.service grants no CAP_SYS_ADMIN, so the fence must open every
// socket without setns(2): a child without it (bounding set dropped by
// setpriv) in a lab host installs and arms the fence, sees it flushed
// through the change notifications (the subscription; the interval
// backstop is an hour) and repairs it.
func TestTheFenceNeedsNoCapSysAdmin(t *testing.T) {
	requireNft(t)
	const child = "TestHelperWithoutCapSysAdmin"
	h := newLab(t, 1).Hosts[0]
	out, err := h.Exec(ownnstest.ChildArgs(t, helperEnv+"="+vip4(h).String(), child)...)
	if err != nil || !ownnstest.Passed(out, child) {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestHelperWithoutCapSysAdmin is the child of TestTheFenceNeedsNoCapSysAdmin;
// in a normal run it skips.
func TestHelperWithoutCapSysAdmin(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process of TestTheFenceNeedsNoCapSysAdmin")
	}
	vip := netip.MustParseAddr(spec)
	ownnstest.RequireNoCapSysAdmin(t)
	cfg := DefaultConfig("eth0", vip)
	cfg.CheckInterval = time.Hour
	f, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer f.Remove()
	if err := f.Install(); err != nil {
		t.Fatal(err)
	}
	if err := f.Arm(vip, time.Minute); err != nil {
		t.Fatal(err)
	}
	missing, repaired := make(chan error, 1), make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx, Events{
			Missing:  func(err error) { missing <- err },
			Repaired: func() { repaired <- struct{}{} },
		})
	}()
	defer func() { cancel(); <-done }()
	// Run subscribes asynchronously: flush until the notification arrives.
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		if out, err := exec.Command("nft", "flush", "ruleset").CombinedOutput(); err != nil {
			t.Fatalf("nft flush ruleset: %v: %s", err, out)
		}
		select {
		case err := <-missing:
			if !errors.Is(err, ErrMissing) {
				t.Fatalf("missing: %v", err)
			}
			seen = true
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("no change notification within 10 s of flushing the ruleset")
		}
	}
	select {
	case <-repaired:
	case <-time.After(10 * time.Second):
		t.Fatal("not repaired within 10 s")
	}
	if err := f.Check(); err != nil {
		t.Fatalf("after the repair: %v", err)
	}
}
