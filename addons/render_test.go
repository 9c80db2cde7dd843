package addons

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/masterd/masterd/bootstrap"
	"go.yaml.in/yaml/v3"
)

func testConfig() Config {
	c := DefaultConfig()
	c.Server = "https://10.10.0.100:6443"
	c.PodCIDR = netip.MustParsePrefix("10.244.0.0/16")
	return c
}

func byName(objs []bootstrap.Object) map[string]bootstrap.Object {
	m := map[string]bootstrap.Object{}
	for _, o := range objs {
		m[o.String()] = o
	}
	return m
}

// dig walks maps and lists: dig(o, "spec", "template", 0, "image").
func dig(v any, path ...any) any {
	if o, ok := v.(bootstrap.Object); ok {
		v = map[string]any(o)
	}
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestRenderedAddonsHaveKubeadmsObjectsWithTheConfiguredValues(t *testing.T) {
	c := testConfig()
	c.CoreDNS.Image = "mirror.example:5000/coredns:v1.14.6"
	c.KubeProxy.Image = "mirror.example:5000/kube-proxy:v1.37.2"
	c.ClusterDomain = "corp.internal"
	objs, err := Objects(c)
	if err != nil {
		t.Fatal(err)
	}
	m := byName(objs)
	for _, want := range []string{"ServiceAccount kube-system/coredns", "ClusterRole system:coredns", "ClusterRoleBinding system:coredns",
		"ConfigMap kube-system/coredns", "Service kube-system/kube-dns", "Deployment kube-system/coredns",
		"ServiceAccount kube-system/kube-proxy", "ClusterRoleBinding kubeadm:node-proxier", "Role kube-system/kube-proxy",
		"RoleBinding kube-system/kube-proxy", "ConfigMap kube-system/kube-proxy", "DaemonSet kube-system/kube-proxy"} {
		if m[want] == nil {
			t.Errorf("missing %s", want)
		}
	}
	if len(objs) != 12 {
		t.Errorf("%d objects, want 12", len(objs))
	}
	if ip := dig(m["Service kube-system/kube-dns"], "spec", "clusterIP"); ip != "10.96.0.10" {
		t.Errorf("kube-dns clusterIP %v, want 10.96.0.10", ip)
	}
	if img := dig(m["Deployment kube-system/coredns"], "spec", "template", "spec", "containers", 0, "image"); img != c.CoreDNS.Image {
		t.Errorf("coredns image %v", img)
	}
	if n := dig(m["Deployment kube-system/coredns"], "spec", "replicas"); n != 2 {
		t.Errorf("coredns replicas %v (%T), want 2", n, n)
	}
	if img := dig(m["DaemonSet kube-system/kube-proxy"], "spec", "template", "spec", "containers", 0, "image"); img != c.KubeProxy.Image {
		t.Errorf("kube-proxy image %v", img)
	}
	cf, _ := dig(m["ConfigMap kube-system/coredns"], "data", "Corefile").(string)
	if !strings.Contains(cf, "kubernetes corp.internal in-addr.arpa ip6.arpa {") || !strings.Contains(cf, "disable success corp.internal") {
		t.Errorf("Corefile:\n%s", cf)
	}
	kc, _ := dig(m["ConfigMap kube-system/kube-proxy"], "data", "kubeconfig.conf").(string)
	if !strings.Contains(kc, "server: https://10.10.0.100:6443\n") {
		t.Errorf("kube-proxy kubeconfig does not point at the VIP:\n%s", kc)
	}
	var pc map[string]any
	if err := yaml.Unmarshal([]byte(dig(m["ConfigMap kube-system/kube-proxy"], "data", "config.conf").(string)), &pc); err != nil {
		t.Fatal(err)
	}
	if pc["kind"] != "KubeProxyConfiguration" || pc["mode"] != "nftables" || pc["clusterCIDR"] != "10.244.0.0/16" ||
		dig(pc, "clientConnection", "kubeconfig") != "/var/lib/kube-proxy/kubeconfig.conf" {
		t.Errorf("kube-proxy config.conf: %v", pc)
	}
}

func TestAnAddonSwitchedOffIsNotRendered(t *testing.T) {
	c := testConfig()
	c.CoreDNS.Enabled = false
	objs, err := Objects(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if strings.Contains(o.String(), "coredns") || strings.Contains(o.String(), "kube-dns") {
			t.Errorf("CoreDNS off but %s rendered", o)
		}
	}
	c.KubeProxy.Enabled = false
	c.Server = "" // not needed without kube-proxy
	if objs, err := Objects(c); err != nil || len(objs) != 0 {
		t.Errorf("both off: %d objects, %v", len(objs), err)
	}
}

func TestBadAddonConfigNamesEveryField(t *testing.T) {
	c := testConfig()
	c.Server = "10.10.0.100"
	c.KubeProxy.Mode = "ipvs"
	c.KubeProxy.Image = ""
	c.CoreDNS.Image = "a b"
	c.CoreDNS.Replicas = 0
	c.ClusterDomain = ""
	c.PodCIDR = netip.MustParsePrefix("10.96.0.0/16")
	_, err := Objects(c)
	for _, want := range []string{"server:", `kubeProxy.mode: "ipvs"`, "kubeProxy.image:", "coreDNS.image:", "coreDNS.replicas: 0", "clusterDomain:", "podCIDR: 10.96.0.0/16 overlaps"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %q", err, want)
		}
	}
}
