package scenarios

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/images"
	"github.com/masterd/masterd/integration/lab"
)

// TestWorkerRunsPods: a worker host (real systemd, containerd v2 built from
// the module proxy, Debian's runc and CNI plugins, kubelet v1.37) joins a
// one-master lab through the VIP: its Node turns Ready, a Pod of the echo
// image (built here, imported without a registry) runs on it, and the pod
// answers by its pod IP from the worker's namespace with its own name.
//
// The kubelet's client certificate is signed here with the cluster CA
// (system:node:<name> in system:nodes); bootstrap tokens and kubeadm join
// are the next step (issue 23).
func TestWorkerRunsPods(t *testing.T) {
	o := options(t)
	if o.KubeBinDir == "" {
		t.Skip("needs the kube binaries: run `make kube` (or set KUBE_BIN_DIR)")
	}
	for _, b := range []string{"kubelet", "kubeadm", "kube-proxy"} {
		if _, err := os.Stat(filepath.Join(o.KubeBinDir, b)); err != nil {
			t.Skipf("no %s in %s: run `make kube` (integration/kube/build.sh)", b, o.KubeBinDir)
		}
	}
	ctrd := lab.FindContainerdBinDir()
	if ctrd == "" {
		t.Skip("no containerd v2 binaries: run integration/containerd/build.sh (or set CONTAINERD_BIN_DIR)")
	}
	for _, p := range []string{"/usr/sbin/runc", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%v: install the Debian packages runc and containernetworking-plugins (make deps)", err)
		}
	}
	o.Masters = 1
	o.Prefix = fmt.Sprintf("scwk%d", os.Getpid()%1000000)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	set := images.DefaultSet()
	set.KubeBinDir = o.KubeBinDir
	set.CoreDNSBinary = images.FindCoreDNS()
	if set.CoreDNSBinary == "" {
		t.Logf("no cached coredns binary (integration/images/coredns.sh): the CoreDNS image is not checked")
	}
	archives, err := set.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wrap := filepath.Join(set.CacheDir, "bin", "runcwrap")
	if err := images.GoBinary(ctx, "", "github.com/masterd/masterd/integration/containerd/runcwrap", wrap); err != nil {
		t.Fatal(err)
	}

	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	s := &scenarioLab{Lab: l, t: t}
	s.dumpOnFailure(t)
	s.waitReady(t, ctx, 5*time.Minute)

	w, err := l.AddWorker(ctx, lab.WorkerOptions{
		Index:            1,
		ContainerdBinDir: ctrd,
		RuncWrap:         wrap,
		Images:           archives,
		PauseImage:       set.Pause,
		PodCIDR:          netip.MustParsePrefix("10.244.1.0/24"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("worker close: %v", err)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			t.Logf("--- %s: journalctl -u kubelet\n%s", w.Name, w.Journal(c, "kubelet", 80))
			t.Logf("--- %s: journalctl -u containerd\n%s", w.Name, w.Journal(c, "containerd", 40))
		}
	})
	if out, err := w.Exec(ctx, "ctr", "-n", "k8s.io", "images", "ls", "-q"); err != nil || !strings.Contains(string(out), set.Echo) || !strings.Contains(string(out), set.Pause) {
		t.Fatalf("images in containerd after import: %q (%v), want %s and %s", out, err, set.Pause, set.Echo)
	}

	m := l.Masters()[0]
	caPEM, err := os.ReadFile(m.Host().Path("/var/lib/masterd/pki/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	caKeyPEM, err := os.ReadFile(m.Host().Path("/var/lib/masterd/pki/ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := nodeKubeconfig(caPEM, caKeyPEM, w.Name, "https://"+netip.AddrPortFrom(l.VIP(), 6443).String())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cfg := lab.KubeletConfig("/etc/kubernetes/pki/ca.crt", netip.MustParseAddr("10.96.0.10"), "cluster.local")
	if err := w.StartKubelet(ctx, kubeconfig, caPEM, cfg, false); err != nil {
		t.Fatal(err)
	}
	s.waitKubectlOutput(t, ctx, 3*time.Minute, "True",
		"get", "node", w.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	figure(t, "kubelet started to Node %s Ready through the VIP: %.1fs", w.Name, time.Since(start).Seconds())

	manifest := filepath.Join(l.Dir(), "echo-pod.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: echo
  namespace: default
spec:
  containers:
  - name: echo
    image: %s
    imagePullPolicy: Never
    ports:
    - containerPort: 8080
    readinessProbe:
      httpGet:
        path: /ready
        port: 8080
      periodSeconds: 1
`, set.Echo)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The controller-manager creates the namespace's default ServiceAccount
	// shortly after it starts; admission refuses pods until then.
	s.waitKubectlOutput(t, ctx, 2*time.Minute, "default", "get", "serviceaccount", "default", "-o", "jsonpath={.metadata.name}")
	if out, err := l.Kubectl(ctx, "apply", "-f", manifest); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	start = time.Now()
	// Ready: running, and kubelet's readiness probe got an answer from the
	// pod IP (the process listens some moments after it starts).
	s.waitKubectlOutput(t, ctx, 3*time.Minute, "Running True", "get", "pod", "echo", "-o",
		`jsonpath={.status.phase} {.status.conditions[?(@.type=="Ready")].status}`)
	figure(t, "echo pod created to Ready on %s: %.1fs", w.Name, time.Since(start).Seconds())
	out, err := l.Kubectl(ctx, "get", "pod", "echo", "-o", "jsonpath={.spec.nodeName} {.status.podIP}")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != w.Name {
		t.Fatalf("pod echo: node and IP %q, want it on %s with an IP", out, w.Name)
	}
	if got := getFromWorker(t, w, f[1], "/hello"); got != "echo /hello" {
		t.Fatalf("echo pod at %s answered %q, want \"echo /hello\" (its host name and the path)", f[1], got)
	}

	// The addon images run: kube-proxy and the programs its proxiers call
	// (dynamically linked, their libraries copied into the image), and
	// CoreDNS. Each container exits 0 or the pod fails.
	tools := []string{
		"kube-proxy", set.KubeProxy, "/usr/local/bin/kube-proxy", "--version",
		"nft", set.KubeProxy, "/usr/sbin/nft", "--version",
		"iptables", set.KubeProxy, "/usr/sbin/iptables", "--version",
		"conntrack", set.KubeProxy, "/usr/sbin/conntrack", "--version",
	}
	if set.CoreDNSBinary != "" {
		tools = append(tools, "coredns", set.CoreDNS, "/coredns", "-version")
	}
	var pod strings.Builder
	pod.WriteString("apiVersion: v1\nkind: Pod\nmetadata:\n  name: image-tools\n  namespace: default\nspec:\n  restartPolicy: Never\n  containers:\n")
	for i := 0; i < len(tools); i += 4 {
		fmt.Fprintf(&pod, "  - name: %s\n    image: %s\n    imagePullPolicy: Never\n    command: [%q, %q]\n", tools[i], tools[i+1], tools[i+2], tools[i+3])
	}
	manifest = filepath.Join(l.Dir(), "image-tools.yaml")
	if err := os.WriteFile(manifest, []byte(pod.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Kubectl(ctx, "apply", "-f", manifest); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	phase := s.waitPodDone(t, ctx, 3*time.Minute, "image-tools")
	if phase != "Succeeded" {
		out, _ := l.Kubectl(ctx, "get", "pod", "image-tools", "-o", "jsonpath={range .status.containerStatuses[*]}{.name}={.state}{\"\\n\"}{end}")
		t.Fatalf("pod image-tools: %s, want Succeeded (every image's programs run):\n%s", phase, out)
	}
	if out, err := l.Kubectl(ctx, "logs", "image-tools", "-c", tools[len(tools)-4]); err == nil {
		t.Logf("kubectl logs image-tools -c %s: %s", tools[len(tools)-4], strings.TrimSpace(string(out)))
	} else {
		t.Logf("kubectl logs (apiserver to kubelet) failed: %v", err)
	}
}

// waitPodDone waits until the pod's phase is Succeeded or Failed and returns
// it.
func (s *scenarioLab) waitPodDone(t *testing.T, ctx context.Context, d time.Duration, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last string
	for {
		out, err := s.Kubectl(ctx, "get", "pod", name, "-o", "jsonpath={.status.phase}")
		last = strings.TrimSpace(string(out))
		if err == nil && (last == "Succeeded" || last == "Failed") {
			return last
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pod %s did not finish within %v: phase %q (%v)", name, d, last, err)
		case <-time.After(time.Second):
		}
	}
}

// waitKubectlOutput retries kubectl until its trimmed output is want.
func (s *scenarioLab) waitKubectlOutput(t *testing.T, ctx context.Context, d time.Duration, want string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last string
	for {
		out, err := s.Kubectl(ctx, args...)
		last = strings.TrimSpace(string(out))
		if err == nil && last == want {
			return
		}
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kubectl %s: want %q within %v, last: %s", strings.Join(args, " "), want, d, last)
		case <-time.After(time.Second):
		}
	}
}

// nodeKubeconfig returns a kubeconfig for kubelet of node name with a client
// certificate (CN system:node:<name>, O system:nodes) signed by the CA.
func nodeKubeconfig(caPEM, caKeyPEM []byte, name, server string) ([]byte, error) {
	cb, _ := pem.Decode(caPEM)
	if cb == nil {
		return nil, errors.New("ca.crt: no PEM block")
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca.crt: %w", err)
	}
	kb, _ := pem.Decode(caKeyPEM)
	if kb == nil {
		return nil, errors.New("ca.key: no PEM block")
	}
	var caKey crypto.Signer
	if k, err := x509.ParsePKCS8PrivateKey(kb.Bytes); err == nil {
		caKey, _ = k.(crypto.Signer)
	} else if k, err := x509.ParseECPrivateKey(kb.Bytes); err == nil {
		caKey = k
	} else if k, err := x509.ParsePKCS1PrivateKey(kb.Bytes); err == nil {
		caKey = k
	}
	if caKey == nil {
		return nil, fmt.Errorf("ca.key: not a PKCS#8, EC or PKCS#1 private key (%s)", kb.Type)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign the node certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	enc := func(typ string, b []byte) string {
		return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}))
	}
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: lab
  context:
    cluster: lab
    user: %s
current-context: lab
`, server, base64.StdEncoding.EncodeToString(caPEM), "system:node:"+name,
		enc("CERTIFICATE", der), enc("EC PRIVATE KEY", keyDER), "system:node:"+name)), nil
}

// TestWorkerKubeadmJoin: stock kubeadm join, with the command `masterd token
// create --print-join-command` prints on a master, brings a worker up
// through the VIP: first with a wrong CA hash (kubeadm refuses the cluster,
// no Node appears), then as printed (Node Ready, kubelet.conf names the VIP).
//
// The objects kubeadm join reads are published by the daemon (the
// controller-manager role's holder runs agent.runNodes); the test only waits
// for cluster-info to name the VIP and carry the token's signature.
func TestWorkerKubeadmJoin(t *testing.T) {
	o := options(t)
	if o.KubeBinDir == "" {
		t.Skip("needs the kube binaries: run `make kube` (or set KUBE_BIN_DIR)")
	}
	for _, b := range []string{"kubelet", "kubeadm"} {
		if _, err := os.Stat(filepath.Join(o.KubeBinDir, b)); err != nil {
			t.Skipf("no %s in %s: run `make kube` (integration/kube/build.sh)", b, o.KubeBinDir)
		}
	}
	ctrd := lab.FindContainerdBinDir()
	if ctrd == "" {
		t.Skip("no containerd v2 binaries: run integration/containerd/build.sh (or set CONTAINERD_BIN_DIR)")
	}
	o.Masters = 1
	o.Prefix = fmt.Sprintf("scjn%d", os.Getpid()%1000000)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	set := images.DefaultSet()
	set.KubeProxy, set.CoreDNS = "", ""
	archives, err := set.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wrap := filepath.Join(set.CacheDir, "bin", "runcwrap")
	if err := images.GoBinary(ctx, "", "github.com/masterd/masterd/integration/containerd/runcwrap", wrap); err != nil {
		t.Fatal(err)
	}
	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	s := &scenarioLab{Lab: l, t: t}
	s.dumpOnFailure(t)
	s.waitReady(t, ctx, 5*time.Minute)
	m := l.Masters()[0]
	out, err := m.Exec(ctx, "masterd", "token", "create", "--print-join-command")
	if err != nil {
		if strings.Contains(string(out), "unknown command") {
			t.Skipf("the installed package has no `masterd token`: build one from this tree (make package, or MASTERD_DEB=...): %v", err)
		}
		t.Fatal(err)
	}
	join := strings.Fields(strings.TrimSpace(string(out)))
	if len(join) < 7 || join[0] != "kubeadm" || join[1] != "join" || join[2] != netip.AddrPortFrom(l.VIP(), 6443).String() {
		t.Fatalf("join command %q: want kubeadm join %v:6443 --token ... --discovery-token-ca-cert-hash sha256:...", out, l.VIP())
	}
	t.Logf("join command: kubeadm join %s --token <redacted> ...", join[2])
	var token string
	for i := 3; i+1 < len(join); i++ {
		if join[i] == "--token" {
			token = join[i+1]
		}
	}
	s.waitClusterInfo(t, ctx, 3*time.Minute, token)

	w, err := l.AddWorker(ctx, lab.WorkerOptions{
		Index:            1,
		ContainerdBinDir: ctrd,
		RuncWrap:         wrap,
		Images:           archives,
		PauseImage:       set.Pause,
		PodCIDR:          netip.MustParsePrefix("10.244.1.0/24"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("worker close: %v", err)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			t.Logf("--- %s: journalctl -u kubelet\n%s", w.Name, w.Journal(c, "kubelet", 80))
		}
	})

	// A wrong CA hash: kubeadm refuses the cluster-info it fetched.
	bad := append([]string(nil), join[2:]...)
	for i := range bad {
		if strings.HasPrefix(bad[i], "sha256:") {
			bad[i] = "sha256:" + strings.Repeat("0", 64)
		}
	}
	bctx, bcancel := context.WithTimeout(ctx, 3*time.Minute)
	out, err = w.KubeadmJoin(bctx, bad...)
	bcancel()
	if err == nil || !strings.Contains(string(out), "none of the public keys") {
		t.Fatalf("kubeadm join with a wrong CA hash: %v, want kubeadm's \"none of the public keys ... are pinned\":\n%s", err, out)
	}
	if out, err := l.Kubectl(ctx, "get", "node", w.Name, "-o", "name", "--ignore-not-found"); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("after the refused join: node %q (%v), want none", out, err)
	}

	start := time.Now()
	if out, err := w.KubeadmJoin(ctx, join[2:]...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s.waitKubectlOutput(t, ctx, 3*time.Minute, "True",
		"get", "node", w.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	figure(t, "kubeadm join to Node %s Ready through the VIP: %.1fs", w.Name, time.Since(start).Seconds())
	kc, err := os.ReadFile(w.Host().Path("/etc/kubernetes/kubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kc), "https://"+netip.AddrPortFrom(l.VIP(), 6443).String()) {
		t.Errorf("kubelet.conf written by kubeadm join does not name the VIP:\n%s", kc)
	}

	// A Deployment's pods run on the joined node and answer by pod IP.
	s.waitKubectlOutput(t, ctx, 2*time.Minute, "default", "get", "serviceaccount", "default", "-o", "jsonpath={.metadata.name}")
	deploy := filepath.Join(l.Dir(), "echo-deployment.yaml")
	if err := os.WriteFile(deploy, []byte(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo}
    spec:
      containers:
      - name: echo
        image: %s
        imagePullPolicy: Never
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet: {path: /ready, port: 8080}
          periodSeconds: 1
`, set.Echo)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Kubectl(ctx, "apply", "-f", deploy); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	start = time.Now()
	s.waitKubectlOutput(t, ctx, 3*time.Minute, "2", "get", "deployment", "echo", "-o", "jsonpath={.status.availableReplicas}")
	figure(t, "Deployment echo (2 replicas) created to available on %s: %.1fs", w.Name, time.Since(start).Seconds())
	out, err = l.Kubectl(ctx, "get", "pods", "-l", "app=echo", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("echo pods: %q, want 2", out)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 3 || f[1] != w.Name {
			t.Fatalf("echo pod %q: want name, node %s and pod IP", line, w.Name)
		}
		if got := getFromWorker(t, w, f[2], "/x"); got != f[0]+" /x" {
			t.Errorf("pod %s at %s answered %q, want %q", f[0], f[2], got, f[0]+" /x")
		}
	}
}

// getFromWorker GETs http://ip:8080/path from the worker's network namespace
// and returns the trimmed body of a 200 answer.
func getFromWorker(t *testing.T, w *lab.Worker, ip, path string) string {
	t.Helper()
	addr, err := netip.ParseAddr(ip)
	if err != nil || !w.PodCIDR.Contains(addr) {
		t.Fatalf("pod IP %q (%v): want an address of %v", ip, err, w.PodCIDR)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return w.Host().DialContext(ctx, network, a)
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + netip.AddrPortFrom(addr, 8080).String() + path)
	if err != nil {
		t.Fatalf("GET %s%s from %s's namespace: %v", addr, path, w.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: %d %q (%v), want 200", addr, path, resp.StatusCode, body, err)
	}
	return strings.TrimSpace(string(body))
}

// waitClusterInfo waits until the masters have published the cluster-info
// ConfigMap in kube-public with the VIP as server and the controller-manager
// has signed it for the token (id.secret), which is what kubeadm join
// discovers the cluster with.
func (s *scenarioLab) waitClusterInfo(t *testing.T, ctx context.Context, d time.Duration, token string) {
	t.Helper()
	id, _, ok := strings.Cut(token, ".")
	if !ok {
		t.Fatalf("token %q: want id.secret", token)
	}
	server := "https://" + netip.AddrPortFrom(s.VIP(), 6443).String()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last string
	for {
		out, err := s.Kubectl(ctx, "get", "configmap", "-n", "kube-public", "cluster-info", "-o", "json")
		var cm struct {
			Data map[string]string `json:"data"`
		}
		switch {
		case err != nil:
			last = fmt.Sprintf("%v: %s", err, bytes.TrimSpace(out))
		case json.Unmarshal(out, &cm) != nil:
			last = fmt.Sprintf("not JSON: %q", out)
		case !strings.Contains(cm.Data["kubeconfig"], "server: "+server):
			last = fmt.Sprintf("its kubeconfig does not name %s:\n%s", server, cm.Data["kubeconfig"])
		case cm.Data["jws-kubeconfig-"+id] == "":
			last = "no signature jws-kubeconfig-" + id + " for the token yet (the controller-manager's bootstrapsigner adds it)"
		default:
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kube-public/cluster-info not published by the masters within %v (the controller-manager role's holder runs agent.runNodes): %s", d, last)
		case <-time.After(time.Second):
		}
	}
}
