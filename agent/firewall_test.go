package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// inNewNetns runs fn on a thread inside a fresh network namespace named
// name (removed on cleanup); the thread is discarded afterwards.
func inNewNetns(t *testing.T, name string, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	t.Cleanup(func() { netns.DeleteNamed(name) })
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: Go discards the thread
		h, err := netns.GetFromName(name)
		if err != nil {
			h, err = netns.NewNamed(name)
		} else {
			err = netns.Set(h)
		}
		if err != nil {
			done <- err
			return
		}
		h.Close()
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func nftTable(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "masterd_allow").CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

// The component installs the allow-list from the peers, the VIP and the
// membership record (a master being added included), follows the record,
// removes the table on Stop and, with the switch off, removes a leftover.
// A loopback node (tests, development) installs nothing.
func TestFirewallComponentFollowsPeersVIPAndMembership(t *testing.T) {
	ns := fmt.Sprintf("agfw-%d", os.Getpid())
	cfg := DefaultConfig()
	cfg.Name, cfg.Address = "m1", netip.MustParseAddr("10.78.0.1")
	cfg.Peers = []Peer{{Name: "m1", Address: cfg.Address}, {Name: "m2", Address: netip.MustParseAddr("10.78.0.2")}}
	cfg.VIP.Enabled, cfg.VIP.Address = true, netip.MustParseAddr("10.78.0.100")
	n := &node{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	c := &firewallComponent{n: n}
	ctx := context.Background()
	inNewNetns(t, ns, func() {
		if err := c.Start(ctx); err != nil {
			t.Error(err)
		}
	})
	table := nftTable(t, ns)
	t.Logf("after start:\n%s", table)
	if !strings.Contains(table, "elements = { 10.78.0.1, 10.78.0.2,") || !strings.Contains(table, "10.78.0.100") ||
		!strings.Contains(table, "tcp dport 2380") || !strings.Contains(table, "udp dport 7946") {
		t.Fatalf("table after start:\n%s", table)
	}
	rec := MembershipRecord{Epoch: 2, Voters: map[string]string{"m1": "10.78.0.1", "m2": "10.78.0.2", "m3": "10.78.0.3"},
		Change: &MembershipChange{Op: "add", Name: "m4", Address: "10.78.0.4"}}
	if err := c.apply(&rec); err != nil {
		t.Fatal(err)
	}
	if table := nftTable(t, ns); !strings.Contains(table, "10.78.0.3") || !strings.Contains(table, "10.78.0.4") {
		t.Fatalf("table after the record:\n%s", table)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if table := nftTable(t, ns); table != "" {
		t.Fatalf("table left after Stop:\n%s", table)
	}

	// A leftover table and the switch off: Start removes it.
	inNewNetns(t, ns, func() {
		if err := (&firewallComponent{n: n}).Start(ctx); err != nil {
			t.Error(err)
		}
	})
	off := *n
	off.cfg.Firewall.Enabled = false
	inNewNetns(t, ns, func() {
		if err := (&firewallComponent{n: &off}).Start(ctx); err != nil {
			t.Error(err)
		}
	})
	if table := nftTable(t, ns); table != "" {
		t.Fatalf("firewall.enabled false left the table:\n%s", table)
	}

	lo := *n
	lo.cfg.Address = netip.MustParseAddr("127.0.0.1")
	inNewNetns(t, ns, func() {
		if err := (&firewallComponent{n: &lo}).Start(ctx); err != nil {
			t.Error(err)
		}
	})
	if table := nftTable(t, ns); table != "" {
		t.Fatalf("a loopback node installed a table:\n%s", table)
	}
}
