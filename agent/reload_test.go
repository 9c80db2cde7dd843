package agent

import (
	"bytes"
	"context"
	"crypto/x509"
	"github.com/masterd/masterd/lb"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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

// A reload applies new balancer caps to the running balancer: with
// vip.balancer.maxConnectionsPerSource lowered to 1, a second connection
// from the same address is refused while the first stays open.
func TestReloadAppliesBalancerCapsToTheRunningBalancer(t *testing.T) {
	f := newReloadFixture(t)
	// A backend that passes the readiness check and holds every proxied
	// connection open (it waits for a TLS handshake that never comes).
	backend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	pool := x509.NewCertPool()
	pool.AddCert(backend.Certificate())
	lc := lb.DefaultConfig()
	lc.Listen = netip.MustParseAddrPort("127.0.0.1:0")
	lc.Backends = []lb.Backend{{Name: "solo", Address: netip.MustParseAddrPort(backend.Listener.Addr().String())}}
	lc.HealthCheck.CA = pool
	lc.HealthCheck.Interval = 100 * time.Millisecond
	lc.HealthCheck.Timeout = 100 * time.Millisecond
	reg := prometheus.NewRegistry()
	b, err := lb.New(lc, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Run(ctx)
	defer b.Close()
	f.a.opts.Components = append(f.a.opts.Components, &lbComponent{b: b})

	for up := time.Now().Add(10 * time.Second); len(b.Status()) == 0 || !b.Status()[0].Up; {
		if time.Now().After(up) {
			t.Fatalf("backend never up: %+v", b.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}

	f.write(t, "vip:\n  enabled: false\n  balancer: {maxConnectionsPerSource: 1}\n")
	res, err := f.a.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Applied, []string{"vip.balancer.maxConnectionsPerSource"}) || len(res.NeedsRestart) != 0 {
		t.Fatalf("applied %q, needs restart %q; want [vip.balancer.maxConnectionsPerSource], none", res.Applied, res.NeedsRestart)
	}
	if got := f.a.cfg.VIP.Balancer.MaxConnectionsPerSource; got != 1 {
		t.Errorf("running config has maxConnectionsPerSource %d, want 1", got)
	}
	rejected := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "masterd_lb_connections_rejected_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "reason" && l.GetValue() == "per_source" {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	first, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	// The first is admitted at once; the second, from the same address,
	// is refused by the lowered cap (before the reload the cap was 1000).
	deadline := time.Now().Add(10 * time.Second)
	for rejected() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no connection refused by the per-source cap of 1 after the reload")
		}
		c, err := net.Dial("tcp", b.Addr().String())
		if err == nil {
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			c.Read(make([]byte, 1))
			c.Close()
		}
	}
	if !strings.Contains(f.log.String(), "applied=vip.balancer.maxConnectionsPerSource") {
		t.Errorf("no reload line naming the applied cap in:\n%s", f.log.String())
	}
}
