package units

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/labhost"
)

const kubeVersion = "v1.37.2"

// kubeBinDir finds the kube binaries built by integration/kube/build.sh.
func kubeBinDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MASTERD_KUBE_BIN")
	if dir == "" {
		cache := os.Getenv("MASTERD_CACHE")
		if cache == "" {
			base := os.Getenv("XDG_CACHE_HOME")
			if base == "" {
				home, _ := os.UserHomeDir()
				base = filepath.Join(home, ".cache")
			}
			cache = filepath.Join(base, "masterd")
		}
		dir = filepath.Join(cache, "kube", kubeVersion, "bin")
	}
	for _, b := range []string{"kube-apiserver", "kube-scheduler", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Skipf("kube binaries not built (%s missing): run integration/kube/build.sh %s (or `make kube`), or set MASTERD_KUBE_BIN", filepath.Join(dir, b), kubeVersion)
		}
	}
	return dir
}

// buildEtcd builds a plain etcd server from the etcd module in go.mod.
func buildEtcd(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "etcd")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/etcd")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build etcd: %v: %s", err, b)
	}
	return out
}

func TestKubeControlPlaneComesUpAsManagedUnits(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to boot a lab host")
	}
	bin := kubeBinDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	etcdBin := buildEtcd(t)
	h := bootLab(t, ctx, "kube")
	// A node address and a default route inside the lab's namespace (a veth
	// pair with both ends inside: no dummy driver on this kernel, and the
	// lab itself cannot load modules).
	for _, c := range [][]string{
		{"link", "add", "unitst0", "type", "veth", "peer", "name", "unitst1"},
		{"addr", "add", "10.99.0.1/24", "dev", "unitst0"},
		{"link", "set", "unitst0", "up"},
		{"link", "set", "unitst1", "up"},
		{"route", "add", "default", "dev", "unitst0"},
	} {
		if out, err := exec.CommandContext(ctx, "ip", append([]string{"-n", h.NetNS()}, c...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", c, err, out)
		}
	}
	etcdData, err := os.ReadFile(etcdBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFile("/usr/local/lib/unitst/etcd", etcdData, 0o755); err != nil {
		t.Fatal(err)
	}
	pki := newTestPKI(t, []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.99.0.1"), net.ParseIP("10.96.0.1")}, "https://127.0.0.1:6443")
	const pkiDir = "/etc/kubernetes/pki"
	for name, data := range pki.files {
		if err := h.WriteFile(filepath.Join(pkiDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	s, reg := newSup(t, h, func(c *Config) { c.StartTimeout = 4 * time.Minute })
	_ = reg
	probe := func(url, ca string) Probe {
		p, err := NewHTTPProbe(HTTPProbe{URL: url, CAFile: ca, DialContext: h.DialContext})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	etcd := Unit{Name: "unitst-etcd.service", Health: probe("http://127.0.0.1:2379/health", ""), Definition: &Definition{
		Description: "etcd for the kube lab test",
		ExecStart: []string{"/usr/local/lib/unitst/etcd", "--name=lab", "--data-dir=/var/lib/unitst-etcd",
			"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
			"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
			"--initial-cluster=lab=http://127.0.0.1:2380"},
	}}

	k := DefaultKubeConfig()
	k.BinDir = bin
	k.AdvertiseAddress = "10.99.0.1"
	k.EtcdServers = []string{"http://127.0.0.1:2379"}
	k.CAFile, k.CAKeyFile = pkiDir+"/ca.crt", pkiDir+"/ca.key"
	k.APIServerCertFile, k.APIServerKeyFile = pkiDir+"/apiserver.crt", pkiDir+"/apiserver.key"
	k.ServiceAccountKeyFile, k.ServiceAccountSigningKeyFile = pkiDir+"/sa.pub", pkiDir+"/sa.key"
	k.SchedulerKubeconfig, k.ControllerManagerKubeconfig = pkiDir+"/scheduler.conf", pkiDir+"/controller-manager.conf"
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	apiDef, err := k.APIServer()
	if err != nil {
		t.Fatal(err)
	}
	schedDef, err := k.Scheduler()
	if err != nil {
		t.Fatal(err)
	}
	cmDef, err := k.ControllerManager()
	if err != nil {
		t.Fatal(err)
	}
	caHost := h.Path(pkiDir + "/ca.crt")
	units := []Unit{
		etcd,
		{Name: APIServerUnit, Definition: &apiDef, Health: probe("https://127.0.0.1:6443/readyz", caHost)},
		{Name: SchedulerUnit, Definition: &schedDef, LeaderOnly: true, Health: probe("https://127.0.0.1:10259/healthz", "")},
		{Name: ControllerManagerUnit, Definition: &cmDef, LeaderOnly: true, Health: probe("https://127.0.0.1:10257/healthz", "")},
	}
	for _, u := range units {
		if err := s.Register(u); err != nil {
			t.Fatal(err)
		}
	}
	took := map[string]time.Duration{}
	for _, u := range units {
		t0 := time.Now()
		if err := s.Start(ctx, u.Name, 1); err != nil {
			t.Fatal(err)
		}
		took[u.Name] = time.Since(t0)
		t.Logf("%s: start to healthy %s", u.Name, took[u.Name])
	}

	// The scheduler's own lease (--leader-elect, the second fence).
	admin := adminClient(t, h, pki)
	holder := func() string {
		return leaseHolder(ctx, admin, "kube-scheduler")
	}
	waitFor(t, ctx, "first scheduler holds its lease", func() bool { return holder() != "" })
	first := holder()

	// Role loss: the scheduler is stopped by the leader-only path, then
	// started again (a role move without the election's part).
	t0 := time.Now()
	if err := s.Stop(ctx, SchedulerUnit); err != nil {
		t.Fatal(err)
	}
	stop := time.Since(t0)
	t1 := time.Now()
	if err := s.Start(ctx, SchedulerUnit, 2); err != nil {
		t.Fatal(err)
	}
	restart := time.Since(t1)
	waitFor(t, ctx, "new scheduler takes its lease", func() bool { h := holder(); return h != "" && h != first })
	leading := time.Since(t1)
	figures := fmt.Sprintf("etcd_ready=%s apiserver_ready=%s scheduler_healthy=%s controller_manager_healthy=%s scheduler_stop=%s scheduler_start_to_healthy_again=%s scheduler_start_to_lease_held=%s",
		took[etcd.Name].Round(time.Millisecond), took[APIServerUnit].Round(time.Millisecond), took[SchedulerUnit].Round(time.Millisecond),
		took[ControllerManagerUnit].Round(time.Millisecond), stop.Round(time.Millisecond), restart.Round(time.Millisecond), leading.Round(time.Millisecond))
	t.Logf("FIGURES %s", figures)
	if dir := os.Getenv("MASTERD_RESULTS_DIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "units-kube.txt"), []byte(time.Now().UTC().Format(time.RFC3339)+" "+figures+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, n := range []string{APIServerUnit, SchedulerUnit, ControllerManagerUnit} {
		if st, _ := s.Status(n); st.Failures != 0 || st.Restarts != 0 {
			t.Errorf("%s: %d failures, %d restarts during the test", n, st.Failures, st.Restarts)
		}
	}
	// The rejected-flag path with the real binary.
	bad := apiDef
	bad.ExecStart = append(append([]string{}, apiDef.ExecStart...), "--no-such-flag=1")
	// Its probe never passes, as the real apiserver's probe would not for a
	// process that never serves: without one, a binary slower to reject its
	// flags than Config.Settle (a loaded host) would count as started, and
	// the running apiserver's port would answer a probe of it.
	never := ProbeFunc(func(context.Context) error { return fmt.Errorf("the bad apiserver serves nothing") })
	if err := s.Register(Unit{Name: "unitst-badapi.service", Definition: &bad, Health: never}); err != nil {
		t.Fatal(err)
	}
	err = s.Start(ctx, "unitst-badapi.service", 1)
	t.Logf("start with a rejected flag: %v", err)
	if err == nil || !strings.Contains(err.Error(), "unknown flag: --no-such-flag") {
		t.Errorf("start with a bad flag: %v, want kube-apiserver's own message", err)
	}
	_ = s.Stop(ctx, "unitst-badapi.service")
}

// adminClient is an HTTPS client with cluster-admin credentials that dials
// into the lab.
func adminClient(t *testing.T, h *labhost.Host, p *testPKI) *http.Client {
	t.Helper()
	cert, err := tls.X509KeyPair(p.files["admin.crt"], p.files["admin.key"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.files["ca.crt"])
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:     h.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}}
}

// leaseHolder returns the holder of a kube-system lease, "" if none.
func leaseHolder(ctx context.Context, c *http.Client, name string) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
		"https://127.0.0.1:6443/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"+name, nil)
	resp, err := c.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var l struct {
		Spec struct {
			HolderIdentity *string `json:"holderIdentity"`
		} `json:"spec"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&l) != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}
