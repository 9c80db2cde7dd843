package packagetest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/labhost"
)

// oneNodeConfig is the admin's edit of /etc/masterd/masterd.yaml for a
// single master without VIP or Kubernetes components: enough for masterd
// run to start its etcd member and report READY.
const oneNodeConfig = `# edited by the admin (packagetest)
name: solo
peers: [{name: solo, address: 127.0.0.1}]
clusterKeyFile: /etc/masterd/cluster.key
dataDir: /var/lib/masterd
vip: {enabled: false}
kubernetes: {mode: none}
metrics: {listen: "127.0.0.1:9990"}
`

const marker = "/var/lib/masterd/pkgt-marker"

// configure makes the cluster key and writes the one-node config, as an
// admin does after installing.
func configure(t *testing.T, ctx context.Context, h *labhost.Host) {
	t.Helper()
	labExec(t, ctx, h, "masterd", "init")
	if m := statMode(t, h, "/etc/masterd/cluster.key"); m != "600" {
		t.Errorf("cluster.key mode %s, want 600", m)
	}
	if err := h.WriteFile("/etc/masterd/masterd.yaml", []byte(oneNodeConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	labExec(t, ctx, h, "masterd", "run", "--check", "--config", "/etc/masterd/masterd.yaml")
}

// enableNow runs `systemctl enable --now masterd` (which returns once
// masterd sent READY=1) and returns its main PID.
func enableNow(t *testing.T, ctx context.Context, h *labhost.Host) string {
	t.Helper()
	if out, err := labTry(ctx, h, "systemctl", "enable", "--now", "masterd.service"); err != nil {
		journal, _ := labTry(ctx, h, "journalctl", "-u", "masterd.service", "--no-pager", "-n", "60")
		t.Fatalf("systemctl enable --now masterd: %v\n%s\njournal:\n%s", err, out, journal)
	}
	assertState(t, ctx, h, "enabled", "active")
	return unitProp(t, ctx, h, "masterd.service", "MainPID")
}

// assertState checks is-enabled and is-active of masterd.service.
func assertState(t *testing.T, ctx context.Context, h *labhost.Host, enabled, active string) {
	t.Helper()
	if got, _ := labTry(ctx, h, "systemctl", "is-enabled", "masterd.service"); got != enabled {
		t.Errorf("masterd.service is-enabled %q, want %q", got, enabled)
	}
	if got, _ := labTry(ctx, h, "systemctl", "is-active", "masterd.service"); got != active {
		t.Errorf("masterd.service is-active %q, want %q", got, active)
	}
}

// assertWatchdogFed waits (bounded by ctx) until systemd records a second
// WATCHDOG=1 from masterd: WatchdogSec= in the unit would otherwise abort it.
func assertWatchdogFed(t *testing.T, ctx context.Context, h *labhost.Host) {
	t.Helper()
	first := unitProp(t, ctx, h, "masterd.service", "WatchdogTimestampMonotonic")
	for {
		now := unitProp(t, ctx, h, "masterd.service", "WatchdogTimestampMonotonic")
		if now != first && now != "0" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("masterd sent no WATCHDOG=1 (WatchdogTimestampMonotonic stays %s); WatchdogSec= in masterd.service will abort it", first)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if n := unitProp(t, ctx, h, "masterd.service", "NRestarts"); n != "0" {
		journal, _ := labTry(ctx, h, "journalctl", "-u", "masterd.service", "--no-pager", "-n", "40")
		t.Errorf("masterd restarted %s times while running\n%s", n, journal)
	}
}

// assertCleanStop stops masterd and checks systemd saw a clean stop,
// ExecStopPost= (masterd cleanup) included, then starts it again.
func assertCleanStop(t *testing.T, ctx context.Context, h *labhost.Host) {
	t.Helper()
	labExec(t, ctx, h, "systemctl", "stop", "masterd.service")
	result := unitProp(t, ctx, h, "masterd.service", "Result")
	help := labExec(t, ctx, h, "masterd", "--help")
	switch {
	case !strings.Contains(help, "cleanup"):
		t.Logf("masterd has no cleanup subcommand yet: ExecStopPost= fails (stop result %q)", result)
	case result != "success":
		journal, _ := labTry(ctx, h, "journalctl", "-u", "masterd.service", "--no-pager", "-n", "40")
		t.Errorf("masterd stop result %q, want success\n%s", result, journal)
	}
	labExec(t, ctx, h, "systemctl", "start", "masterd.service")
}

func exists(h *labhost.Host, path string) bool {
	_, err := os.Lstat(h.Path(path))
	return err == nil
}

func fileText(t *testing.T, h *labhost.Host, path string) string {
	t.Helper()
	data, err := os.ReadFile(h.Path(path))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestDebLifecycleInLabHost installs, enables, upgrades, removes and purges
// the deb in a lab host booted with real systemd. Purge keeps the data and
// the cluster key (deploy/scripts/postremove.sh).
func TestDebLifecycleInLabHost(t *testing.T) {
	need(t, "dpkg-deb")
	b1 := buildPackages(t, testVersion)
	b2 := buildPackages(t, testVersionNewer)
	ctx := labCtx(t)
	h := bootLab(t, ctx, "deb")
	copyIn(t, h, b1.Deb, "/var/tmp/masterd-1.deb", 0o644)
	copyIn(t, h, b2.Deb, "/var/tmp/masterd-2.deb", 0o644)

	// Install: nothing starts, nothing is enabled.
	labExec(t, ctx, h, "dpkg", "-i", "/var/tmp/masterd-1.deb")
	assertState(t, ctx, h, "disabled", "inactive")
	if got := unitProp(t, ctx, h, "masterd.service", "LoadState"); got != "loaded" {
		t.Errorf("masterd.service LoadState %q after install, want loaded", got)
	}
	if m := statMode(t, h, "/var/lib/masterd"); m != "700" {
		t.Errorf("/var/lib/masterd mode %s, want 700", m)
	}

	configure(t, ctx, h)
	pid1 := enableNow(t, ctx, h)
	if err := h.WriteFile(marker, []byte("data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	assertWatchdogFed(t, ctx, h)
	assertJournalPriorities(t, ctx, h)

	// Upgrade: config edit and data kept, the running daemon restarted on
	// the new binary.
	labExec(t, ctx, h, "dpkg", "-i", "/var/tmp/masterd-2.deb")
	if got := labExec(t, ctx, h, "dpkg-query", "-W", "-f", "${Version}", "masterd"); got != testVersionNewer+"-1" {
		t.Errorf("installed version %q after upgrade, want %s-1", got, testVersionNewer)
	}
	if got := fileText(t, h, "/etc/masterd/masterd.yaml"); got != oneNodeConfig {
		t.Errorf("upgrade changed the edited config:\n%s", got)
	}
	if exists(h, "/etc/masterd/masterd.yaml.dpkg-new") || exists(h, "/etc/masterd/masterd.yaml.dpkg-dist") {
		t.Error("upgrade left a .dpkg-new/.dpkg-dist config: the conffile changed between builds")
	}
	if !exists(h, marker) || !exists(h, "/etc/masterd/cluster.key") {
		t.Error("upgrade lost data or the cluster key")
	}
	assertState(t, ctx, h, "enabled", "active")
	if pid2 := unitProp(t, ctx, h, "masterd.service", "MainPID"); pid2 == pid1 || pid2 == "0" {
		t.Errorf("masterd not restarted by the upgrade (MainPID %s before, %s after)", pid1, pid2)
	}
	if v := labExec(t, ctx, h, "masterd", "version"); !strings.Contains(v, testVersionNewer) {
		t.Errorf("masterd version after upgrade = %q, want %s", v, testVersionNewer)
	}

	assertCleanStop(t, ctx, h)

	// Remove: stopped, disabled, data and config kept.
	labExec(t, ctx, h, "dpkg", "-r", "masterd")
	if got, _ := labTry(ctx, h, "systemctl", "is-active", "masterd.service"); got == "active" {
		t.Error("masterd still active after dpkg -r")
	}
	if exists(h, "/etc/systemd/system/multi-user.target.wants/masterd.service") {
		t.Error("masterd still enabled after dpkg -r")
	}
	if exists(h, "/usr/bin/masterd") || exists(h, "/lib/systemd/system/masterd.service") {
		t.Error("binary or unit left after dpkg -r")
	}
	if !exists(h, marker) || !exists(h, "/etc/masterd/masterd.yaml") || !exists(h, "/etc/masterd/cluster.key") {
		t.Error("dpkg -r removed data or configuration; only purge may")
	}

	// Purge: the conffile goes, the data and the cluster key stay (losing
	// them can lose the cluster) and the output says how to delete them.
	out := labExec(t, ctx, h, "dpkg", "-P", "masterd")
	if !exists(h, marker) || !exists(h, "/etc/masterd/cluster.key") {
		t.Error("dpkg -P removed the data or the cluster key; only the operator may")
	}
	if exists(h, "/etc/masterd/masterd.yaml") {
		t.Error("dpkg -P left the conffile /etc/masterd/masterd.yaml")
	}
	for _, want := range []string{"masterd: kept /var/lib/masterd /etc/masterd/cluster.key", "rm -rf /var/lib/masterd /etc/masterd/cluster.key"} {
		if !strings.Contains(out, want) {
			t.Errorf("dpkg -P output lacks %q:\n%s", want, out)
		}
	}
}

// TestRPMLifecycleInLabHost does the same with the rpm (rpm -i --nodeps in
// the lab host, whose rpm database lives in its overlay): the scriptlets
// see rpm's numeric arguments instead of dpkg's words.
func TestRPMLifecycleInLabHost(t *testing.T) {
	need(t, "rpm")
	b1 := buildPackages(t, testVersion)
	b2 := buildPackages(t, testVersionNewer)
	ctx := labCtx(t)
	h := bootLab(t, ctx, "rpm")
	copyIn(t, h, b1.RPM, "/var/tmp/masterd-1.rpm", 0o644)
	copyIn(t, h, b2.RPM, "/var/tmp/masterd-2.rpm", 0o644)

	labExec(t, ctx, h, "rpm", "-i", "--nodeps", "/var/tmp/masterd-1.rpm")
	assertState(t, ctx, h, "disabled", "inactive")
	configure(t, ctx, h)
	pid1 := enableNow(t, ctx, h)
	if err := h.WriteFile(marker, []byte("data\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	labExec(t, ctx, h, "rpm", "-U", "--nodeps", "/var/tmp/masterd-2.rpm")
	if got := fileText(t, h, "/etc/masterd/masterd.yaml"); got != oneNodeConfig {
		t.Errorf("upgrade changed the edited config:\n%s", got)
	}
	if exists(h, "/etc/masterd/masterd.yaml.rpmnew") {
		t.Error("upgrade left masterd.yaml.rpmnew: the config changed between builds")
	}
	assertState(t, ctx, h, "enabled", "active")
	if pid2 := unitProp(t, ctx, h, "masterd.service", "MainPID"); pid2 == pid1 || pid2 == "0" {
		t.Errorf("masterd not restarted by the upgrade (MainPID %s before, %s after)", pid1, pid2)
	}

	labExec(t, ctx, h, "rpm", "-e", "masterd")
	if got, _ := labTry(ctx, h, "systemctl", "is-active", "masterd.service"); got == "active" {
		t.Error("masterd still active after rpm -e")
	}
	if exists(h, "/etc/systemd/system/multi-user.target.wants/masterd.service") {
		t.Error("masterd still enabled after rpm -e")
	}
	if !exists(h, marker) || !exists(h, "/etc/masterd/cluster.key") {
		t.Error("rpm -e removed data or the cluster key")
	}
	// The edited config is kept as .rpmsave.
	if !exists(h, "/etc/masterd/masterd.yaml.rpmsave") {
		t.Error("rpm -e did not keep the edited config as masterd.yaml.rpmsave")
	}
}

// assertJournalPriorities reloads masterd once with its file as it is (an
// info line) and once with a broken file (an error line, the daemon keeps
// running), then reads the journal by priority as an operator would:
// `journalctl -p err` shows the error and none of the info lines.
func assertJournalPriorities(t *testing.T, ctx context.Context, h *labhost.Host) {
	t.Helper()
	labExec(t, ctx, h, "systemctl", "reload", "masterd.service")
	if err := h.WriteFile("/etc/masterd/masterd.yaml", []byte(oneNodeConfig+"log: {level: loud}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	labExec(t, ctx, h, "systemctl", "reload", "masterd.service")
	if err := h.WriteFile("/etc/masterd/masterd.yaml", []byte(oneNodeConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	journal := func(prio string) string {
		var out string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			out, _ = labTry(ctx, h, "journalctl", "-u", "masterd.service", "--no-pager", "-o", "cat", "-p", prio)
			if strings.Contains(out, "config reload rejected") || time.Now().After(deadline) {
				return out
			}
		}
	}
	errs, infos := journal("err"), journal("info")
	if !strings.Contains(errs, "config reload rejected") || !strings.Contains(errs, "log.level") {
		t.Errorf("journalctl -p err lacks the rejected reload naming log.level:\n%s", errs)
	}
	if strings.Contains(errs, "config reloaded") {
		t.Errorf("journalctl -p err shows the info line of the first reload:\n%s", errs)
	}
	if !strings.Contains(infos, "config reloaded") || !strings.Contains(infos, "config reload rejected") {
		t.Errorf("journalctl -p info lacks the reload lines:\n%s", infos)
	}
	if got := unitProp(t, ctx, h, "masterd.service", "ActiveState"); got != "active" {
		t.Errorf("masterd %s after a rejected reload, want active", got)
	}
}
