package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// testCA writes a self-signed CA pair (PEM, the key PKCS#8 as the pki
// package writes it) into dir and returns the certificate's and key's
// paths and the certificate.
func testCA(t *testing.T, dir, cn string) (string, string, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath, ca
}

// The master kubelet's client certificate is issued from the kube CA as
// system:node:<name> in system:nodes (what the Node authorizer and
// NodeRestriction know a kubelet by), for client auth only, its key 0600,
// and reissued when it is missing, another master's, another CA's or
// expiring within renewBefore.
func TestMasterKubeletCertificateIsTheNodesAndRenewed(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey, ca := testCA(t, dir, "kube-ca")
	f := kubeletFilesIn(filepath.Join(dir, "data"))
	now := time.Now()
	const renew = 30 * 24 * time.Hour
	if r := kubeletCertReason(f, ca, "m1", now, renew); r != "missing" {
		t.Fatalf("before issuing: reason %q, want missing", r)
	}
	cert, err := issueKubeletCert(f, caCert, caKey, "m1", now, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "system:node:m1" || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "system:nodes" {
		t.Errorf("subject %s, want CN=system:node:m1,O=system:nodes", cert.Subject)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || cert.IsCA {
		t.Errorf("ext key usage %v, CA %v: want client auth only", cert.ExtKeyUsage, cert.IsCA)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("does not verify against the kube CA: %v", err)
	}
	for _, p := range []string{f.Cert, f.Key} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", p, err, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(f.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v; want a 0700 directory", f.Dir, err)
	}
	if r := kubeletCertReason(f, ca, "m1", now, renew); r != "" {
		t.Errorf("fresh certificate: reason %q, want none", r)
	}
	for _, tc := range []struct {
		name, node string
		at         time.Time
		ca         *x509.Certificate
		want       string
	}{
		{"another master's name", "m2", now, ca, `subject "CN=system:node:m1,O=system:nodes", want system:node:m2 in system:nodes`},
		{"within renewBefore of expiry", "m1", now.Add(340 * 24 * time.Hour), ca, "expires "},
		{"another CA (rotated)", "m1", now, func() *x509.Certificate { _, _, c := testCA(t, dir, "other-ca"); return c }(), "not signed by the current kube CA"},
	} {
		if r := kubeletCertReason(f, tc.ca, tc.node, tc.at, renew); !strings.Contains(r, tc.want) {
			t.Errorf("%s: reason %q, want it to contain %q", tc.name, r, tc.want)
		}
	}
	// Never past the CA's own expiry.
	cert, err = issueKubeletCert(f, caCert, caKey, "m1", now, 100*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cert.NotAfter.After(ca.NotAfter) {
		t.Errorf("NotAfter %s is past the CA's %s", cert.NotAfter, ca.NotAfter)
	}
	if _, err := issueKubeletCert(f, caCert, filepath.Join(dir, "none.key"), "m1", now, time.Hour); err == nil || !strings.Contains(err.Error(), "kube CA key") {
		t.Errorf("without the CA key: %v, want an error naming the kube CA key", err)
	}
}

// The kubelet's files say what the design says: this master's apiserver
// (not the VIP), the kube CA for client certificates, webhook
// authorization, the control-plane NoSchedule taint at registration, the
// cluster DNS, the runtime endpoint and cgroup driver of the config, no
// CSR rotation (masterd renews the files, which client-go reloads).
func TestMasterKubeletFilesPointAtTheLocalAPIServerWithTheTaint(t *testing.T) {
	cfg := nodesTestConfig()
	cfg.Name = "m1"
	cfg.Address = netip.MustParseAddr("10.0.0.1")
	cfg.Nodes.MasterKubelet.Enabled = true
	cfg.Nodes.CgroupDriver = "cgroupfs"
	text, err := kubeletConfiguration(cfg, "/var/lib/masterd/pki/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	var kc struct {
		Kind           string `yaml:"kind"`
		Authentication struct {
			Anonymous struct{ Enabled bool } `yaml:"anonymous"`
			Webhook   struct{ Enabled bool } `yaml:"webhook"`
			X509      struct {
				ClientCAFile string `yaml:"clientCAFile"`
			} `yaml:"x509"`
		} `yaml:"authentication"`
		Authorization struct {
			Mode string `yaml:"mode"`
		} `yaml:"authorization"`
		CgroupDriver             string   `yaml:"cgroupDriver"`
		ContainerRuntimeEndpoint string   `yaml:"containerRuntimeEndpoint"`
		ClusterDNS               []string `yaml:"clusterDNS"`
		ClusterDomain            string   `yaml:"clusterDomain"`
		RegisterWithTaints       []struct {
			Key, Effect, Value string
		} `yaml:"registerWithTaints"`
		RotateCertificates bool `yaml:"rotateCertificates"`
	}
	if err := yaml.Unmarshal([]byte(text), &kc); err != nil {
		t.Fatalf("%v:\n%s", err, text)
	}
	if kc.Kind != "KubeletConfiguration" || kc.Authentication.Anonymous.Enabled || !kc.Authentication.Webhook.Enabled ||
		kc.Authentication.X509.ClientCAFile != "/var/lib/masterd/pki/ca.crt" || kc.Authorization.Mode != "Webhook" {
		t.Errorf("authentication and authorization: %+v %+v", kc.Authentication, kc.Authorization)
	}
	if len(kc.RegisterWithTaints) != 1 || kc.RegisterWithTaints[0].Key != "node-role.kubernetes.io/control-plane" || kc.RegisterWithTaints[0].Effect != "NoSchedule" {
		t.Errorf("registerWithTaints %+v, want node-role.kubernetes.io/control-plane:NoSchedule", kc.RegisterWithTaints)
	}
	if kc.CgroupDriver != "cgroupfs" || kc.ContainerRuntimeEndpoint != "unix:///run/containerd/containerd.sock" ||
		len(kc.ClusterDNS) != 1 || kc.ClusterDNS[0] != "10.96.0.10" || kc.ClusterDomain != "cluster.local" || kc.RotateCertificates {
		t.Errorf("config %+v", kc)
	}

	if s := kubeletServer(cfg); s != "https://10.0.0.1:6443" {
		t.Errorf("server %q, want this master's apiserver https://10.0.0.1:6443", s)
	}
	f := kubeletFilesIn("/var/lib/masterd")
	var conf struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
				CA     string `yaml:"certificate-authority"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			Name string `yaml:"name"`
			User struct {
				Cert string `yaml:"client-certificate"`
				Key  string `yaml:"client-key"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal([]byte(kubeletKubeconfig(kubeletServer(cfg), "/ca.crt", f, "m1")), &conf); err != nil {
		t.Fatal(err)
	}
	if len(conf.Clusters) != 1 || conf.Clusters[0].Cluster.Server != "https://10.0.0.1:6443" || conf.Clusters[0].Cluster.CA != "/ca.crt" ||
		len(conf.Users) != 1 || conf.Users[0].Name != "system:node:m1" ||
		conf.Users[0].User.Cert != "/var/lib/masterd/kubelet/kubelet-client.crt" || conf.Users[0].User.Key != "/var/lib/masterd/kubelet/kubelet-client.key" {
		t.Errorf("kubeconfig %+v", conf)
	}
}

// nodes.masterKubelet is off by default; when on, bad values are named by
// key, and it needs managed mode.
func TestMasterKubeletConfigErrorsNameTheirKeys(t *testing.T) {
	if cfg, err := load(t, validYAML); err != nil || cfg.Nodes.MasterKubelet.Enabled || cfg.Nodes.MasterKubelet.ContainerRuntimeEndpoint != "unix:///run/containerd/containerd.sock" {
		t.Fatalf("defaults: %+v, %v; want off, containerd's socket", cfg.Nodes.MasterKubelet, err)
	}
	cfg, err := load(t, validYAML+"nodes:\n  masterKubelet:\n    enabled: true\n    extraArgs: {v: \"2\"}\n")
	if err != nil || !cfg.Nodes.MasterKubelet.Enabled || cfg.Nodes.MasterKubelet.ExtraArgs["v"] != "2" {
		t.Fatalf("enabled: %+v, %v", cfg.Nodes.MasterKubelet, err)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"a TCP endpoint", "nodes:\n  masterKubelet:\n    enabled: true\n    containerRuntimeEndpoint: tcp://10.0.0.1:1234\n",
			`nodes.masterKubelet.containerRuntimeEndpoint: "tcp://10.0.0.1:1234" is not unix:///absolute/path`},
		{"a relative socket", "nodes:\n  masterKubelet:\n    enabled: true\n    containerRuntimeEndpoint: unix://run/x.sock\n",
			`nodes.masterKubelet.containerRuntimeEndpoint: "unix://run/x.sock" is not unix:///absolute/path`},
		{"a flag with dashes", "nodes:\n  masterKubelet:\n    enabled: true\n    extraArgs: {--v: \"2\"}\n",
			`nodes.masterKubelet.extraArgs: "--v" is not a flag name`},
		{"mode none", "kubernetes: {mode: none}\nnodes:\n  masterKubelet: {enabled: true}\n",
			"nodes.masterKubelet.enabled: needs kubernetes.mode managed"},
		{"nodes off does not hide it", "nodes:\n  enabled: false\n  cgroupDriver: x\n  masterKubelet: {enabled: true}\n",
			`nodes.cgroupDriver: "x" is not systemd or cgroupfs`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, validYAML+tc.yaml)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// Preflight warns, without refusing the config, when the master kubelet is
// on and its runtime socket or its binary is missing; a listening socket
// and the binary silence it.
func TestPreflightWarnsOfAMasterKubeletWithoutRuntime(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	cfg := nodesTestConfig()
	cfg.Kubernetes.BinDir = dir
	cfg.Nodes.MasterKubelet.Enabled = true
	cfg.Nodes.MasterKubelet.ContainerRuntimeEndpoint = "unix://" + sock
	probs := masterKubeletProblems(&cfg)
	if len(probs) != 2 || !probs[0].Warning || probs[0].Key != "nodes.masterKubelet.containerRuntimeEndpoint" ||
		!strings.Contains(probs[0].Message, "no container runtime socket at "+sock) ||
		!probs[1].Warning || probs[1].Key != "kubernetes.binDir" || !strings.Contains(probs[1].Message, "no kubelet in "+dir) {
		t.Fatalf("problems %q, want a warning about the socket and one about kubelet", probs)
	}
	// A plain file is not a runtime.
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if probs := masterKubeletProblems(&cfg); len(probs) != 2 {
		t.Errorf("a plain file at the socket path: %q, want the warning to stay", probs)
	}
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.WriteFile(filepath.Join(dir, "kubelet"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if probs := masterKubeletProblems(&cfg); len(probs) != 0 {
		t.Errorf("with a listening socket and kubelet: %q, want none", probs)
	}
	cfg.Nodes.MasterKubelet.Enabled = false
	os.Remove(filepath.Join(dir, "kubelet"))
	if probs := masterKubeletProblems(&cfg); len(probs) != 0 {
		t.Errorf("disabled: %q, want none", probs)
	}
}
