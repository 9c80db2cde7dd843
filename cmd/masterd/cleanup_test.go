package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/fence"
	"github.com/masterd/masterd/internal/nslab"
	"github.com/vishvananda/netlink"
)

// cleanupConfig holds the VIP on eth0 with the fence, and no Kubernetes.
func cleanupConfig(t *testing.T, self netip.Addr, vip netip.Addr) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "masterd.yaml")
	cfg := "name: solo\naddress: " + self.String() + "\n" +
		"peers: [{name: solo, address: " + self.String() + "}]\n" +
		"vip: {enabled: true, address: " + vip.String() + ", interface: eth0, fence: true}\n" +
		"kubernetes: {mode: none, serviceCIDR: 172.30.0.0/16}\n" // off the lab's 10.x nets
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A dead holder's VIP is deleted by `masterd cleanup` (ExecStopPost=) when
// its fence expires: not earlier (its lease was still valid, so it served
// like a live holder) and not later (another master may add the VIP right
// after). An unarmed VIP is deleted at once.
func TestCleanupDeletesTheVIPWhenTheFenceSilencesIt(t *testing.T) {
	l := nslab.New(t, "clnt", 1)
	h := l.Hosts[0]
	vip := h.V4.Masked().Addr()
	for range 10 {
		vip = vip.Next()
	}
	bin := buildBinary(t)
	config := cleanupConfig(t, h.V4.Addr(), vip)
	var f *fence.Fence
	h.In(func() error {
		var err error
		if f, err = fence.New(fence.DefaultConfig("eth0", vip), nil, nil); err != nil {
			return err
		}
		return f.Install()
	})
	t.Cleanup(func() { f.Remove(); f.Close() })
	hd := h.Handle()
	present := func() bool {
		as, err := hd.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			t.Errorf("list addresses: %v", err)
			return false
		}
		for _, a := range as {
			if a.IP.Equal(vip.AsSlice()) {
				return true
			}
		}
		return false
	}
	addVIP := func() { h.MustExec("ip", "addr", "add", vip.String()+"/32", "dev", "eth0") }

	// Armed for 600 ms (under the default profile's 800 ms lease, the most
	// cleanup waits): the address must outlive the fence's expiry.
	addVIP()
	const live = 600 * time.Millisecond
	if err := f.Arm(vip, live); err != nil {
		t.Fatal(err)
	}
	expiry := time.Now().Add(live)
	gone := make(chan time.Time, 1)
	go func() {
		for present() {
			time.Sleep(2 * time.Millisecond)
		}
		gone <- time.Now()
	}()
	out := h.MustExec(bin, "cleanup", "--config", config)
	var deleted time.Time
	select {
	case deleted = <-gone:
	case <-time.After(5 * time.Second):
		t.Fatalf("VIP still on eth0 5 s after cleanup returned\n%s", out)
	}
	// The kernel may expire the element one jiffy (4 ms) early.
	if early := expiry.Sub(deleted); early > 10*time.Millisecond {
		t.Errorf("cleanup deleted the VIP %s before its fence expired\n%s", early, out)
	}
	if !strings.Contains(out, "still live behind the fence") {
		t.Errorf("cleanup did not say it waits for the fence:\n%s", out)
	}

	// Unarmed (a graceful release, or a lease long run out): at once.
	addVIP()
	out = h.MustExec(bin, "cleanup", "--config", config)
	if present() {
		t.Fatalf("VIP still on eth0 after cleanup of an unarmed VIP\n%s", out)
	}
	if strings.Contains(out, "still live behind the fence") {
		t.Errorf("cleanup waited for a fence that was not armed:\n%s", out)
	}
}
