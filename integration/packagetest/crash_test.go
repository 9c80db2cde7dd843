package packagetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/labhost"
)

const (
	labVIP     = "10.77.0.10"
	labAddress = "10.77.0.11"
)

// vipConfig is a one-node config holding a VIP on the lab's eth0, with the
// nftables fence on (so cleanup has a fence to remove too).
const vipConfig = `# edited by the admin (packagetest)
name: solo
address: ` + labAddress + `
peers: [{name: solo, address: ` + labAddress + `}]
clusterKeyFile: /etc/masterd/cluster.key
dataDir: /var/lib/masterd
vip: {enabled: true, address: ` + labVIP + `, interface: eth0, fence: true, balancer: {enabled: false}}
kubernetes: {mode: none}
metrics: {listen: "127.0.0.1:9990"}
`

// waitFor polls cond every 100 ms until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func hasVIP(ctx context.Context, h *labhost.Host) bool {
	out, _ := labTry(ctx, h, "ip", "-o", "addr", "show", "dev", "eth0")
	return strings.Contains(out, " "+labVIP+"/")
}

// TestUnitCleansUpAfterCrashAndRestarts installs the deb in a lab host with
// a VIP on a veth, lets masterd take the VIP, SIGKILLs it and checks the
// unit's ExecStopPost= (masterd cleanup) deleted the VIP before systemd
// restarts the daemon (a drop-in holds the restart back so the state between
// the two can be looked at); then that Restart=always brings it back, that
// it takes the VIP again, and that a configuration error (exit code 2) is
// not restarted in a loop. Finally dpkg -r leaves neither VIP nor fence.
func TestUnitCleansUpAfterCrashAndRestarts(t *testing.T) {
	need(t, "dpkg-deb", "ip", "nft")
	b := buildPackages(t, testVersion)
	ctx := labCtx(t)
	h := bootLab(t, ctx, "crash")
	labExec(t, ctx, h, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	labExec(t, ctx, h, "ip", "addr", "add", labAddress+"/24", "dev", "eth0")
	labExec(t, ctx, h, "ip", "link", "set", "eth0", "up")
	labExec(t, ctx, h, "ip", "link", "set", "eth0p", "up")
	copyIn(t, h, b.Deb, "/var/tmp/masterd.deb", 0o644)
	labExec(t, ctx, h, "dpkg", "-i", "/var/tmp/masterd.deb")
	labExec(t, ctx, h, "masterd", "init")
	if err := h.WriteFile("/etc/masterd/masterd.yaml", []byte(vipConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	labExec(t, ctx, h, "masterd", "run", "--check")
	// Hold the automatic restart back until the test releases it.
	if err := h.WriteFile("/etc/systemd/system/masterd.service.d/restart.conf", []byte("[Service]\nRestartSec=1h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	labExec(t, ctx, h, "systemctl", "daemon-reload")
	enableNow(t, ctx, h)
	waitFor(t, ctx, "masterd to take the VIP", func() bool { return hasVIP(ctx, h) })

	pid := unitProp(t, ctx, h, "masterd.service", "MainPID")
	labExec(t, ctx, h, "systemctl", "kill", "--signal=SIGKILL", "masterd.service")
	waitFor(t, ctx, "the unit to wait for its restart", func() bool {
		return unitProp(t, ctx, h, "masterd.service", "SubState") == "auto-restart"
	})
	if hasVIP(ctx, h) {
		journal, _ := labTry(ctx, h, "journalctl", "-u", "masterd.service", "--no-pager", "-n", "30")
		t.Errorf("VIP still on eth0 after SIGKILL and ExecStopPost\n%s", journal)
	}
	if s := unitProp(t, ctx, h, "masterd.service", "ExecStopPost"); !strings.Contains(s, "code=exited ; status=0 ") {
		t.Errorf("ExecStopPost did not exit 0: %s", s)
	}

	// Restart=always: release the hold, the daemon comes back and takes the VIP again.
	labExec(t, ctx, h, "rm", "/etc/systemd/system/masterd.service.d/restart.conf")
	labExec(t, ctx, h, "systemctl", "daemon-reload")
	labExec(t, ctx, h, "systemctl", "start", "masterd.service")
	if p := unitProp(t, ctx, h, "masterd.service", "MainPID"); p == pid || p == "0" {
		t.Errorf("MainPID %s after restart, was %s", p, pid)
	}
	waitFor(t, ctx, "masterd to take the VIP again", func() bool { return hasVIP(ctx, h) })

	// A broken config exits 2: the unit fails and stays failed.
	if err := h.WriteFile("/etc/masterd/masterd.yaml", []byte(vipConfig+"no_such_key: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := labTry(ctx, h, "systemctl", "restart", "masterd.service"); err == nil {
		t.Fatal("restart with a broken config succeeded")
	}
	waitFor(t, ctx, "the unit to fail", func() bool {
		return unitProp(t, ctx, h, "masterd.service", "ActiveState") == "failed"
	})
	if s := unitProp(t, ctx, h, "masterd.service", "ExecMainStatus"); s != "2" {
		t.Errorf("ExecMainStatus %s with a broken config, want 2", s)
	}
	if hasVIP(ctx, h) {
		t.Error("VIP still on eth0 after masterd failed")
	}

	// Removing the package leaves neither the VIP nor the fence.
	if err := h.WriteFile("/etc/masterd/masterd.yaml", []byte(vipConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	labExec(t, ctx, h, "systemctl", "reset-failed", "masterd.service")
	labExec(t, ctx, h, "systemctl", "start", "masterd.service")
	waitFor(t, ctx, "masterd to take the VIP after the config fix", func() bool { return hasVIP(ctx, h) })
	labExec(t, ctx, h, "dpkg", "-r", "masterd")
	if hasVIP(ctx, h) {
		t.Error("VIP still on eth0 after dpkg -r")
	}
	if tables, _ := labTry(ctx, h, "nft", "list", "tables"); strings.Contains(tables, "masterd_fence") {
		t.Errorf("the VIP fence's tables outlive dpkg -r:\n%s", tables)
	}
}
