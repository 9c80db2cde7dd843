package addons

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kubeProxyBin is the kube-proxy built by integration/kube/build.sh.
func kubeProxyBin(t *testing.T) string {
	t.Helper()
	dirs := []string{os.Getenv("MASTERD_KUBE_BIN")}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache/masterd/kube/v1.37.2/bin"))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if fi, err := os.Stat(filepath.Join(d, "kube-proxy")); err == nil && fi.Mode()&0o111 != 0 {
			return filepath.Join(d, "kube-proxy")
		}
	}
	t.Skip("kube-proxy not built: run integration/kube/build.sh or set MASTERD_KUBE_BIN")
	return ""
}

// The rendered config.conf is loaded and validated by the real kube-proxy
// (--write-config-to loads, validates, writes the defaulted configuration
// and exits), in each mode; a mode kube-proxy does not know is refused the
// same way, so the check can fail.
func TestRealKubeProxyLoadsTheRenderedConfiguration(t *testing.T) {
	bin := kubeProxyBin(t)
	load := func(conf string) (string, error) {
		dir := t.TempDir()
		in, out := filepath.Join(dir, "config.conf"), filepath.Join(dir, "out.yaml")
		if err := os.WriteFile(in, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		msg, err := exec.Command(bin, "--config="+in, "--write-config-to="+out).CombinedOutput()
		if err != nil {
			return string(msg), err
		}
		written, err := os.ReadFile(out)
		return string(written), err
	}
	for _, mode := range []string{"nftables", "iptables"} {
		c := testConfig()
		c.KubeProxy.Mode = mode
		objs, err := KubeProxy(c)
		if err != nil {
			t.Fatal(err)
		}
		conf := dig(byName(objs)["ConfigMap kube-system/kube-proxy"], "data", "config.conf").(string)
		written, err := load(conf)
		if err != nil {
			t.Fatalf("kube-proxy refused the %s configuration: %v\n%s", mode, err, written)
		}
		for _, want := range []string{"mode: " + mode + "\n", "kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n", "clusterCIDR: 10.244.0.0/16\n", "maxPerCore: 0\n"} {
			if !strings.Contains(written, want) {
				t.Errorf("%s: kube-proxy's configuration lacks %q:\n%s", mode, want, written)
			}
		}
	}
	bad := strings.Replace(kubeProxyConfig, "mode: {{ .Mode }}", "mode: ipvsx", 1)
	bad = strings.Replace(bad, `"{{ .ClusterCIDR }}"`, `""`, 1)
	if msg, err := load(bad); err == nil || !strings.Contains(msg, "ipvsx") {
		t.Errorf("kube-proxy accepted mode ipvsx: %v %s", err, msg)
	}
}
