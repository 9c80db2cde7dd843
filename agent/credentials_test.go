package agent

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/pki"
	"github.com/masterd/masterd/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// renewablePKI writes a node's pki with leaves valid for a day, and returns
// a function that renews every leaf (as the daily renewal does 30 days
// before expiry).
func renewablePKI(t *testing.T) (*pki.Files, func() *pki.Files) {
	t.Helper()
	s, err := pki.GenerateSecret(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := load(t, validYAML)
	if err != nil {
		t.Fatal(err)
	}
	p := pkiParams(cfg)
	p.LeafValidity, p.RenewBefore = 24*time.Hour, time.Hour
	dir := filepath.Join(t.TempDir(), "pki")
	f, err := pki.Ensure(dir, s, p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	renewals := 0
	return f, func() *pki.Files {
		t.Helper()
		renewals++
		q := p
		q.RenewBefore = q.LeafValidity - time.Second
		// A minute later per renewal: each new NotAfter differs (they have
		// one-second resolution).
		g, err := pki.Ensure(dir, s, q, time.Now().Add(time.Duration(renewals)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(g.Changes, func(c pki.Change) bool { return c.Name == "scheduler.conf" }) {
			t.Fatalf("renewal %d did not rewrite scheduler.conf: %v", renewals, g.Changes)
		}
		return g
	}
}

func TestParseKubeVersion(t *testing.T) {
	for _, tc := range []struct{ out, want, err string }{
		{out: "Kubernetes v1.37.2\n", want: "v1.37.2"},
		{out: "Kubernetes v1.36.0-rc.1", want: "v1.36.0-rc.1"},
		{out: "", err: "unexpected --version output"},
		{out: "kube-apiserver version 1.37", err: "unexpected --version output"},
		{out: "Kubernetes 1.37.2", err: "unexpected --version output"},
	} {
		got, err := parseKubeVersion(tc.out)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseKubeVersion(%q) = %q, %v; want %q, error containing %q", tc.out, got, err, tc.want, tc.err)
		}
	}
}

// The real binaries answer --version; the versions reach the metric.
func TestKubeVersionsOfTheRealBinariesReachTheMetric(t *testing.T) {
	home, _ := os.UserHomeDir()
	dir := filepath.Join(home, ".cache/masterd/kube/v1.37.2/bin")
	if d := os.Getenv("KUBE_BIN_DIR"); d != "" {
		dir = d
	}
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		t.Skipf("kube binaries not built (%v): run integration/kube/build.sh or set KUBE_BIN_DIR", err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	got := readKubeVersions(context.Background(), dir, quiet)
	for _, u := range []string{units.APIServerUnit, units.SchedulerUnit, units.ControllerManagerUnit} {
		if got[u] != "v1.37.2" {
			t.Errorf("%s: version %q, want v1.37.2", u, got[u])
		}
	}
	reg := prometheus.NewRegistry()
	if err := observeKubeVersions(reg, got); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP masterd_kube_version_info Version of each kube binary masterd runs, read from its --version at start; always 1.
# TYPE masterd_kube_version_info gauge
masterd_kube_version_info{component="kube-apiserver",version="v1.37.2"} 1
masterd_kube_version_info{component="kube-controller-manager",version="v1.37.2"} 1
masterd_kube_version_info{component="kube-scheduler",version="v1.37.2"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "masterd_kube_version_info"); err != nil {
		t.Error(err)
	}
	if v := readKubeVersions(context.Background(), t.TempDir(), quiet); len(v) != 0 {
		t.Errorf("versions from an empty directory: %v, want none", v)
	}
}

// The expiry metric reports the certificate the apiserver serves (read
// over TLS), not the file, and a running unit's as it started.
func TestExpiryMetricReportsWhatRuns(t *testing.T) {
	f, renew := renewablePKI(t)
	pair, err := tls.LoadX509KeyPair(f.APIServer.Cert, f.APIServer.Key)
	if err != nil {
		t.Fatal(err)
	}
	// A TLS server serving the apiserver certificate as it was loaded.
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()
	startedKC, err := kubeconfigCert(f.SchedulerConf)
	if err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	m, err := pki.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Listener.Addr().String()
	c := &pkiComponent{metrics: m,
		servedAPIServer: func(ctx context.Context) (*x509.Certificate, error) { return servedCert(ctx, addr) },
		running:         func() map[string]time.Time { return map[string]time.Time{"scheduler.conf": startedKC.NotAfter} },
	}
	renewed := renew()
	if renewed.Expiry["apiserver"].Equal(f.Expiry["apiserver"]) || renewed.Expiry["scheduler.conf"].Equal(f.Expiry["scheduler.conf"]) {
		t.Fatalf("renewal kept NotAfter: before %v, after %v", f.Expiry, renewed.Expiry)
	}
	c.setFiles(renewed)
	c.observe(context.Background())
	for name, want := range map[string]time.Time{
		"apiserver":               f.Expiry["apiserver"],                     // served: the old one
		"scheduler.conf":          f.Expiry["scheduler.conf"],                // as the unit started
		"controller-manager.conf": renewed.Expiry["controller-manager.conf"], // not running here: the file's
	} {
		if got := expiryGauge(t, reg, name); got != float64(want.Unix()) {
			t.Errorf("%s: %v, want %v", name, time.Unix(int64(got), 0).UTC(), want.UTC())
		}
	}
	// Nothing answering on the port: the file's value stands.
	c.servedAPIServer = func(ctx context.Context) (*x509.Certificate, error) { return servedCert(ctx, closedPort(t)) }
	c.observe(context.Background())
	if got := expiryGauge(t, reg, "apiserver"); got != float64(renewed.Expiry["apiserver"].Unix()) {
		t.Errorf("apiserver with nothing served: %v, want the file's %v", time.Unix(int64(got), 0).UTC(), renewed.Expiry["apiserver"].UTC())
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func expiryGauge(t *testing.T, reg *prometheus.Registry, cert string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "masterd_cert_expiry_timestamp_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cert" && l.GetValue() == cert {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no masterd_cert_expiry_timestamp_seconds{cert=%q}", cert)
	return 0
}

// With real systemd: a leader-only unit this master runs restarts, under
// the same term, when a renewal rewrote its kubeconfig's certificate; a
// check without a change restarts nothing.
func TestRenewedKubeconfigRestartsTheLeaderUnitHeldHere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const name = "agkt-renew.service"
	l, h := leaderUnitInLab(t, ctx, "renew", name, "[Service]\nExecStart=/bin/sh -c 'sleep infinity & sleep infinity'\n")
	f, renew := renewablePKI(t)
	l.c.kubeconfigs = map[string]string{name: f.SchedulerConf}
	acquireAndWait(t, ctx, l, h)
	waitStarted(t, ctx, l)
	before, _ := l.c.sup.Status(name)
	if got := l.c.checkCredentials(); len(got) != 0 {
		t.Fatalf("check without a renewal restarts %v", got)
	}
	if rc := l.c.runningCerts(); !rc["scheduler.conf"].Equal(f.Expiry["scheduler.conf"]) {
		t.Fatalf("running certs %v, want scheduler.conf at %v", rc, f.Expiry["scheduler.conf"])
	}

	renewed := renew()
	if got := l.c.checkCredentials(); len(got) != 1 || got[0] != name {
		t.Fatalf("check after the renewal restarts %v, want [%s]", got, name)
	}
	waitStarted(t, ctx, l)
	after, _ := l.c.sup.Status(name)
	t.Logf("%s: MainPID %d -> %d, %s/%s", name, before.MainPID, after.MainPID, after.ActiveState, after.SubState)
	if after.MainPID == before.MainPID || after.MainPID == 0 || after.ActiveState != "active" {
		t.Fatalf("after the restart: MainPID %d (was %d), %s: want a new running process", after.MainPID, before.MainPID, after.ActiveState)
	}
	if err := l.c.sup.Healthy(ctx, name); err != nil {
		t.Fatalf("unit after restart: %v", err)
	}
	if rc := l.c.runningCerts(); !rc["scheduler.conf"].Equal(renewed.Expiry["scheduler.conf"]) {
		t.Fatalf("running certs %v, want scheduler.conf at the renewed %v", rc, renewed.Expiry["scheduler.conf"])
	}
	if got := l.c.checkCredentials(); len(got) != 0 {
		t.Fatalf("second check restarts %v again", got)
	}

	// Once the role is released, a renewal restarts nothing.
	if err := l.release(ctx, 1); err != nil {
		t.Fatal(err)
	}
	renew()
	if got := l.c.checkCredentials(); len(got) != 0 {
		t.Fatalf("check after release restarts %v", got)
	}
	if rc := l.c.runningCerts(); len(rc) != 0 {
		t.Fatalf("running certs after release: %v, want none", rc)
	}
	assertDead(t, ctx, l, h)
}

// waitStarted waits for the term's start or restart to end.
func waitStarted(t *testing.T, ctx context.Context, l *leaderUnit) {
	t.Helper()
	l.mu.Lock()
	done := l.starting
	l.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("start did not end")
	}
}
