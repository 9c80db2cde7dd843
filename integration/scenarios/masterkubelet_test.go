package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/images"
	"github.com/masterd/masterd/integration/lab"
)

// TestMasterKubeletRegistersTaintedNode: nodes.masterKubelet on a one-master
// lab (real systemd, the packaged masterd, containerd v2, kubelet v1.37).
// Before the master has a container runtime, `masterd run --check` warns
// that the runtime socket is missing and masterd serves anyway, its kubelet
// unit restarting. Once containerd runs there, the master's Node registers
// Ready through the kubelet masterd wrote (client certificate from the kube
// CA issued by masterd, no token, pointed at the master's own apiserver),
// with the node-role.kubernetes.io/control-plane:NoSchedule taint: a pod
// without the toleration stays unscheduled, one with it runs on the master,
// and the apiserver reaches it (its pod proxy, the path webhooks and
// aggregated APIs take) and its kubelet (kubectl logs).
func TestMasterKubeletRegistersTaintedNode(t *testing.T) {
	o := options(t)
	if o.KubeBinDir == "" {
		t.Skip("needs the kube binaries: run `make kube` (or set KUBE_BIN_DIR)")
	}
	if _, err := os.Stat(o.KubeBinDir + "/kubelet"); err != nil {
		t.Skipf("no kubelet in %s: run `make kube` (integration/kube/build.sh)", o.KubeBinDir)
	}
	ctrd := lab.FindContainerdBinDir()
	if ctrd == "" {
		t.Skip("no containerd v2 binaries: run `make containerd` (or set CONTAINERD_BIN_DIR)")
	}
	set := images.DefaultSet()
	set.KubeBinDir = o.KubeBinDir
	set.CoreDNSBinary = images.FindCoreDNS()
	if set.CoreDNSBinary == "" {
		t.Skip("no cached coredns binary: run `make containerd` (integration/images/coredns.sh)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	archives, wrap, err := set.BuildForWorker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o.Masters = 1
	o.Prefix = fmt.Sprintf("scmk%d", os.Getpid()%1000000)
	o.ExtraYAML = lab.MasterKubeletYAML
	s := upLab(t, ctx, o, 5*time.Minute)
	m := s.Masters()[0]
	t.Cleanup(func() {
		if t.Failed() {
			c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, _ := m.Exec(c, "journalctl", "--no-pager", "-o", "cat", "-u", "masterd-kubelet", "-n", "60")
			t.Logf("--- %s: journalctl -u masterd-kubelet\n%s", m.Name, out)
			out, _ = s.Kubectl(c, "get", "pods", "-A", "-o", "wide")
			t.Logf("--- kubectl get pods -A\n%s", out)
		}
	})

	// No runtime yet: preflight warns, the master serves (upLab waited for
	// it to be ready), its kubelet unit is written and restarting.
	const sockKey = "nodes.masterKubelet.containerRuntimeEndpoint"
	// A warning only: the check passes (exit 0).
	out, err := m.Exec(ctx, "masterd", "run", "--check")
	if err != nil || !strings.Contains(string(out), "warning: "+sockKey+": no container runtime socket at /run/containerd/containerd.sock") {
		t.Fatalf("masterd run --check without a runtime: %v, want exit 0 and a warning naming %s:\n%s", err, sockKey, out)
	}
	t.Logf("masterd run --check without a runtime:\n%s", out)
	unit, err := os.ReadFile(m.Host().Path("/run/systemd/system/masterd-kubelet.service"))
	if err != nil || !strings.Contains(string(unit), "--hostname-override="+m.Name) || !strings.Contains(string(unit), "--cgroups-per-qos=false") {
		t.Fatalf("masterd-kubelet.service: %v, want one naming the node and the config's extra args:\n%s", err, unit)
	}
	kc, err := os.ReadFile(m.Host().Path("/var/lib/masterd/kubelet/kubelet.conf"))
	if err != nil || !strings.Contains(string(kc), fmt.Sprintf(`server: "https://%s:6443"`, m.Addr)) {
		t.Fatalf("kubelet.conf: %v, want the master's own apiserver https://%s:6443:\n%s", err, m.Addr, kc)
	}
	for _, f := range []string{"kubelet.conf", "kubelet-client.key"} {
		if fi, err := os.Stat(m.Host().Path("/var/lib/masterd/kubelet/" + f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("/var/lib/masterd/kubelet/%s: %v, want mode 0600", f, err)
		}
	}

	start := time.Now()
	if err := s.AddMasterRuntime(ctx, m, lab.WorkerOptions{
		ContainerdBinDir: ctrd,
		RuncWrap:         wrap,
		Images:           archives,
		PauseImage:       set.Pause,
		PodCIDR:          netip.MustParsePrefix("10.244.0.0/24"),
	}); err != nil {
		t.Fatal(err)
	}
	s.waitKubectlOutput(t, ctx, 3*time.Minute, "True",
		"get", "node", m.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	figure(t, "containerd started on master %s to its Node Ready (masterd's kubelet restarting meanwhile): %.1fs", m.Name, time.Since(start).Seconds())
	// The node lifecycle controller lifts node.kubernetes.io/not-ready
	// shortly after Ready; the registration's taint stays.
	s.waitKubectlOutput(t, ctx, time.Minute, "node-role.kubernetes.io/control-plane:NoSchedule",
		"get", "node", m.Name, "-o", `jsonpath={range .spec.taints[*]}{.key}:{.effect}{" "}{end}`)
	out, err = s.Kubectl(ctx, "get", "node", m.Name, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
	if err != nil || strings.TrimSpace(string(out)) != m.Addr.String() {
		t.Errorf("node %s InternalIP %q (%v), want the master's address %s", m.Name, out, err, m.Addr)
	}
	if out, err := m.Exec(ctx, "masterd", "run", "--check"); err != nil || strings.Contains(string(out), sockKey) {
		t.Errorf("masterd run --check with containerd running: %v, want no warning about %s:\n%s", err, sockKey, out)
	}
	st, err := m.Status(ctx)
	var ks struct{ Unit, Active, Server string }
	if err != nil || json.Unmarshal(st.Sections["kubelet"], &ks) != nil || ks.Unit != "masterd-kubelet.service" || ks.Active != "active" {
		t.Errorf("masterd status: kubelet section %s (%v), want masterd-kubelet.service active", st.Sections["kubelet"], err)
	}

	s.waitKubectlOutput(t, ctx, 2*time.Minute, "default", "get", "serviceaccount", "default", "-o", "jsonpath={.metadata.name}")
	pod := func(name, tolerations string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
%s  containers:
  - name: echo
    image: %s
    imagePullPolicy: Never
    ports:
    - containerPort: 8080
    readinessProbe:
      httpGet: {path: /ready, port: 8080}
      periodSeconds: 1
`, name, tolerations, set.Echo)
	}
	untolerated := s.writeManifest(t, "untolerated.yaml", pod("untolerated", ""))
	tolerated := s.writeManifest(t, "on-master.yaml", pod("on-master", "  tolerations:\n  - {key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}\n"))
	for _, f := range []string{untolerated, tolerated} {
		if out, err := s.Kubectl(ctx, "apply", "-f", f); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	start = time.Now()
	s.waitKubectlOutput(t, ctx, 3*time.Minute, "Running True", "get", "pod", "on-master", "-o",
		`jsonpath={.status.phase} {.status.conditions[?(@.type=="Ready")].status}`)
	figure(t, "pod tolerating the control-plane taint created to Ready on master %s: %.1fs", m.Name, time.Since(start).Seconds())
	out, err = s.Kubectl(ctx, "get", "pod", "on-master", "-o", "jsonpath={.spec.nodeName} {.status.podIP}")
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 || f[0] != m.Name {
		t.Fatalf("pod on-master: node and IP %q (%v), want it on %s with an IP", out, err, m.Name)
	}
	// From the master's network namespace, by pod IP.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return m.Host().DialContext(ctx, network, a)
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + net.JoinHostPort(f[1], "8080") + "/direct")
	if err != nil {
		t.Fatalf("GET %s:8080 from %s: %v", f[1], m.Name, err)
	}
	body := make([]byte, 256)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if got := strings.TrimSpace(string(body[:n])); got != "on-master /direct" {
		t.Errorf("pod on-master at %s answered %q, want \"on-master /direct\"", f[1], got)
	}
	// The apiserver reaches the pod (its proxy dials the pod IP, as it
	// dials a webhook's or an aggregated API's endpoints) and the kubelet.
	out, err = s.Kubectl(ctx, "get", "--raw", "/api/v1/namespaces/default/pods/on-master:8080/proxy/via-apiserver")
	if err != nil || strings.TrimSpace(string(out)) != "on-master /via-apiserver" {
		t.Errorf("apiserver proxy to pod on-master: %q (%v), want \"on-master /via-apiserver\"", out, err)
	}
	if out, err := s.Kubectl(ctx, "logs", "on-master"); err != nil {
		t.Errorf("kubectl logs on-master (apiserver to the master's kubelet): %v: %s", err, out)
	}
	out, err = s.Kubectl(ctx, "get", "pod", "untolerated", "-o",
		`jsonpath={.spec.nodeName}|{.status.conditions[?(@.type=="PodScheduled")].reason}|{.status.conditions[?(@.type=="PodScheduled")].message}`)
	if p := strings.SplitN(string(out), "|", 3); err != nil || len(p) != 3 || p[0] != "" || p[1] != "Unschedulable" || !strings.Contains(p[2], "untolerated taint") {
		t.Errorf("pod untolerated: %q (%v), want unscheduled for an untolerated taint (the node's only one is the control-plane taint)", out, err)
	}
}
