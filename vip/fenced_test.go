package vip

// The VIP together with the kernel fence (package fence), in the order the
// agent calls them: Arm before Acquire, Disarm before Release. This test
// imports fence only to check the wiring; package vip itself does not.

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/masterd/masterd/fence"
)

func newFence(t *testing.T, h *labHost, vip netip.Addr) *fence.Fence {
	t.Helper()
	var f *fence.Fence
	h.In(func() error {
		var err error
		if f, err = fence.New(fence.DefaultConfig("eth0", vip), nil, nil); err != nil {
			return err
		}
		return f.Install()
	})
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFencedMoveReachesTheClientAndAFencedStaleCopyIsNoConflict(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			l := newLab(t, 3)
			a, b, client := l.Hosts[0], l.Hosts[1], l.Hosts[2]
			vip := f.vip(a)
			cfg := DefaultConfig(vip)
			cfg.ConflictProbeInterval = 20 * time.Millisecond
			fa, fb := newFence(t, a, vip), newFence(t, b, vip)
			ma, mb := newManager(t, a, cfg, nil), newManager(t, b, cfg, nil)
			runManager(t, ma)
			runManager(t, mb)
			ctx := context.Background()

			if err := fa.Arm(vip, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := ma.Acquire(ctx); err != nil {
				t.Fatal(err)
			}
			client.MustExec("ping", "-c", "1", "-W", "2", vip.String())
			if got := client.Neighbour(vip); !bytes.Equal(got, a.MAC) {
				t.Fatalf("client resolved %s to %v, want a's %v", vip, got, a.MAC)
			}

			// Handover: the old holder silences itself first.
			if err := fa.Disarm(vip); err != nil {
				t.Fatal(err)
			}
			if err := ma.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := fb.Arm(vip, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := mb.Acquire(ctx); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the client's entry to show b's MAC", 4*time.Second, func() bool {
				return bytes.Equal(client.Neighbour(vip), b.MAC)
			})
			client.MustExec("ping", "-c", "1", "-W", "2", vip.String())

			// A copy of the VIP left on a (crashed run) but fenced answers
			// nobody: b's probes find no conflict. Armed, it is a second
			// holder and b reports it.
			args := []string{"ip", "addr", "add", netip.PrefixFrom(vip, vip.BitLen()).String(), "dev", "eth0"}
			if vip.Is6() {
				args = append(args, "nodad")
			}
			a.MustExec(args...)
			time.Sleep(25 * cfg.ConflictProbeInterval)
			if got := value(mb.m.conflicts); got != 0 {
				t.Fatalf("b counted %v conflicts with a's fenced copy", got)
			}
			if err := fa.Arm(vip, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "b to report a's armed copy", 5*time.Second, func() bool { return value(mb.m.conflicts) >= 1 })
		})
	}
}
