package vip

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/masterd/masterd/integration/lab"
)

// kubeVIPUnit is the transient unit kube-vip runs as inside a lab host.
const kubeVIPUnit = "bench-kube-vip"

// KubeVIPVersion is the kube-vip release integration/kubevip/build.sh builds
// by default (the newest the Go module proxy serves).
const KubeVIPVersion = "v0.9.2"

// FindKubeVIP returns the kube-vip binary integration/kubevip/build.sh
// leaves in the cache ($MASTERD_CACHE, else ~/.cache/masterd, as the
// Makefile exports it), or "" when it is not built.
func FindKubeVIP() string {
	dir := os.Getenv("MASTERD_CACHE")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".cache", "masterd")
	}
	p := filepath.Join(dir, "kube-vip", KubeVIPVersion, "kube-vip")
	if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
		return ""
	}
	return p
}

var kubeServerRE = regexp.MustCompile(`(?m)^(\s*server:\s*)https://\S+`)

// kubeVIPKubeconfig is where kube-vip's manager reads its kubeconfig: v0.9.2
// hardcodes kubeadm's path (its --k8sConfigPath is not used by the manager).
const kubeVIPKubeconfig = "/etc/kubernetes/admin.conf"

// installKubeVIP copies the kube-vip binary and an admin kubeconfig into
// m. kube-vip talks to the apiserver at kubernetes:6443 whatever the
// kubeconfig says (as a static pod on a kubeadm node, with a host alias to
// the local apiserver): /etc/hosts maps that name to m's own apiserver, and
// the kubeconfig's server points there too.
func installKubeVIP(m *lab.Master, bin []byte) error {
	h := m.Host()
	if err := h.WriteFile("/usr/local/bin/kube-vip", bin, 0o755); err != nil {
		return fmt.Errorf("vip bench: install kube-vip in %s: %w", m.Name, err)
	}
	admin, err := os.ReadFile(h.Path("/var/lib/masterd/pki/admin.conf"))
	if err != nil {
		return fmt.Errorf("vip bench: kube-vip kubeconfig for %s: %w", m.Name, err)
	}
	admin = kubeServerRE.ReplaceAll(admin, []byte(fmt.Sprintf("${1}https://%s:6443", m.Addr)))
	if err := h.WriteFile(kubeVIPKubeconfig, admin, 0o600); err != nil {
		return fmt.Errorf("vip bench: kube-vip kubeconfig for %s: %w", m.Name, err)
	}
	hosts, err := os.ReadFile(h.Path("/etc/hosts"))
	if err != nil {
		return fmt.Errorf("vip bench: %s: /etc/hosts: %w", m.Name, err)
	}
	const mark = "# bench/vip kube-vip\n"
	if !strings.Contains(string(hosts), mark) {
		hosts = append(hosts, fmt.Sprintf("%s%s kubernetes\n", mark, m.Addr)...)
		if err := h.WriteFile("/etc/hosts", hosts, 0o644); err != nil {
			return fmt.Errorf("vip bench: %s: /etc/hosts: %w", m.Name, err)
		}
	}
	return nil
}

// kubeVIPArgs is kube-vip's command line for master m: ARP mode, the
// control-plane VIP on eth0 with Kubernetes-lease leader election at
// kube-vip's default timings (lease 5 s, renew deadline 3 s, retry 1 s),
// no IPVS load balancing (haproxy serves VIP:6443, as for keepalived).
func kubeVIPArgs(m *lab.Master, vip string) []string {
	return []string{"/usr/local/bin/kube-vip", "manager",
		"--interface", "eth0", "--address", vip, "--port", "6443",
		"--arp", "--controlplane", "--leaderElection",
		"--leaseName", "plndr-cp-lock", "--namespace", "kube-system",
		"--leaseDuration", "5", "--leaseRenewDuration", "3", "--leaseRetry", "1",
		"--k8sConfigPath", kubeVIPKubeconfig, "--nodeName", m.Name}
}

// startKubeVIP starts kube-vip in m as bench-kube-vip. Restart=always with
// a 2 s delay stands in for the kubelet restarting its static pod (kube-vip
// exits on purpose when it loses the lease) and matches masterd's unit.
func startKubeVIP(ctx context.Context, l *lab.Lab, m *lab.Master) error {
	return startUnit(ctx, m, kubeVIPUnit, []string{"Restart=always", "RestartSec=2s"}, kubeVIPArgs(m, l.VIP().String())...)
}
