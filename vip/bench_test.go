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
