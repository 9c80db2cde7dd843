package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var allFiles = []string{
	"etcd-ca.crt", "etcd-server.crt", "etcd-server.key", "etcd-peer.crt", "etcd-peer.key",
	"etcd-client.crt", "etcd-client.key", "apiserver-etcd-client.crt", "apiserver-etcd-client.key",
	"ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "apiserver-kubelet-client.crt",
	"apiserver-kubelet-client.key", "front-proxy-ca.crt", "front-proxy-client.crt",
	"front-proxy-client.key", "sa.key", "sa.pub", "admin.conf", "scheduler.conf", "controller-manager.conf",
}

func TestEnsureWritesEveryFileWithPrivateModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "pki")
	f := mustEnsure(t, dir, testSecret(t), testParams(), t0)
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("pki dir mode %04o, want 0700", m)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		want := os.FileMode(0o644)
		if strings.HasSuffix(e.Name(), ".key") || strings.HasSuffix(e.Name(), ".conf") {
			want = 0o600
		}
		if m := mode(t, filepath.Join(dir, e.Name())); m != want {
			t.Errorf("%s mode %04o, want %04o", e.Name(), m, want)
		}
	}
	want := slices.Sorted(slices.Values(allFiles))
	if !slices.Equal(names, want) {
		t.Errorf("files %v\nwant %v", names, want)
	}
	// One change per written file, a certificate and its key counting once.
	if len(f.Changes) != 16 {
		t.Errorf("first run reported %d changes, want 16: %v", len(f.Changes), f.Changes)
	}
	for _, c := range f.Changes {
		if c.Reason != "missing" {
			t.Errorf("first run: %s: reason %q, want missing", c.Name, c.Reason)
		}
	}
	if len(f.Expiry) != 13 {
		t.Errorf("expiry has %d entries, want 13: %v", len(f.Expiry), f.Expiry)
	}
}

func TestEnsureTwiceChangesNothing(t *testing.T) {
	dir := t.TempDir()
	s, p := testSecret(t), testParams()
	mustEnsure(t, dir, s, p, t0)
	before := snapshot(t, dir)
	// A temporary file left by a crash mid-write is cleared.
	os.WriteFile(filepath.Join(dir, ".apiserver.key.tmp123"), []byte("half a key"), 0o600)
	f := mustEnsure(t, dir, s, p, t0.Add(200*24*time.Hour))
	if len(f.Changes) != 0 {
		t.Errorf("second run changed %v", f.Changes)
	}
	if after := snapshot(t, dir); !mapsEqual(before, after) {
		t.Error("second run rewrote files")
	}
}

func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}

func mapsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func loadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCertPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsureChainsVerifyWithX509AndOpenSSL(t *testing.T) {
	openssl := needOpenSSL(t)
	dir := t.TempDir()
	f := mustEnsure(t, dir, testSecret(t), testParams(), t0)
	chains := []struct {
		ca      string
		leaf    string
		usage   x509.ExtKeyUsage
		purpose string
	}{
		{f.EtcdCA, f.EtcdServer.Cert, x509.ExtKeyUsageServerAuth, "sslserver"},
		{f.EtcdCA, f.EtcdPeer.Cert, x509.ExtKeyUsageServerAuth, "sslserver"},
		{f.EtcdCA, f.EtcdPeer.Cert, x509.ExtKeyUsageClientAuth, "sslclient"},
		{f.EtcdCA, f.EtcdClient.Cert, x509.ExtKeyUsageClientAuth, "sslclient"},
		{f.EtcdCA, f.APIServerEtcdClient.Cert, x509.ExtKeyUsageClientAuth, "sslclient"},
		{f.KubeCA.Cert, f.APIServer.Cert, x509.ExtKeyUsageServerAuth, "sslserver"},
		{f.KubeCA.Cert, f.APIServerKubeletClient.Cert, x509.ExtKeyUsageClientAuth, "sslclient"},
		{f.FrontProxyCA, f.FrontProxyClient.Cert, x509.ExtKeyUsageClientAuth, "sslclient"},
	}
	for _, c := range chains {
		ca, leaf := loadCert(t, c.ca), loadCert(t, c.leaf)
		if err := verifyChain(leaf, nil, []*x509.Certificate{ca}, []x509.ExtKeyUsage{c.usage}, t0); err != nil {
			t.Errorf("x509: %s by %s: %v", filepath.Base(c.leaf), filepath.Base(c.ca), err)
		}
		// openssl checks at its own clock; t0 is close enough to the
		// real date that the -attime flag pins it.
		out, err := exec.Command(openssl, "verify", "-attime", timeArg(t0), "-purpose", c.purpose, "-CAfile", c.ca, c.leaf).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("openssl verify %s: %v\n%s", filepath.Base(c.leaf), err, out)
		}
	}
	// And a leaf never verifies against another of the cluster's CAs.
	out, err := exec.Command(openssl, "verify", "-attime", timeArg(t0), "-CAfile", f.KubeCA.Cert, f.EtcdServer.Cert).CombinedOutput()
	if err == nil {
		t.Errorf("openssl verified the etcd server certificate with the kube CA:\n%s", out)
	}
	// The kubeconfigs' client certificates chain to the kube CA.
	s := mustLoadKubeconfig(t, f.AdminConf)
	if err := verifyChain(s.cert, nil, s.cas, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, t0); err != nil {
		t.Errorf("admin.conf: %v", err)
	}
	// The secret file itself is readable by openssl.
	sec := filepath.Join(t.TempDir(), "cluster.key")
	WriteSecret(sec, testSecret(t), false)
	if out, err := exec.Command(openssl, "x509", "-in", sec, "-noout", "-subject").CombinedOutput(); err != nil || !strings.Contains(string(out), EtcdCAName) {
		t.Errorf("openssl x509 on the secret: %v\n%s", err, out)
	}
}

func timeArg(t time.Time) string { return strconvItoa(t.Unix()) }

func mustLoadKubeconfig(t *testing.T, path string) *loadedKubeconfig {
	t.Helper()
	kc, err := readKubeconfig(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return kc
}

func ipStrings(c *x509.Certificate) []string {
	var out []string
	for _, ip := range certIPs(c) {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

func TestEnsureNamesMatchParams(t *testing.T) {
	p := testParams()
	p.ExtraAPIServerSANs = []string{"api.example.org", "192.0.2.7"}
	f := mustEnsure(t, t.TempDir(), testSecret(t), p, t0)

	api := loadCert(t, f.APIServer.Cert)
	wantDNS := []string{"api.example.org", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", "localhost", "m1", "m2", "m3"}
	if got := slices.Sorted(slices.Values(api.DNSNames)); !slices.Equal(got, wantDNS) {
		t.Errorf("apiserver dns %v, want %v", got, wantDNS)
	}
	wantIP := []string{"10.10.0.1", "10.10.0.100", "10.10.0.2", "10.10.0.3", "10.96.0.1", "127.0.0.1", "192.0.2.7"}
	if got := ipStrings(api); !slices.Equal(got, wantIP) {
		t.Errorf("apiserver ips %v, want %v", got, wantIP)
	}
	// Only the peer certificate carries the name etcd's peer port demands.
	for path, dns := range map[string][]string{
		f.EtcdServer.Cert: {"localhost", "m1"},
		f.EtcdPeer.Cert:   {EtcdPeerName, "localhost", "m1"},
	} {
		c := loadCert(t, path)
		if got := slices.Sorted(slices.Values(c.DNSNames)); !slices.Equal(got, dns) {
			t.Errorf("%s dns %v, want %v", filepath.Base(path), got, dns)
		}
		if got := ipStrings(c); !slices.Equal(got, []string{"10.10.0.1", "127.0.0.1"}) {
			t.Errorf("%s ips %v", filepath.Base(path), got)
		}
		if c.Subject.CommonName != "m1" {
			t.Errorf("%s CN %q", filepath.Base(path), c.Subject.CommonName)
		}
	}
	for path, wantCN := range map[string]string{
		f.EtcdClient.Cert:             MasterdEtcdClientName,
		f.APIServerEtcdClient.Cert:    APIServerEtcdClientName,
		f.APIServerKubeletClient.Cert: KubeletClientName,
		f.FrontProxyClient.Cert:       FrontProxyClientName,
	} {
		c := loadCert(t, path)
		if c.Subject.CommonName != wantCN || !slices.Equal(c.ExtKeyUsage, clientOnly) || len(c.IPAddresses)+len(c.DNSNames) != 0 {
			t.Errorf("%s: CN %q usages %v", filepath.Base(path), c.Subject.CommonName, c.ExtKeyUsage)
		}
	}
	leaf := loadCert(t, f.EtcdServer.Cert)
	if got := leaf.NotAfter.Sub(t0); got != p.LeafValidity {
		t.Errorf("leaf lives %v, want %v", got, p.LeafValidity)
	}
}

func TestEnsureKubeconfigsPointAtTheRightServerAsTheRightUser(t *testing.T) {
	p := testParams()
	f := mustEnsure(t, t.TempDir(), testSecret(t), p, t0)
	tests := []struct {
		path, server, cn string
		groups           []string
	}{
		{f.AdminConf, "https://10.10.0.100:6443", AdminName, []string{MastersGroup}},
		{f.SchedulerConf, "https://10.10.0.1:6443", SchedulerName, nil},
		{f.ControllerManagerConf, "https://10.10.0.1:6443", ControllerManagerName, nil},
	}
	for _, tt := range tests {
		kc := mustLoadKubeconfig(t, tt.path)
		if kc.server != tt.server {
			t.Errorf("%s: server %s, want %s", filepath.Base(tt.path), kc.server, tt.server)
		}
		if kc.cert.Subject.CommonName != tt.cn || !slices.Equal(kc.cert.Subject.Organization, tt.groups) {
			t.Errorf("%s: user %q groups %v", filepath.Base(tt.path), kc.cert.Subject.CommonName, kc.cert.Subject.Organization)
		}
		if !keyMatches(kc.key, kc.cert.PublicKey) {
			t.Errorf("%s: key does not match", filepath.Base(tt.path))
		}
	}

	p.VIP = netip.Addr{}
	p.LocalAPIAddress = netip.MustParseAddr("127.0.0.1")
	p.NodeAddress = netip.MustParseAddr("fd00::1")
	f = mustEnsure(t, t.TempDir(), testSecret(t), p, t0)
	if got := mustLoadKubeconfig(t, f.AdminConf).server; got != "https://[fd00::1]:6443" {
		t.Errorf("admin.conf without VIP: server %s", got)
	}
	if got := mustLoadKubeconfig(t, f.SchedulerConf).server; got != "https://127.0.0.1:6443" {
		t.Errorf("scheduler.conf with local api address: server %s", got)
	}
}

func TestEnsureRegeneratesOnlyWhatChanged(t *testing.T) {
	leaves := []string{"etcd-server.crt", "etcd-peer.crt", "etcd-client.crt", "apiserver-etcd-client.crt",
		"apiserver.crt", "apiserver-kubelet-client.crt", "front-proxy-client.crt",
		"admin.conf", "scheduler.conf", "controller-manager.conf"}
	tests := []struct {
		name   string
		change func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time)
		want   []string
		reason string
	}{
		{"a new VIP reissues the apiserver certificate and admin.conf",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				p.VIP = netip.MustParseAddr("10.10.0.200")
			}, []string{"apiserver.crt", "admin.conf"}, "10.10.0.200"},
		{"a new node address reissues everything that names it",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				p.NodeAddress = netip.MustParseAddr("10.10.0.9")
			}, []string{"etcd-server.crt", "etcd-peer.crt", "apiserver.crt", "scheduler.conf", "controller-manager.conf"}, ""},
		{"a renamed node reissues the etcd certificates and the apiserver",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				p.NodeName = "master-1"
			}, []string{"etcd-server.crt", "etcd-peer.crt", "apiserver.crt"}, "master-1"},
		{"the same address written IPv4-in-IPv6 changes nothing",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				p.NodeAddress = netip.AddrFrom16(p.NodeAddress.As16())
			}, nil, ""},
		{"a new peer reissues the apiserver certificate",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				p.Peers = append(p.Peers, Peer{Name: "m4", Address: netip.MustParseAddr("10.10.0.4")})
			}, []string{"apiserver.crt"}, "m4"},
		{"a new cluster domain reissues the apiserver certificate",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				p.ClusterDomain = "example.internal"
			}, []string{"apiserver.crt"}, "kubernetes.default.svc.example.internal"},
		{"thirty days before expiry every leaf is renewed",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				*now = t0.Add(p.LeafValidity - p.RenewBefore + time.Hour)
			}, leaves, "within 720h"},
		{"thirty-one days before expiry nothing is renewed",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				*now = t0.Add(p.LeafValidity - p.RenewBefore - 24*time.Hour)
			}, nil, ""},
		{"a clock before the certificates' start reissues them",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				*now = t0.Add(-time.Hour)
			}, leaves, "not valid before"},
		{"a new cluster secret replaces everything",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				*s = testSecret(t)
			}, append([]string{"etcd-ca.crt", "ca.crt", "ca.key", "front-proxy-ca.crt", "sa.key", "sa.pub"}, leaves...), ""},
		{"a corrupt certificate is reissued",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				os.WriteFile(filepath.Join(dir, "etcd-peer.crt"), []byte("garbage"), 0o644)
			}, []string{"etcd-peer.crt"}, "unparsable"},
		{"a deleted key is reissued with its certificate",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				os.Remove(filepath.Join(dir, "apiserver.key"))
			}, []string{"apiserver.crt"}, "key missing"},
		{"a key of another certificate is reissued",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				k, _ := os.ReadFile(filepath.Join(dir, "etcd-peer.key"))
				os.WriteFile(filepath.Join(dir, "etcd-server.key"), k, 0o600)
			}, []string{"etcd-server.crt"}, "key does not match"},
		{"a certificate of another cluster is reissued",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				other := t.TempDir()
				mustEnsure(t, other, testSecret(t), *p, *now)
				for _, n := range []string{"etcd-client.crt", "etcd-client.key"} {
					b, _ := os.ReadFile(filepath.Join(other, n))
					os.WriteFile(filepath.Join(dir, n), b, 0o600)
				}
			}, []string{"etcd-client.crt"}, "not signed by the current masterd-etcd-ca"},
		{"a tampered CA certificate is restored",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				os.WriteFile(filepath.Join(dir, "ca.crt"), encodeCert(testSecret(t).KubeCA.Cert), 0o644)
			}, []string{"ca.crt"}, "differs from the cluster secret"},
		{"a kubeconfig pointing elsewhere is rewritten",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				path := filepath.Join(dir, "admin.conf")
				b, _ := os.ReadFile(path)
				os.WriteFile(path, bytes.Replace(b, []byte("10.10.0.100"), []byte("10.10.0.99"), 1), 0o600)
			}, []string{"admin.conf"}, "server https://10.10.0.99:6443"},
		{"a key readable by others is made private",
			func(t *testing.T, dir string, s **Secret, p *Params, now *time.Time) {
				os.Chmod(filepath.Join(dir, "etcd-peer.key"), 0o644)
			}, []string{"etcd-peer.key"}, "mode 0644, want 0600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, p, now := testSecret(t), testParams(), t0
			mustEnsure(t, dir, s, p, now)
			tt.change(t, dir, &s, &p, &now)
			f := mustEnsure(t, dir, s, p, now)
			got := changedNames(f)
			if len(got) != len(tt.want) {
				t.Errorf("changed %v, want %v", f.Changes, tt.want)
			}
			for _, w := range tt.want {
				r, ok := got[w]
				if !ok {
					t.Errorf("%s not changed; changes %v", w, f.Changes)
				} else if !strings.Contains(r, tt.reason) {
					t.Errorf("%s: reason %q, want it to mention %q", w, r, tt.reason)
				}
			}
			// Whatever changed, the result is complete and stable again.
			if f2 := mustEnsure(t, dir, s, p, now); len(f2.Changes) != 0 {
				t.Errorf("third run still changes %v", f2.Changes)
			}
		})
	}
}

func TestEnsureCutsLeavesAtTheCAsExpiryAndStopsRenewingThem(t *testing.T) {
	s, p := testSecret(t), testParams()
	now := s.EtcdCA.Cert.NotAfter.Add(-10 * 24 * time.Hour)
	dir := t.TempDir()
	f := mustEnsure(t, dir, s, p, now)
	if got := f.Expiry["etcd-server"]; !got.Equal(s.EtcdCA.Cert.NotAfter) {
		t.Errorf("leaf expires %v, want the CA's %v", got, s.EtcdCA.Cert.NotAfter)
	}
	if f := mustEnsure(t, dir, s, p, now.Add(time.Hour)); len(f.Changes) != 0 {
		t.Errorf("leaves cut at the CA's expiry are renewed on every start: %v", f.Changes)
	}
}

func TestEnsureRefusesAnExpiredCAAndBadParams(t *testing.T) {
	s := testSecret(t)
	_, err := Ensure(t.TempDir(), s, testParams(), s.KubeCA.Cert.NotAfter.Add(time.Second))
	if err == nil || !strings.Contains(err.Error(), "kube-ca expired") || !strings.Contains(err.Error(), "etcd-ca expired") {
		t.Errorf("expired CAs: %v", err)
	}
	p := testParams()
	p.NodeName = ""
	if _, err := Ensure(t.TempDir(), s, p, t0); err == nil || !strings.Contains(err.Error(), "node name") {
		t.Errorf("bad params: %v", err)
	}
	if _, err := Ensure(t.TempDir(), &Secret{}, testParams(), t0); err == nil {
		t.Error("empty secret accepted")
	}
}

func FuzzParseKubeconfig(f *testing.F) {
	dir := f.TempDir()
	s, err := GenerateSecret(rand.Reader, t0)
	if err != nil {
		f.Fatal(err)
	}
	files, err := Ensure(dir, s, testParams(), t0)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(files.AdminConf)
	f.Add(good)
	f.Add([]byte("current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {certificate-authority: ca.crt}}]\nusers: [{name: u, user: {client-certificate: a.crt, client-key: a.key}}]\n"))
	f.Add([]byte("{"))
	// Referenced files come from a fixed in-memory set, never the disk.
	fsys := map[string][]byte{}
	for _, p := range []string{files.KubeCA.Cert, files.EtcdClient.Cert, files.EtcdClient.Key} {
		fsys[filepath.Base(p)], _ = os.ReadFile(p)
	}
	fsys["a.crt"], fsys["a.key"] = fsys["etcd-client.crt"], fsys["etcd-client.key"]
	read := func(p string) ([]byte, error) {
		if b, ok := fsys[p]; ok {
			return b, nil
		}
		return nil, os.ErrNotExist
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		kc, err := parseKubeconfig(data, read)
		if err == nil && (kc.cert == nil || kc.key == nil || len(kc.cas) == 0) {
			t.Fatal("parsed a kubeconfig without credentials")
		}
	})
}
