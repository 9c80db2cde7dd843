package agent

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// reloadFixture is an agent whose configuration file the test rewrites, with
// its log in a buffer and its sd_notify states recorded.
type reloadFixture struct {
	a      *Agent
	path   string
	level  *slog.LevelVar
	log    *bytes.Buffer
	notify *recordingNotifier
}

const reloadBase = `name: solo
peers: [{name: solo, address: 127.0.0.1}]
clusterKeyFile: DIR/cluster.key
dataDir: DIR/data
metrics: {listen: "127.0.0.1:19999"}
`

func newReloadFixture(t *testing.T) *reloadFixture {
	t.Helper()
	dir := t.TempDir()
	f := &reloadFixture{path: filepath.Join(dir, "masterd.yaml"), level: new(slog.LevelVar), log: &bytes.Buffer{}, notify: &recordingNotifier{}}
	if err := os.WriteFile(filepath.Join(dir, "cluster.key"), bytes.Repeat([]byte("k"), 64), 0o600); err != nil {
		t.Fatal(err)
	}
	f.write(t, "")
	cfg, err := LoadConfig(f.path)
	if err != nil {
		t.Fatal(err)
	}
	log, err := NewLeveledLogger(f.log, "text", f.level)
	if err != nil {
		t.Fatal(err)
	}
	f.a = New(cfg, Options{
		Logger:     log,
		Notifier:   f.notify,
		LogLevel:   f.level,
		LoadConfig: func() (Config, error) { return LoadConfig(f.path) },
	})
	return f
}

// write replaces the file with the base configuration plus extra; without a
// vip or kubernetes key in extra, the VIP is off and no kube unit runs.
func (f *reloadFixture) write(t *testing.T, extra string) {
	t.Helper()
	s := strings.ReplaceAll(reloadBase, "DIR", filepath.Dir(f.path)) + extra
	if !strings.Contains(extra, "vip:") {
		s += "vip: {enabled: false}\n"
	}
	if !strings.Contains(extra, "kubernetes:") {
		s += "kubernetes: {mode: none}\n"
	}
	if err := os.WriteFile(f.path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReloadAppliesWhatCanChangeLiveAndReportsTheRest(t *testing.T) {
	for _, tc := range []struct {
		name         string
		extra        string
		applied      []string
		needsRestart []string
		level        slog.Level
	}{
		{"an unchanged file applies nothing", "", nil, nil, slog.LevelInfo},
		{"a new log level is applied", "log: {level: debug}\n", []string{"log.level"}, nil, slog.LevelDebug},
		{"a new priority needs a restart", "priority: 7\n", nil, []string{"priority"}, slog.LevelInfo},
		{"balancer settings need a restart", "vip: {enabled: false, balancer: {port: 7443}}\n", nil, []string{"vip.balancer.port"}, slog.LevelInfo},
		{"a new log format needs a restart", "log: {format: json}\n", nil, []string{"log.format"}, slog.LevelInfo},
		{"a level is applied beside keys that need a restart",
			"priority: 9\nlog: {level: warn}\netcd: {snapshotRetention: 9}\nkubernetes: {mode: none, apiserver: {extraArgs: {v: \"4\"}}}\n",
			[]string{"log.level"}, []string{"priority", "etcd.snapshotRetention", "kubernetes.apiserver.extraArgs"}, slog.LevelWarn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newReloadFixture(t)
			f.write(t, tc.extra)
			res, err := f.a.Reload()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Applied, tc.applied) || !slices.Equal(res.NeedsRestart, tc.needsRestart) {
				t.Errorf("applied %q, needs restart %q; want %q, %q", res.Applied, res.NeedsRestart, tc.applied, tc.needsRestart)
			}
			if got := f.level.Level(); got != tc.level {
				t.Errorf("level %v after reload, want %v", got, tc.level)
			}
			if n := strings.Count(f.log.String(), `msg="config reloaded"`); n != 1 {
				t.Errorf("%d reload lines, want 1:\n%s", n, f.log.String())
			}
			want := "applied=" + quoteIfEmpty(strings.Join(tc.applied, ",")) + " needs_restart=" + quoteIfEmpty(strings.Join(tc.needsRestart, ","))
			if !strings.Contains(f.log.String(), want) {
				t.Errorf("reload line lacks %q:\n%s", want, f.log.String())
			}
		})
	}
}

func quoteIfEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// Only what was applied becomes the running configuration: a key that needs
// a restart is reported again by every later reload.
func TestReloadKeepsReportingWhatNeedsARestart(t *testing.T) {
	f := newReloadFixture(t)
	f.write(t, "priority: 3\nlog: {level: debug}\n")
	if _, err := f.a.Reload(); err != nil {
		t.Fatal(err)
	}
	res, err := f.a.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 0 || !slices.Equal(res.NeedsRestart, []string{"priority"}) {
		t.Errorf("second reload: applied %q, needs restart %q; want none, [priority]", res.Applied, res.NeedsRestart)
	}
	f.a.log.Debug("after the reload")
	if !strings.Contains(f.log.String(), `msg="after the reload"`) {
		t.Errorf("no debug line after log.level debug was applied:\n%s", f.log.String())
	}
}

func TestReloadRejectsAnInvalidFileAndKeepsTheRunningConfig(t *testing.T) {
	f := newReloadFixture(t)
	f.write(t, "log: {level: debug}\npriority: 5000\n")
	res, err := f.a.Reload()
	if err == nil {
		t.Fatalf("invalid file accepted: %+v", res)
	}
	if len(res.Applied)+len(res.NeedsRestart) != 0 {
		t.Errorf("a rejected reload reports changes: %+v", res)
	}
	if f.level.Level() != slog.LevelInfo {
		t.Errorf("level %v after a rejected reload, want info", f.level.Level())
	}
	out := f.log.String()
	if !strings.Contains(out, `level=ERROR msg="config reload rejected"`) || !strings.Contains(out, `err="config `) || !strings.Contains(out, "priority: 5000 is outside 0..1000") {
		t.Errorf("rejection not logged with its errors:\n%s", out)
	}
	if strings.Contains(out, "config reloaded") {
		t.Errorf("a rejected reload logged as done:\n%s", out)
	}
	// The running configuration is the one before: a valid file with only the
	// level changed applies just that.
	f.write(t, "log: {level: debug}\n")
	res, err = f.a.Reload()
	if err != nil || !slices.Equal(res.Applied, []string{"log.level"}) || len(res.NeedsRestart) != 0 {
		t.Errorf("reload after the rejected one: %+v, %v", res, err)
	}
}

// Raising the level past info still logs the reload that did it.
func TestReloadThatRaisesTheLevelIsLogged(t *testing.T) {
	f := newReloadFixture(t)
	f.write(t, "log: {level: error}\n")
	if _, err := f.a.Reload(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.log.String(), `msg="config reloaded"`) || !strings.Contains(f.log.String(), "applied=log.level") {
		t.Errorf("reload to level error not logged:\n%s", f.log.String())
	}
}

func TestReloadTellsSystemdOnlyOnceReady(t *testing.T) {
	f := newReloadFixture(t)
	f.a.Reload()
	if len(f.notify.states) != 0 {
		t.Errorf("notified before ready: %q", f.notify.states)
	}
	f.a.setReady(true)
	f.a.Reload()
	f.write(t, "priority: -1\n")
	f.a.Reload()
	got := f.notify.states
	if len(got) != 4 || !strings.HasPrefix(got[0], "RELOADING=1\nMONOTONIC_USEC=") || !strings.HasPrefix(got[1], "READY=1\nSTATUS=") ||
		!strings.HasPrefix(got[2], "RELOADING=1\n") || !strings.HasPrefix(got[3], "READY=1\n") || !strings.HasSuffix(got[3], "last reload rejected") {
		t.Errorf("sd_notify states %q, want RELOADING=1/READY=1 twice, the second saying the reload was rejected", got)
	}
}

func TestConfigDiffNamesEveryChangedKeyOnce(t *testing.T) {
	a := DefaultConfig()
	b := DefaultConfig()
	if d := configDiff(a, b); len(d) != 0 {
		t.Errorf("equal configs differ in %q", d)
	}
	b.Peers = []Peer{{Name: "m1"}}
	b.VIP.Timings.LeaseDuration = 1
	b.Roles.Scheduler.RetryPeriod = 1
	b.Kubernetes.ServiceCIDR = netip.MustParsePrefix("10.0.0.0/16")
	want := []string{"peers", "vip.timings.leaseDuration", "roles.scheduler.retryPeriod", "kubernetes.serviceCIDR"}
	if d := configDiff(a, b); !slices.Equal(d, want) {
		t.Errorf("diff %q, want %q", d, want)
	}
}
