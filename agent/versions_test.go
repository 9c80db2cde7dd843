package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterd/masterd/internal/skew"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// realKubeBinDir returns the real kube binaries' directory, or skips.
func realKubeBinDir(t *testing.T) string {
	t.Helper()
	dirs := []string{os.Getenv("KUBE_BIN_DIR")}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, ".cache", "masterd", "kube", "v1.37.2", "bin"))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "kube-scheduler")); err == nil {
			return d
		}
	}
	t.Skip("no kube binaries (make kube, or KUBE_BIN_DIR)")
	return ""
}

// kubeBinDir makes a binDir whose binaries are the real ones, except those
// in fake: a wrapper script whose --version prints the given version and
// that otherwise runs the real binary (what an operator's newer binary
// looks like to masterd, without building another minor).
func kubeBinDir(t *testing.T, real string, fake map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range []string{skew.APIServer, skew.Scheduler, skew.ControllerManager} {
		p := filepath.Join(dir, b)
		v, ok := fake[b]
		if !ok {
			if err := os.Symlink(filepath.Join(real, b), p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		script := fmt.Sprintf("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Kubernetes %s'; exit 0; fi\nexec %s \"$@\"\n", v, filepath.Join(real, b))
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Three masters' versions components against a real etcd member, each
// reading its kube binaries' --version (the real v1.37.2 ones, or wrappers
// that report another version): the policy's refusals, their log lines,
// metric and status, and their lifting when a master stops.
func TestVersionsSkewPolicyFromTheBinariesVersions(t *testing.T) {
	real := realKubeBinDir(t)
	em := newEtcdMasters(t, 1)
	em.startAll()
	cli := em.members["m1"].Client()
	peers := []Peer{}
	for i := 1; i <= 3; i++ {
		peers = append(peers, Peer{Name: fmt.Sprintf("m%d", i), Address: em.peers[0].Address})
	}
	ctx := testCtx(t, 2*time.Minute)
	type master struct {
		c   *versionsComponent
		reg *prometheus.Registry
		log *syncBuf
	}
	start := func(name string, fake map[string]string) master {
		cfg := em.cfgs["m1"]
		cfg.Name, cfg.Peers = name, peers
		cfg.Kubernetes.Mode = "managed"
		cfg.Kubernetes.BinDir = kubeBinDir(t, real, fake)
		m := master{reg: prometheus.NewRegistry(), log: &syncBuf{}}
		n := &node{cfg: cfg, log: slog.New(slog.NewTextHandler(m.log, nil)), reg: m.reg}
		m.c = &versionsComponent{n: n, changed: make(chan struct{}), etcd: func() *clientv3.Client { return cli }}
		m.c.setBuild(BuildInfo{Version: "test", Revision: "abc"})
		if err := m.c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.c.Stop(context.Background()) })
		return m
	}
	refused := func(m master, comp string) float64 {
		return testutil.ToFloat64(m.c.refusedGauge.WithLabelValues(comp))
	}

	// m1: the real v1.37.2 binaries. Alone, everything runs.
	m1 := start("m1", nil)
	for _, comp := range []string{skew.APIServer, skew.Scheduler, skew.ControllerManager} {
		if err := m1.c.refusal(comp); err != nil || refused(m1, comp) != 0 {
			t.Fatalf("m1 alone: %s refused: %v", comp, err)
		}
	}
	if v := m1.c.kubeVersions(); len(v) != 3 {
		t.Fatalf("m1 read %v from the real binaries, want three versions", v)
	}
	m1.c.markAPIServerStarted()

	// m2: a kube-apiserver two minors newer than m1's: refused, naming both.
	m2 := start("m2", map[string]string{skew.APIServer: "v1.39.0", skew.Scheduler: "v1.39.0", skew.ControllerManager: "v1.39.0"})
	err := m2.c.refusal(skew.APIServer)
	if err == nil || !strings.Contains(err.Error(), "kube-apiserver v1.39.0 on m2: more than one minor away from kube-apiserver v1.37.2 on m1") {
		t.Fatalf("m2's apiserver: %v", err)
	}
	if refused(m2, skew.APIServer) != 1 {
		t.Fatal("m2: masterd_kube_skew_refused{component=kube-apiserver} is not 1")
	}
	if !strings.Contains(m2.log.String(), "version skew policy refuses to run kube-apiserver here") || !strings.Contains(m2.log.String(), "v1.37.2 on m1") {
		t.Fatalf("m2's log does not say why:\n%s", m2.log)
	}
	if st := m2.c.Status().(VersionsStatus); st.Record.Refused[skew.APIServer] == "" || st.Record.Kube[skew.APIServer] != "v1.39.0" {
		t.Fatalf("m2's status: %+v", st)
	}

	// m3: every binary one minor newer (a wrapper whose --version says
	// v1.38.0): its apiserver may start, its scheduler and
	// controller-manager may not while m1's v1.37.2 apiserver runs (m2's
	// refused one does not count). Its role health says so.
	m3 := start("m3", map[string]string{skew.APIServer: "v1.38.0", skew.Scheduler: "v1.38.0", skew.ControllerManager: "v1.38.0"})
	if err := m3.c.refusal(skew.APIServer); err != nil {
		t.Fatalf("m3's apiserver one minor from m1's: %v", err)
	}
	m3.c.markAPIServerStarted()
	for _, comp := range []string{skew.Scheduler, skew.ControllerManager} {
		err := m3.c.refusal(comp)
		if err == nil || !strings.Contains(err.Error(), comp+" v1.38.0 on m3: newer than the oldest kube-apiserver, v1.37.2 on m1") {
			t.Fatalf("m3's %s: %v", comp, err)
		}
		if refused(m3, comp) != 1 {
			t.Fatalf("m3: masterd_kube_skew_refused{component=%s} is not 1", comp)
		}
	}
	fit := roleFit(func(context.Context) error { return nil }, m3.c, RoleScheduler)
	if err := fit(ctx); err == nil {
		t.Fatal("m3 is fit for the scheduler role although its kube-scheduler is refused")
	}
	if err := roleFit(func(context.Context) error { return nil }, m3.c, RoleVIP)(ctx); err != nil {
		t.Fatalf("the VIP role is not the policy's: %v", err)
	}

	// m1 stops (its masterd and apiserver, as in an upgrade): the others
	// decide again from the watch. m3's scheduler and controller-manager
	// are now as new as every running apiserver, and m2's apiserver is one
	// minor from m3's.
	if err := m1.c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, comp := range []string{skew.Scheduler, skew.ControllerManager} {
		if err := m3.c.waitAllowed(wctx, comp); err != nil {
			t.Fatalf("m3's %s still refused after m1 stopped: %v", comp, m3.c.refusal(comp))
		}
		if refused(m3, comp) != 0 {
			t.Fatalf("m3: masterd_kube_skew_refused{component=%s} still 1", comp)
		}
	}
	if err := m2.c.waitAllowed(wctx, skew.APIServer); err != nil {
		t.Fatalf("m2's apiserver still refused after m1 stopped: %v", m2.c.refusal(skew.APIServer))
	}
	if !strings.Contains(m3.log.String(), "version skew policy allows kube-scheduler again") {
		t.Fatalf("m3's log does not say the scheduler is allowed again:\n%s", m3.log)
	}
	// What every master published, as `masterd upgrade plan` reads it.
	recs, _, err := ReadVersions(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs["m1"].Running || !recs["m3"].Running || recs["m3"].WireVersion != 2 || recs["m3"].Masterd.Revision != "abc" {
		t.Fatalf("published records: %+v", recs)
	}
}
