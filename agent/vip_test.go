package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterd/masterd/election"
	"github.com/masterd/masterd/fence"
	"github.com/masterd/masterd/internal/nslab"
	"github.com/prometheus/client_golang/prometheus"
)

// The vip role's release and fence handling against the real kernel: a
// network namespace per test (nslab, names agvt-<pid>-*), the real vip
// manager, netlink and nftables.

// logRecord is one captured log line.
type logRecord struct {
	at  time.Time
	msg string
}

// recordingHandler keeps every record's message and time.
type recordingHandler struct {
	mu   *sync.Mutex
	recs *[]logRecord
}

func newRecordingLogger() (*slog.Logger, func() []logRecord) {
	h := recordingHandler{mu: &sync.Mutex{}, recs: &[]logRecord{}}
	return slog.New(h), func() []logRecord {
		h.mu.Lock()
		defer h.mu.Unlock()
		return append([]logRecord(nil), *h.recs...)
	}
}

func (h recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, logRecord{at: r.Time, msg: r.Message})
	return nil
}
func (h recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordingHandler) WithGroup(string) slog.Handler      { return h }

func logged(recs []logRecord, msg string) (time.Time, bool) {
	for _, r := range recs {
		if r.msg == msg {
			return r.at, true
		}
	}
	return time.Time{}, false
}

// startVIP starts a vip component for h's .4 address on eth0, with the
// fence when fenced, inside h's namespace.
func startVIP(t *testing.T, h *nslab.Host, fenced bool) (*vipComponent, netip.Addr, func() []logRecord) {
	t.Helper()
	a := h.V4.Masked().Addr().Next().Next().Next().Next()
	log, recs := newRecordingLogger()
	c := &vipComponent{n: &node{
		cfg: Config{VIP: VIPConfig{Enabled: true, Address: a, Interface: "eth0", Fence: fenced}},
		log: log, reg: prometheus.NewRegistry(),
	}}
	h.In(func() error { return c.Start(context.Background()) })
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("stop vip component: %v", err)
		}
	})
	return c, a, recs
}

// hold makes c the holder as the election does: a validated renewal (the
// fence armed until the deadline), then the acquisition.
func hold(t *testing.T, c *vipComponent, term uint64) {
	t.Helper()
	c.renewed(term, time.Now().Add(5*time.Second))
	c.acquire(context.Background(), term)
	if !c.m.Owned() {
		t.Fatal("the VIP is not owned after acquire")
	}
}

func vipPresent(t *testing.T, c *vipComponent) bool {
	t.Helper()
	copies, err := c.vipAddrs()
	if err != nil {
		t.Fatal(err)
	}
	return len(copies) > 0
}

func armedFor(t *testing.T, c *vipComponent) time.Duration {
	t.Helper()
	left, err := c.f.Armed(c.n.cfg.VIP.Address)
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// releaseCtx is the vip role's release deadline as the driver gives it.
func releaseCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), election.DefaultVIPTiming().ReleaseSlack)
	t.Cleanup(cancel)
	return ctx
}

func TestVIPReleaseIsVerifiedAndReturnsNilWithinItsSlack(t *testing.T) {
	l := nslab.New(t, "agvt", 1)
	c, _, _ := startVIP(t, l.Hosts[0], true)
	hold(t, c, 3)
	if !vipPresent(t, c) || armedFor(t, c) == 0 {
		t.Fatal("holder without its address or fence arm")
	}
	t0 := time.Now()
	if err := c.release(releaseCtx(t), 3); err != nil {
		t.Fatalf("release: %v", err)
	}
	took := time.Since(t0)
	t.Logf("verified release took %s (slack %s)", took, election.DefaultVIPTiming().ReleaseSlack)
	if took > election.DefaultVIPTiming().ReleaseSlack {
		t.Errorf("release took %s, over the vip role's slack", took)
	}
	if vipPresent(t, c) {
		t.Error("the address is still on an interface after a nil release")
	}
	if left := armedFor(t, c); left != 0 {
		t.Errorf("the fence is still armed for %s after a nil release", left)
	}
}

// The address delete fails (an injected step that deletes nothing): the
// release must not report success, must escalate (delete the address
// itself, disarm again) and leave no address and no arm behind.
func TestVIPReleaseWhoseDeleteFailsEscalatesAndLeavesNoAddress(t *testing.T) {
	l := nslab.New(t, "agvt", 1)
	c, _, recs := startVIP(t, l.Hosts[0], true)
	hold(t, c, 4)
	// vip.Manager.Release as it runs when its delete fails: ownership and
	// announcements stopped, the address left on the interface.
	injected := errors.New("injected: address delete failed")
	calls := 0
	c.releaseAddr = func(context.Context) error {
		calls++
		ended, cancel := context.WithCancel(context.Background())
		cancel()
		_ = c.m.Release(ended) // an ended context: stops owning, deletes nothing
		if !vipPresent(t, c) {
			t.Fatal("the injected failing step deleted the address")
		}
		return injected
	}
	err := c.release(releaseCtx(t), 4)
	if err == nil {
		t.Fatal("release returned nil although the address delete failed")
	}
	t.Logf("release error: %v", err)
	if !errors.Is(err, injected) || !strings.Contains(err.Error(), "escalated") || !strings.Contains(err.Error(), "verified") {
		t.Errorf("release error %q: want the injected failure and a verified escalation", err)
	}
	if calls != 1 {
		t.Errorf("the failing delete ran %d times, want 1", calls)
	}
	if _, ok := logged(recs(), "vip release failed, escalating"); !ok {
		t.Error("no escalation logged")
	}
	if vipPresent(t, c) {
		t.Error("the address survived the escalation")
	}
	if left := armedFor(t, c); left != 0 {
		t.Errorf("the fence is still armed for %s after the escalation", left)
	}
}

// A release that starts after its slack (a callback that ran late) finds
// its context ended: vip.Manager.Release then deletes nothing, and the
// escalation, which does not depend on ctx, must.
func TestVIPReleaseAfterItsDeadlineStillDeletesTheAddress(t *testing.T) {
	l := nslab.New(t, "agvt", 1)
	c, _, _ := startVIP(t, l.Hosts[0], false)
	hold(t, c, 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.release(ctx, 5)
	if err == nil || !strings.Contains(err.Error(), "verified") {
		t.Fatalf("release with an ended context: %v, want an error with a verified escalation", err)
	}
	if vipPresent(t, c) {
		t.Error("the address survived a release past its deadline")
	}
}

// After `nft flush ruleset` the holder must not keep the VIP unfenced: the
// fence's Run sees the flush through nftables' notifications, the agent
// drops the address, the fence is reinstalled and the address comes back,
// all within milliseconds, not at the next 1 s check.
func TestFlushedFenceDropsTheVIPUntilTheFenceIsBack(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (Debian package nftables)")
	}
	l := nslab.New(t, "agvt", 1)
	h := l.Hosts[0]
	c, _, recs := startVIP(t, h, true)
	hold(t, c, 6)
	time.Sleep(50 * time.Millisecond) // fence.Run subscribed
	t0 := time.Now()
	h.MustExec("nft", "flush", "ruleset")
	flushed := time.Now()
	var dropped, readded time.Time
	deadline := time.Now().Add(2 * time.Second)
	for {
		var ok1, ok2 bool
		r := recs()
		dropped, ok1 = logged(r, "fence missing: vip dropped until the fence is repaired")
		readded, ok2 = logged(r, "fence repaired: vip added again")
		if ok1 && ok2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 2 s of flush ruleset: dropped %v, added again %v (fence check interval %s)", ok1, ok2, fence.DefaultConfig("eth0").CheckInterval)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("`ip netns exec nft flush ruleset` ran %s; from its start the vip was dropped at +%s and added again at +%s (the fence check interval is %s)",
		flushed.Sub(t0).Round(time.Microsecond), dropped.Sub(t0).Round(time.Microsecond), readded.Sub(t0).Round(time.Microsecond), fence.DefaultConfig("eth0").CheckInterval)
	if d := readded.Sub(flushed); d > 200*time.Millisecond {
		t.Errorf("the VIP came back %s after the flush, want within 200 ms", d)
	}
	if readded.Before(dropped) {
		t.Error("added again before it was dropped")
	}
	if err := c.f.Check(); err != nil {
		t.Fatalf("fence after the repair: %v", err)
	}
	if !vipPresent(t, c) || !c.m.Owned() || armedFor(t, c) == 0 {
		t.Fatalf("after the repair: address present %v, owned %v, armed %s; want all", vipPresent(t, c), c.m.Owned(), armedFor(t, c))
	}
}

// While the fence is missing (and its repair not done) an acquisition
// does not add the address; the repair adds it; a release meanwhile
// leaves nothing to add.
func TestVIPIsNotAddedWhileTheFenceIsMissing(t *testing.T) {
	l := nslab.New(t, "agvt", 1)
	c, _, _ := startVIP(t, l.Hosts[0], true)
	c.fenceMissing(fence.ErrMissing)
	c.renewed(7, time.Now().Add(5*time.Second))
	c.acquire(context.Background(), 7)
	if vipPresent(t, c) || c.m.Owned() {
		t.Fatal("acquire added the VIP while the fence is missing")
	}
	c.fenceRepaired()
	if !vipPresent(t, c) || !c.m.Owned() {
		t.Fatal("the repair did not add the held VIP")
	}
	c.fenceMissing(fence.ErrMissing)
	if vipPresent(t, c) {
		t.Fatal("the VIP stayed while the fence went missing")
	}
	if err := c.release(releaseCtx(t), 7); err != nil {
		t.Fatalf("release while unfenced: %v", err)
	}
	c.fenceRepaired()
	if vipPresent(t, c) {
		t.Fatal("the repair added a VIP whose role was released")
	}
}
