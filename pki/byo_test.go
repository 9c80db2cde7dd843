package pki

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUseFilesAcceptsGeneratedFiles(t *testing.T) {
	p := testParams()
	f := mustEnsure(t, t.TempDir(), testSecret(t), p, t0)
	got, err := UseFiles(*f, p, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Expiry) != 13 || len(got.Changes) != 0 || got.Dir != "" {
		t.Errorf("expiry %d entries, changes %v, dir %q", len(got.Expiry), got.Changes, got.Dir)
	}
}

// TestUseFilesAcceptsAnOpenSSLMadePKI builds a PKI the way the classic
// guides do (a separate tool, RSA CAs, EC leaves, extra names) and checks
// UseFiles takes it as is.
func TestUseFilesAcceptsAnOpenSSLMadePKI(t *testing.T) {
	openssl := needOpenSSL(t)
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(openssl, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	ca := func(name string) {
		run("req", "-x509", "-newkey", "rsa:2048", "-noenc", "-keyout", name+".key", "-out", name+".crt",
			"-subj", "/CN="+name, "-days", "3650")
	}
	leaf := func(name, ca, cn, ext string) Pair {
		os.WriteFile(filepath.Join(dir, name+".ext"), []byte(ext+"\n"), 0o600)
		run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-noenc", "-keyout", name+".key",
			"-out", name+".csr", "-subj", "/CN="+cn)
		run("x509", "-req", "-in", name+".csr", "-CA", ca+".crt", "-CAkey", ca+".key", "-CAcreateserial",
			"-out", name+".crt", "-days", "365", "-extfile", name+".ext")
		return Pair{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	}
	ca("etcd-ca")
	ca("kube-ca")
	ca("fp-ca")
	const client = "extendedKeyUsage=clientAuth"
	f := Files{
		EtcdCA:              filepath.Join(dir, "etcd-ca.crt"),
		EtcdServer:          leaf("etcd-server", "etcd-ca", "m1", "subjectAltName=IP:10.10.0.1,IP:127.0.0.1,DNS:m1.example.org\nextendedKeyUsage=serverAuth,clientAuth"),
		EtcdPeer:            leaf("etcd-peer", "etcd-ca", "m1", "subjectAltName=IP:10.10.0.1\nextendedKeyUsage=serverAuth,clientAuth"),
		EtcdClient:          leaf("etcd-client", "etcd-ca", "masterd", client),
		APIServerEtcdClient: leaf("apiserver-etcd-client", "etcd-ca", "kube-apiserver", client),
		KubeCA:              Pair{Cert: filepath.Join(dir, "kube-ca.crt"), Key: filepath.Join(dir, "kube-ca.key")},
		APIServer: leaf("apiserver", "kube-ca", "kube-apiserver",
			"subjectAltName=IP:10.10.0.1,IP:10.10.0.100,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth"),
		APIServerKubeletClient: leaf("kubelet-client", "kube-ca", "kube-apiserver-kubelet-client", client),
		FrontProxyCA:           filepath.Join(dir, "fp-ca.crt"),
		FrontProxyClient:       leaf("fp-client", "fp-ca", "front-proxy-client", client),
		ServiceAccountKey:      filepath.Join(dir, "kube-ca.key"),
		ServiceAccountPub:      filepath.Join(dir, "sa.pub"),
	}
	run("pkey", "-in", "kube-ca.key", "-pubout", "-out", "sa.pub")
	got, err := UseFiles(f, testParams(), time.Now())
	if err != nil {
		t.Fatalf("UseFiles: %v", err)
	}
	if len(got.Expiry) != 10 {
		t.Errorf("expiry %v", got.Expiry)
	}
}

func TestUseFilesReportsEachProblem(t *testing.T) {
	p := testParams()
	dir := t.TempDir()
	s := testSecret(t)
	good := mustEnsure(t, dir, s, p, t0)
	foreign := mustEnsure(t, t.TempDir(), testSecret(t), p, t0)
	tests := []struct {
		name  string
		edit  func(f *Files, p *Params, now *time.Time)
		wants []string
	}{
		{"a key of another certificate", func(f *Files, p *Params, now *time.Time) {
			f.EtcdServer.Key = good.EtcdPeer.Key
		}, []string{"etcd server: key " + good.EtcdPeer.Key + " does not match certificate " + good.EtcdServer.Cert}},
		{"a certificate of another CA", func(f *Files, p *Params, now *time.Time) {
			f.APIServer = foreign.APIServer
		}, []string{"apiserver certificate " + foreign.APIServer.Cert + ": x509: certificate signed by unknown authority"}},
		{"a CA that did not sign the leaves", func(f *Files, p *Params, now *time.Time) {
			f.EtcdCA = foreign.EtcdCA
		}, []string{"etcd server certificate", "etcd peer certificate", "masterd etcd client certificate", "apiserver etcd client certificate", "signed by unknown authority"}},
		{"a VIP the apiserver certificate lacks", func(f *Files, p *Params, now *time.Time) {
			p.VIP = netip.MustParseAddr("10.10.0.200")
		}, []string{"apiserver certificate " + good.APIServer.Cert + ": missing ip address 10.10.0.200"}},
		{"a node address the etcd certificates lack", func(f *Files, p *Params, now *time.Time) {
			p.NodeAddress = netip.MustParseAddr("10.10.0.9")
		}, []string{"etcd server certificate", "etcd peer certificate", "apiserver certificate", "missing ip address 10.10.0.9"}},
		{"a client certificate used to serve", func(f *Files, p *Params, now *time.Time) {
			f.EtcdServer = good.EtcdClient
		}, []string{"missing ip address 10.10.0.1, ip address 127.0.0.1, extended key usage server auth", "incompatible key usage"}},
		{"a file not given", func(f *Files, p *Params, now *time.Time) {
			f.EtcdClient.Cert = ""
		}, []string{"masterd etcd client certificate: no file given"}},
		{"a file that does not exist", func(f *Files, p *Params, now *time.Time) {
			f.ServiceAccountPub = filepath.Join(dir, "nope.pub")
		}, []string{"service-account public key: open " + filepath.Join(dir, "nope.pub") + ": no such file"}},
		{"expired certificates", func(f *Files, p *Params, now *time.Time) {
			*now = t0.Add(400 * 24 * time.Hour)
		}, []string{"certificate has expired"}},
		{"a mismatched service-account key pair", func(f *Files, p *Params, now *time.Time) {
			f.ServiceAccountPub = foreign.ServiceAccountPub
		}, []string{"service-account key " + good.ServiceAccountKey + " does not match public key"}},
		{"half a front proxy", func(f *Files, p *Params, now *time.Time) {
			f.FrontProxyClient = Pair{}
		}, []string{"give both or neither"}},
		{"a kube CA key of another CA", func(f *Files, p *Params, now *time.Time) {
			f.KubeCA.Key = foreign.KubeCA.Key
		}, []string{"kubernetes CA key " + foreign.KubeCA.Key + " does not match"}},
		{"a kubeconfig of another cluster", func(f *Files, p *Params, now *time.Time) {
			f.AdminConf = foreign.AdminConf
		}, []string{"kubeconfig " + foreign.AdminConf + ": client certificate: x509: certificate signed by unknown authority"}},
		{"a CA file holding a leaf", func(f *Files, p *Params, now *time.Time) {
			f.KubeCA.Cert = good.APIServer.Cert
		}, []string{`first certificate "kube-apiserver" is not a CA`}},
		{"a key file holding garbage", func(f *Files, p *Params, now *time.Time) {
			bad := filepath.Join(t.TempDir(), "bad.key")
			os.WriteFile(bad, []byte("garbage"), 0o600)
			f.EtcdPeer.Key = bad
		}, []string{"etcd peer key", "no private key block"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, p, now := *good, p, t0
			tt.edit(&f, &p, &now)
			_, err := UseFiles(f, p, now)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestUseFilesRefusesKeysOthersCanRead(t *testing.T) {
	p := testParams()
	f := mustEnsure(t, t.TempDir(), testSecret(t), p, t0)
	os.Chmod(f.APIServer.Key, 0o644)
	os.Chmod(f.AdminConf, 0o640)
	_, err := UseFiles(*f, p, t0)
	for _, w := range []string{"chmod 600 " + f.APIServer.Key, "chmod 600 " + f.AdminConf} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}

func TestUseFilesReportsEveryProblemAtOnce(t *testing.T) {
	p := testParams()
	f := mustEnsure(t, t.TempDir(), testSecret(t), p, t0)
	g := *f
	g.EtcdClient.Cert, g.APIServerEtcdClient.Key, g.ServiceAccountKey = "", "", ""
	_, err := UseFiles(g, p, t0)
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("want three problems, one per line: %v", err)
	}
}
