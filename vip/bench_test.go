package vip

import (
	"context"
	"testing"
)

// Cost of a graceful move's local half: Release on one node, Acquire
// (netlink add + first announcement) on the next. Run:
// go test -run XXX -bench AcquireRelease -benchtime 500x ./vip/
func BenchmarkAcquireRelease(b *testing.B) {
	for _, f := range families {
		b.Run(f.name, func(b *testing.B) {
			l := newLab(b, 1)
			h := l.Hosts[0]
			var m *Manager
			h.In(func() error {
				var err error
				m, err = New(DefaultConfig(f.vip(h)), nil, nil)
				return err
			})
			b.Cleanup(func() { m.Close() })
			ctx := context.Background()
			for b.Loop() {
				if err := m.Acquire(ctx); err != nil {
					b.Fatal(err)
				}
				if err := m.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Cost of the first Acquire of a new Manager (a daemon that just started
// takes the VIP over); New, Release and Close are not timed. The first
// Acquire binds the claim socket to the interface; a socket opened with its
// protocol was already hooked to every interface, and the kernel's unhook on
// bind waited an RCU grace period (10-15 ms in the lab) right here. Run:
// go test -run XXX -bench FirstAcquire -benchtime 200x ./vip/
func BenchmarkFirstAcquire(b *testing.B) {
	l := newLab(b, 1)
	h := l.Hosts[0]
	cfg := DefaultConfig(families[0].vip(h))
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		var m *Manager
		h.In(func() error {
			var err error
			m, err = New(cfg, nil, nil)
			return err
		})
		b.StartTimer()
		if err := m.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := m.Release(ctx); err != nil {
			b.Fatal(err)
		}
		m.Close()
		b.StartTimer()
	}
}
