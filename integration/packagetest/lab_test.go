package packagetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/labhost"
)

// bootLab boots a lab host (real systemd in its own namespaces, overlay root)
// named pkgt-<pid>-<suffix> and unmasks masterd.service there (labhost
// masks it by default so a host's masterd never starts in a lab).
func bootLab(t *testing.T, ctx context.Context, suffix string) *labhost.Host {
	t.Helper()
	needRoot(t)
	need(t, "nsenter", "unshare")
	h, err := labhost.Boot(ctx, labhost.Options{Name: fmt.Sprintf("pkgt-%d-%s", os.Getpid(), suffix)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close lab host: %v", err)
		}
	})
	if _, err := h.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	labExec(t, ctx, h, "systemctl", "unmask", "masterd.service")
	// man-db's dpkg trigger re-indexes every manual page of the machine on
	// each install: minutes on a busy machine, and nothing to test here.
	labExec(t, ctx, h, "rm", "-f", "/var/lib/man-db/auto-update")
	return h
}

// labExec runs argv in the lab host and fails the test on error.
func labExec(t *testing.T, ctx context.Context, h *labhost.Host, argv ...string) string {
	t.Helper()
	out, err := h.Exec(ctx, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// labTry runs argv in the lab host and returns its output and error.
func labTry(ctx context.Context, h *labhost.Host, argv ...string) (string, error) {
	out, err := h.Exec(ctx, argv...)
	return strings.TrimSpace(string(out)), err
}

// copyIn copies a file of the test machine into the lab host.
func copyIn(t *testing.T, h *labhost.Host, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
}

func labCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// unitProp reads one property of a unit in the lab host.
func unitProp(t *testing.T, ctx context.Context, h *labhost.Host, unit, prop string) string {
	t.Helper()
	return strings.TrimSpace(labExec(t, ctx, h, "systemctl", "show", "--value", "-p", prop, unit))
}

// TestUnitSandboxLetsMasterdWork installs the deb in a lab host and runs a
// probe in place of masterd, inside the real unit's sandbox (a drop-in
// replaces only ExecStart/ExecStopPost and the service type): everything
// masterd needs works (netlink, nftables, AF_PACKET, systemd's private
// socket, its state and runtime directories, runtime unit files, network
// sysctls, port 80) and what the hardening forbids is refused (writing
// /etc/masterd or /usr, kernel sysctls, seeing /root, capabilities beyond the
// unit's CapabilityBoundingSet=, new namespaces). The probe talks to systemd
// over the private socket as masterd does, opens the VIP manager's and the
// fence's sockets with masterd's own code and installs a fence table, all
// without CAP_SYS_ADMIN, and checks that setns(2) and new network
// namespaces are refused.
func TestUnitSandboxLetsMasterdWork(t *testing.T) {
	need(t, "go", "dpkg-deb", "ip", "nft")
	b := buildPackages(t, testVersion)
	ctx := labCtx(t)
	probe := filepath.Join(t.TempDir(), "sandboxprobe")
	if out, err := exec.Command("go", "build", "-o", probe, "./testdata/sandboxprobe").CombinedOutput(); err != nil {
		t.Fatalf("build sandboxprobe: %v\n%s", err, out)
	}
	h := bootLab(t, ctx, "sbx")
	copyIn(t, h, b.Deb, "/var/tmp/masterd.deb", 0o644)
	copyIn(t, h, probe, "/usr/local/sbin/sandboxprobe", 0o755)
	labExec(t, ctx, h, "dpkg", "-i", "/var/tmp/masterd.deb")

	if err := h.WriteFile("/etc/systemd/system/pkgt-target.service", []byte(
		"[Service]\nExecStart=/bin/sleep 1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	caps := strings.Join(unitSettings(t, filepath.Join(repoRoot(t), "deploy", "masterd.service"))["Service"]["CapabilityBoundingSet"], " ")
	if err := h.WriteFile("/etc/systemd/system/masterd.service.d/probe.conf", []byte(`[Service]
Environment="PROBE_WANT_CAPS=`+caps+`"
Type=oneshot
ExecStart=
ExecStart=/usr/local/sbin/sandboxprobe
ExecStopPost=
Restart=no
WatchdogSec=0
StandardOutput=file:/run/sandboxprobe.out
StandardError=inherit
`), 0o644); err != nil {
		t.Fatal(err)
	}
	labExec(t, ctx, h, "systemctl", "daemon-reload")
	_, startErr := labTry(ctx, h, "systemctl", "start", "masterd.service")
	out, err := os.ReadFile(h.Path("/run/sandboxprobe.out"))
	if err != nil {
		journal, _ := labTry(ctx, h, "journalctl", "-u", "masterd.service", "--no-pager")
		t.Fatalf("no probe output (start: %v): %v\n%s", startErr, err, journal)
	}
	t.Logf("probe in masterd.service's sandbox:\n%s", out)
	wantChecks := []string{"netlink-address", "nftables", "packet-socket", "bind-port-80",
		"systemd-private-socket", "write-runtime-unit", "write-state-dir", "write-runtime-dir",
		"write-net-sysctl", "read-config", "config-read-only", "usr-read-only",
		"kernel-sysctl-read-only", "home-hidden", "capabilities", "vip-and-fence", "setns-refused", "no-new-namespaces", "autogroup-nice"}
	for _, c := range wantChecks {
		if !strings.Contains(string(out), "ok "+c+"\n") {
			t.Errorf("check %s did not pass in the sandbox", c)
		}
	}
	if startErr != nil {
		t.Errorf("probe unit failed: %v", startErr)
	}
	if mode := statMode(t, h, "/var/lib/masterd"); mode != "700" {
		t.Errorf("/var/lib/masterd mode %s after start, want 700", mode)
	}
}

func statMode(t *testing.T, h *labhost.Host, path string) string {
	t.Helper()
	fi, err := os.Stat(h.Path(path))
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(uint64(fi.Mode().Perm()), 8)
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// unhardened is masterd.service without its hardening block: the "before"
// of the exposure figure.
func unhardened(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "masterd.service"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	start := strings.Index(s, "# Hardening.")
	end := strings.Index(s, "[Install]")
	if start < 0 || end < start {
		t.Fatal("deploy/masterd.service: no '# Hardening.' block before [Install]")
	}
	s = s[:start] + s[end:]
	// The directories and umask are hardening too.
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "UMask=") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

// TestUnitVerifiesAndExposure installs the deb in a lab host and runs
// `systemd-analyze verify` on the installed unit (no output wanted) and
// `systemd-analyze security` on it and on the same unit without its
// hardening block, logging both exposure scores; the hardened one must score
// at most 2.5 (issue 25's goal; 2.8 with CAP_SYS_ADMIN) and better than the
// unhardened one.
func TestUnitVerifiesAndExposure(t *testing.T) {
	need(t, "dpkg-deb", "systemd-analyze")
	b := buildPackages(t, testVersion)
	ctx := labCtx(t)
	h := bootLab(t, ctx, "sec")
	copyIn(t, h, b.Deb, "/var/tmp/masterd.deb", 0o644)
	labExec(t, ctx, h, "dpkg", "-i", "/var/tmp/masterd.deb")

	out, err := labTry(ctx, h, "systemd-analyze", "verify", "/lib/systemd/system/masterd.service")
	if err != nil || out != "" {
		t.Errorf("systemd-analyze verify masterd.service: %v\n%s", err, out)
	}

	if err := h.WriteFile("/etc/systemd/system/masterd-unhardened.service", []byte(unhardened(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	labExec(t, ctx, h, "systemctl", "daemon-reload")
	score := func(unit string) float64 {
		out, _ := labTry(ctx, h, "systemd-analyze", "security", "--no-pager", unit)
		m := exposureRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-analyze security %s: no exposure level in:\n%s", unit, out)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before, after := score("masterd-unhardened.service"), score("masterd.service")
	t.Logf("systemd-analyze security exposure: %.1f without the hardening block, %.1f as shipped", before, after)
	if after > 2.5 {
		t.Errorf("exposure %.1f as shipped, want at most 2.5", after)
	}
	if after >= before {
		t.Errorf("hardening does not lower the exposure: %.1f -> %.1f", before, after)
	}
}
