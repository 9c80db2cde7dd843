package vip

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/masterd/masterd/internal/ownns/ownnstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary run TestHelperWithoutCapSysAdmin's body;
// its value is the VIP to manage.
const helperEnv = "MASTERD_VIP_NOCAP_HELPER"

// masterd.service grants no CAP_SYS_ADMIN, so the Manager must open every
// socket without setns(2): a child without it (bounding set dropped by
// setpriv) in a lab host adds the VIP, watches it (puts it back when removed
// under it, which needs the netlink subscription) and removes it.
func TestTheManagerNeedsNoCapSysAdmin(t *testing.T) {
	const child = "TestHelperWithoutCapSysAdmin"
	l := newLab(t, 1)
	h := l.Hosts[0]
	for _, f := range families {
		out, err := h.Exec(ownnstest.ChildArgs(t, helperEnv+"="+f.vip(h).String(), child)...)
		if err != nil || !ownnstest.Passed(out, child) {
			t.Errorf("%s: %v\n%s", f.name, err, out)
		}
	}
}

// TestHelperWithoutCapSysAdmin is the child of TestTheManagerNeedsNoCapSysAdmin;
// in a normal run it skips.
func TestHelperWithoutCapSysAdmin(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process of TestTheManagerNeedsNoCapSysAdmin")
	}
	vip := netip.MustParseAddr(spec)
	// The child must really lack the capability, or it proves nothing.
	ownnstest.RequireNoCapSysAdmin(t)

	m, err := New(DefaultConfig(vip), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := m.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	held := func() (netlink.Addr, bool) {
		family := netlink.FAMILY_V4
		if vip.Is6() {
			family = netlink.FAMILY_V6
		}
		as, err := netlink.AddrList(nil, family)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if p, ok := netipPrefix(a.IPNet); ok && p.Addr() == vip {
				return a, true
			}
		}
		return netlink.Addr{}, false
	}
	a, ok := held()
	if !ok {
		t.Fatal("the VIP is not on the host after Acquire")
	}
	// Removed under the manager: the subscription sees it and puts it back.
	// Run subscribes asynchronously; removing until the counter moves
	// covers a removal that came before the subscription.
	waitFor(t, "the removed VIP to be put back", 10*time.Second, func() bool {
		if _, ok := held(); ok {
			if value(m.m.removedExternally) >= 1 {
				return true
			}
			link := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: a.LinkIndex}}
			if err := netlink.AddrDel(link, &netlink.Addr{IPNet: a.IPNet}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				t.Fatalf("remove the VIP: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return false
	})
	if err := m.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := held(); ok {
		t.Fatal("the VIP is still on the host after Release")
	}
}
