package bootstrap

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func testCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func testCluster(t *testing.T) Cluster {
	return Cluster{Server: "https://10.10.0.100:6443", CAPEM: testCA(t), KubernetesVersion: "v1.37.2", ClusterName: "kubernetes",
		ServiceCIDR: netip.MustParsePrefix("10.96.0.0/12"), ClusterDomain: "cluster.local", ImageRepository: "registry.k8s.io", CgroupDriver: "systemd"}
}

// The hash is what kubeadm's documentation computes with openssl.
func TestCAHashMatchesTheOpensslRecipe(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	ca := testCA(t)
	path := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(path, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", "openssl x509 -pubkey -in "+path+
		" | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex | sed 's/^.* //'").Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := CAHash(ca)
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256:" + strings.TrimSpace(string(out)); got != want {
		t.Errorf("CAHash = %s, openssl says %s", got, want)
	}
	if _, err := CAHash([]byte("not pem")); err == nil {
		t.Error("CAHash of garbage succeeded")
	}
}

func TestDNSIPIsTheTenthAddressOfTheServiceRange(t *testing.T) {
	for cidr, want := range map[string]string{"10.96.0.0/12": "10.96.0.10", "10.96.5.7/12": "10.96.0.10", "172.20.0.0/16": "172.20.0.10", "fd00:10:96::/108": "fd00:10:96::a", "10.0.0.0/29": ""} {
		got, err := DNSIP(netip.MustParsePrefix(cidr))
		if want == "" {
			if err == nil {
				t.Errorf("DNSIP(%s) = %s, want an error", cidr, got)
			}
			continue
		}
		if err != nil || got.String() != want {
			t.Errorf("DNSIP(%s) = %s, %v; want %s", cidr, got, err, want)
		}
	}
}

func TestJoinCommandAndBootstrapKubeconfigCarryTheVIPTokenAndCA(t *testing.T) {
	c := testCluster(t)
	tok := Token{"abcdef", "0123456789abcdef"}
	hash, _ := CAHash(c.CAPEM)
	cmd, err := JoinCommand(c.Server, c.CAPEM, tok)
	if err != nil {
		t.Fatal(err)
	}
	if want := "kubeadm join 10.10.0.100:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash " + hash; cmd != want {
		t.Errorf("join command %q, want %q", cmd, want)
	}
	kc, err := BootstrapKubeconfig(c.Server, c.CAPEM, tok)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
				CA     string `yaml:"certificate-authority-data"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Token string `yaml:"token"`
			} `yaml:"user"`
		} `yaml:"users"`
		CurrentContext string `yaml:"current-context"`
	}
	if err := yaml.Unmarshal([]byte(kc), &parsed); err != nil {
		t.Fatal(err)
	}
	if len(parsed.Clusters) != 1 || parsed.Clusters[0].Cluster.Server != c.Server || len(parsed.Users) != 1 || parsed.Users[0].User.Token != tok.String() {
		t.Errorf("bootstrap kubeconfig:\n%s", kc)
	}
	if _, err := JoinCommand("10.10.0.100:6443", c.CAPEM, tok); err == nil {
		t.Error("a server without https:// was accepted")
	}
}

func TestObjectsAreKubeadmsNamesWithTheVIPInClusterInfo(t *testing.T) {
	c := testCluster(t)
	objs, err := Objects(c)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]Object{}
	for _, o := range objs {
		if _, err := o.Path(); err != nil {
			t.Errorf("%s: %v", o, err)
		}
		names[o.String()] = o
	}
	for _, want := range []string{
		"ConfigMap kube-public/cluster-info", "Role kube-public/kubeadm:bootstrap-signer-clusterinfo", "RoleBinding kube-public/kubeadm:bootstrap-signer-clusterinfo",
		"ConfigMap kube-system/kubeadm-config", "Role kube-system/kubeadm:nodes-kubeadm-config", "RoleBinding kube-system/kubeadm:nodes-kubeadm-config",
		"ConfigMap kube-system/kubelet-config", "Role kube-system/kubeadm:kubelet-config", "RoleBinding kube-system/kubeadm:kubelet-config",
		"ClusterRoleBinding kubeadm:kubelet-bootstrap", "ClusterRole kubeadm:get-nodes", "ClusterRoleBinding kubeadm:get-nodes",
		"ClusterRoleBinding kubeadm:node-autoapprove-bootstrap", "ClusterRoleBinding kubeadm:node-autoapprove-certificate-rotation",
	} {
		if names[want] == nil {
			t.Errorf("missing %s", want)
		}
	}
	ci := names["ConfigMap kube-public/cluster-info"]["data"].(map[string]any)["kubeconfig"].(string)
	if !strings.Contains(ci, "server: https://10.10.0.100:6443") || !strings.Contains(ci, `name: ""`) {
		t.Errorf("cluster-info kubeconfig:\n%s", ci)
	}
	kcfg := names["ConfigMap kube-system/kubelet-config"]["data"].(map[string]any)["kubelet"].(string)
	var kubelet map[string]any
	if err := yaml.Unmarshal([]byte(kcfg), &kubelet); err != nil {
		t.Fatal(err)
	}
	if dns := kubelet["clusterDNS"].([]any); len(dns) != 1 || dns[0] != "10.96.0.10" || kubelet["serverTLSBootstrap"] != false {
		t.Errorf("kubelet config:\n%s", kcfg)
	}
	cc := names["ConfigMap kube-system/kubeadm-config"]["data"].(map[string]any)["ClusterConfiguration"].(string)
	if !strings.Contains(cc, "controlPlaneEndpoint: 10.10.0.100:6443") || !strings.Contains(cc, "kubernetesVersion: v1.37.2") {
		t.Errorf("ClusterConfiguration:\n%s", cc)
	}

	bad := c
	bad.Server, bad.CAPEM, bad.ServiceCIDR, bad.CgroupDriver = "http://x", nil, netip.Prefix{}, "other"
	_, err = Objects(bad)
	for _, want := range []string{"server:", "ca: is required", "serviceCIDR: is required", "cgroupDriver:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %q", err, want)
		}
	}
}
