package fence

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"
)

// Cost of one refresh of a live element, as the holder does on every
// renewal. Run: go test -run XXX -bench Arm -benchtime 2000x ./fence/
func BenchmarkArm(b *testing.B) {
	l := newLab(b, 1)
	h := l.Hosts[0]
	for _, vip := range []netip.Addr{vip4(h), vip6(h)} {
		name := map[bool]string{true: "ipv4", false: "ipv6"}[vip.Is4()]
		b.Run("expiration/"+name, func(b *testing.B) {
			f := newFenceTB(b, h, vip)
			if err := f.Install(); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := f.Arm(vip, 250*time.Millisecond); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The alternative google/nftables allows: delete and re-add the
	// element in one batch (it cannot send the expiration).
	b.Run("delete+add/ipv4", func(b *testing.B) {
		vip := vip4(h)
		f := newFenceTB(b, h, vip)
		if err := f.Install(); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			for _, ts := range layout {
				t := &nftables.Table{Name: f.cfg.Table, Family: ts.family}
				s := &nftables.Set{Table: t, Name: setLive4, KeyType: nftables.TypeIPAddr, HasTimeout: true}
				e := []nftables.SetElement{{Key: key(vip), Timeout: 250 * time.Millisecond}}
				_ = f.nft.SetAddElements(s, e)
				_ = f.nft.SetDeleteElements(s, e)
				_ = f.nft.SetAddElements(s, e)
			}
			if err := f.nft.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func newFenceTB(tb testing.TB, h *labHost, vips ...netip.Addr) *Fence {
	tb.Helper()
	var f *Fence
	h.In(func() error {
		var err error
		f, err = New(DefaultConfig("eth0", vips...), nil, nil)
		return err
	})
	tb.Cleanup(func() { f.Close() })
	return f
}

// Cost of one Check (Run does one every CheckInterval).
func BenchmarkCheck(b *testing.B) {
	l := newLab(b, 1)
	h := l.Hosts[0]
	f := newFenceTB(b, h, vip4(h), vip6(h))
	if err := f.Install(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := f.Check(); err != nil {
			b.Fatal(err)
		}
	}
}

// Cost of one refresh as the holder sends it on every renewal after the
// first arm of a term, against the in-place add it replaced: the batch
// alone ("send"), and the whole call with the read-back ("call"). Run:
// go test -run XXX -bench Refresh -benchtime 2000x ./fence/
func BenchmarkRefresh(b *testing.B) {
	l := newLab(b, 1)
	h := l.Hosts[0]
	for _, vip := range []netip.Addr{vip4(h), vip6(h)} {
		name := map[bool]string{true: "ipv4", false: "ipv6"}[vip.Is4()]
		for _, refresh := range []bool{false, true} {
			kind := map[bool]string{false: "in-place-add", true: "delete+add"}[refresh]
			b.Run("send/"+kind+"/"+name, func(b *testing.B) {
				f := newFenceTB(b, h, vip)
				if err := f.Install(); err != nil {
					b.Fatal(err)
				}
				if err := f.Arm(vip, time.Second); err != nil {
					b.Fatal(err)
				}
				f.rawMu.Lock()
				defer f.rawMu.Unlock()
				var took []time.Duration
				for b.Loop() {
					t0 := time.Now()
					if err := f.armLocked(vip, time.Now().Add(250*time.Millisecond), refresh); err != nil {
						b.Fatal(err)
					}
					took = append(took, time.Since(t0))
				}
				slices.Sort(took)
				b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(took[len(took)-1].Microseconds()), "max-µs")
			})
		}
		b.Run("call/ArmUntil/"+name, func(b *testing.B) {
			f := newFenceTB(b, h, vip)
			if err := f.Install(); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := f.ArmUntil(vip, time.Now().Add(250*time.Millisecond)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("call/RefreshUntil/"+name, func(b *testing.B) {
			f := newFenceTB(b, h, vip)
			if err := f.Install(); err != nil {
				b.Fatal(err)
			}
			if err := f.ArmUntil(vip, time.Now().Add(time.Second)); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := f.RefreshUntil(vip, time.Now().Add(250*time.Millisecond)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
