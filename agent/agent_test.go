package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/masterd/masterd/internal/freeport"
)

// fakeComponent records Start/Stop calls into a shared journal.
type fakeComponent struct {
	name     string
	journal  *journal
	startErr error
	checkErr error
}

type journal struct {
	mu  sync.Mutex
	log []string
}

func (j *journal) add(s string) { j.mu.Lock(); j.log = append(j.log, s); j.mu.Unlock() }
func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.log...)
}

func (f *fakeComponent) Name() string { return f.name }
func (f *fakeComponent) Start(ctx context.Context) error {
	f.journal.add("start " + f.name)
	return f.startErr
}
func (f *fakeComponent) Stop(ctx context.Context) error {
	f.journal.add("stop " + f.name)
	return nil
}
func (f *fakeComponent) Check(ctx context.Context) error { return f.checkErr }
func (f *fakeComponent) Status() any                     { return map[string]string{"fake": f.name} }

// recordingNotifier keeps every sd_notify state.
type recordingNotifier struct {
	mu     sync.Mutex
	states []string
}

func (r *recordingNotifier) Notify(s string) error {
	r.mu.Lock()
	r.states = append(r.states, s)
	r.mu.Unlock()
	return nil
}
func (r *recordingNotifier) WatchdogInterval() time.Duration { return 0 }
func (r *recordingNotifier) has(prefix string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.states {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Metrics.Listen = "127.0.0.1:0"
	return cfg
}

// runAgent starts a in the background and returns stop, which cancels Run and
// returns its result (also called at cleanup). Tests give the agent a free port
// they picked, since Run binds metrics.listen itself.
func runAgent(t *testing.T, a *Agent) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func freePort(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freeport.TCP(t))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAgentStartsInOrderAndStopsInReverse(t *testing.T) {
	j := &journal{}
	cfg := testConfig(t)
	cfg.Metrics.Listen = freePort(t)
	n := &recordingNotifier{}
	a := New(cfg, Options{
		Notifier: n,
		Components: []Component{
			&fakeComponent{name: "pki", journal: j},
			&fakeComponent{name: "etcd", journal: j},
			&fakeComponent{name: "election", journal: j},
		},
	})
	stop := runAgent(t, a)
	waitFor(t, "READY=1", func() bool { return n.has("READY=1") })

	base := "http://" + cfg.Metrics.Listen
	if code, body := get(t, base+"/readyz"); code != 200 || !strings.Contains(body, "[+]etcd ok") {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{"start pki", "start etcd", "start election", "stop election", "stop etcd", "stop pki"}
	if got := j.get(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("order: got %v, want %v", got, want)
	}
	if !n.has("STOPPING=1") {
		t.Error("no STOPPING=1 sent")
	}
}

func TestAgentStopsStartedComponentsWhenOneFails(t *testing.T) {
	j := &journal{}
	cfg := testConfig(t)
	cfg.Metrics.Listen = freePort(t)
	n := &recordingNotifier{}
	a := New(cfg, Options{
		Notifier: n,
		Components: []Component{
			&fakeComponent{name: "pki", journal: j},
			&fakeComponent{name: "etcd", journal: j, startErr: errors.New("port 2379 taken")},
			&fakeComponent{name: "election", journal: j},
		},
	})
	err := a.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start etcd: port 2379 taken") {
		t.Fatalf("Run error: %v", err)
	}
	want := []string{"start pki", "start etcd", "stop etcd", "stop pki"}
	if got := j.get(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("order: got %v, want %v", got, want)
	}
	if n.has("READY=1") {
		t.Error("READY=1 sent although a component failed")
	}
}

func TestReadyzListsFailingChecks(t *testing.T) {
	j := &journal{}
	cfg := testConfig(t)
	cfg.Metrics.Listen = freePort(t)
	n := &recordingNotifier{}
	a := New(cfg, Options{Notifier: n, Components: []Component{
		&fakeComponent{name: "etcd", journal: j, checkErr: errors.New("no leader")},
	}})
	runAgent(t, a)
	waitFor(t, "READY=1", func() bool { return n.has("READY=1") })
	code, body := get(t, "http://"+cfg.Metrics.Listen+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]etcd: no leader") {
		t.Errorf("/readyz: %d %q", code, body)
	}
}

func TestHealthzFailsWhenLivenessFails(t *testing.T) {
	cfg := testConfig(t)
	cfg.Metrics.Listen = freePort(t)
	n := &recordingNotifier{}
	a := New(cfg, Options{Notifier: n, Liveness: func() error { return errors.New("vip: leader without renewal for 2s") }})
	runAgent(t, a)
	waitFor(t, "READY=1", func() bool { return n.has("READY=1") })
	code, body := get(t, "http://"+cfg.Metrics.Listen+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "leader without renewal") {
		t.Errorf("/healthz: %d %q", code, body)
	}
}

// The metrics endpoint is scraped and parsed with Prometheus' own text parser.
func TestMetricsParseAndCarryBuildInfo(t *testing.T) {
	cfg := testConfig(t)
	cfg.Metrics.Listen = freePort(t)
	n := &recordingNotifier{}
	reg := prometheus.NewRegistry()
	a := New(cfg, Options{Notifier: n, Registry: reg,
		Build:    BuildInfo{Version: "v1.2.3", Revision: "abc", GoVersion: "go1.26"},
		Gatherer: prometheus.Gatherers{reg, libraryGatherer{prometheus.DefaultGatherer}}})
	runAgent(t, a)
	waitFor(t, "READY=1", func() bool { return n.has("READY=1") })
	resp, err := http.Get("http://" + cfg.Metrics.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	bi, ok := mfs["masterd_build_info"]
	if !ok || len(bi.Metric) != 1 {
		t.Fatalf("masterd_build_info missing: %v", keys(mfs))
	}
	labels := map[string]string{}
	for _, l := range bi.Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] != "v1.2.3" || labels["revision"] != "abc" || labels["goversion"] != "go1.26" {
		t.Errorf("build info labels: %v", labels)
	}
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// sd_notify goes to a real unixgram socket, as systemd's NOTIFY_SOCKET.
func TestSystemdNotifierTalksToNotifySocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))

	cfg := testConfig(t)
	cfg.Metrics.Listen = freePort(t)
	a := New(cfg, Options{Components: []Component{&fakeComponent{name: "x", journal: &journal{}}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	seen := map[string]bool{}
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !(seen["READY=1"] && seen["WATCHDOG=1"]) {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("reading notify socket: %v (seen %v)", err, seen)
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			seen[line] = true
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for !seen["STOPPING=1"] {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no STOPPING=1: %v", err)
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			seen[line] = true
		}
	}
	if !hasPrefix(seen, "STATUS=") {
		t.Errorf("no STATUS= line: %v", seen)
	}
}

func hasPrefix(m map[string]bool, p string) bool {
	for k := range m {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

func TestPprofIsServedOnlyWhenAskedAndOnlyOnLoopback(t *testing.T) {
	off := New(testConfig(t), Options{})
	rec := httptest.NewRecorder()
	off.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("pprof off: /debug/pprof/ answered %d, want 404", rec.Code)
	}
	cfg := testConfig(t)
	cfg.Metrics.Pprof = true
	rec = httptest.NewRecorder()
	New(cfg, Options{}).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("pprof on: /debug/pprof/ answered %d, want 200", rec.Code)
	}
	for listen, ok := range map[string]bool{"127.0.0.1:9990": true, "[::1]:9990": true, "0.0.0.0:9990": false, ":9990": false, "10.0.0.5:9990": false} {
		c := DefaultConfig()
		c.Metrics.Listen, c.Metrics.Pprof = listen, true
		err := c.Validate()
		if got := err == nil || !strings.Contains(err.Error(), "metrics.pprof"); got != ok {
			t.Errorf("metrics.pprof with listen %s: accepted %v, want %v (%v)", listen, got, ok, err)
		}
	}
}
