package scenarios

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/bootstrap"
	"github.com/masterd/masterd/integration/images"
	"github.com/masterd/masterd/integration/lab"
)

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

// TestWorkerJoinsAndSurvivesVIPHolderCrash: everything a worker does, in one
// lab of three masters and a worker host (real systemd, containerd v2 built
// from the module proxy, Debian's runc and CNI plugins, kubelet v1.37), in
// order:
//   - the images a worker needs are imported without a registry;
//   - bad input: stock kubeadm join with a wrong CA hash, with an expired
//     token and with a token of another cluster fails with kubeadm's usual
//     message and creates no Node (badTokens: and no kubelet.conf);
//   - kubeadm join as `masterd token create --print-join-command` printed it
//     on a master: the Node turns Ready through the VIP, kubelet.conf names
//     the VIP;
//   - a Deployment's pods run on the worker and answer by pod IP; the
//     daemon's addons (kube-proxy, CoreDNS) roll out; the programs of the
//     kube-proxy and CoreDNS images run; from a pod the Service name
//     resolves through CoreDNS to its ClusterIP, which answers through
//     kube-proxy;
//   - the VIP holder crashes (link cut, PID 1 killed) while the worker runs
//     (crashVIPHolder).
//
// The objects kubeadm join reads are published by the daemon (the
// controller-manager role's holder runs agent.runNodes); the test only waits
// for cluster-info to name the VIP and carry the token's signature. One lab
// for all of it: three labs (one per step) took about 7.5 minutes of make test.
func TestWorkerJoinsAndSurvivesVIPHolderCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	s, w, set, join := joinLab(t, ctx, 3, "scwk")

	out, err := w.Exec(ctx, "ctr", "-n", "k8s.io", "images", "ls", "-q")
	for _, img := range []string{set.Pause, set.Echo, set.KubeProxy, set.CoreDNS} {
		if err != nil || !strings.Contains(string(out), img) {
			t.Fatalf("images in containerd after import: %q (%v), want %s among them", out, err, img)
		}
	}

	// A wrong CA hash: kubeadm refuses the cluster-info it fetched.
	bad := append([]string(nil), join...)
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
	if out, err := s.Kubectl(ctx, "get", "node", w.Name, "-o", "name", "--ignore-not-found"); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("after the refused join: node %q (%v), want none", out, err)
	}
	badTokens(t, ctx, s, w, join)

	joinWorker(t, ctx, s, w, join)
	deployEcho(t, ctx, s, w, set)
	imageTools(t, ctx, s, set)
	clusterIP := serviceFromPod(t, ctx, s, set, "echo-client", nil)
	crashVIPHolder(t, ctx, s, w, set, clusterIP)
}

// imageTools runs a pod whose containers run the programs of the addon
// images: kube-proxy and the programs its proxiers call (dynamically linked,
// their libraries copied into the image), and CoreDNS. Each container exits
// 0 or the pod fails.
func imageTools(t *testing.T, ctx context.Context, s *scenarioLab, set images.Set) {
	t.Helper()
	tools := []string{
		"kube-proxy", set.KubeProxy, "/usr/local/bin/kube-proxy", "--version",
		"nft", set.KubeProxy, "/usr/sbin/nft", "--version",
		"iptables", set.KubeProxy, "/usr/sbin/iptables", "--version",
		"conntrack", set.KubeProxy, "/usr/sbin/conntrack", "--version",
		"coredns", set.CoreDNS, "/coredns", "-version",
	}
	var pod strings.Builder
	pod.WriteString("apiVersion: v1\nkind: Pod\nmetadata:\n  name: image-tools\n  namespace: default\nspec:\n  restartPolicy: Never\n  containers:\n")
	for i := 0; i < len(tools); i += 4 {
		fmt.Fprintf(&pod, "  - name: %s\n    image: %s\n    imagePullPolicy: Never\n    command: [%q, %q]\n", tools[i], tools[i+1], tools[i+2], tools[i+3])
	}
	manifest := s.writeManifest(t, "image-tools.yaml", pod.String())
	if out, err := s.Kubectl(ctx, "apply", "-f", manifest); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	phase := s.waitPodDone(t, ctx, 3*time.Minute, "image-tools")
	if phase != "Succeeded" {
		out, _ := s.Kubectl(ctx, "get", "pod", "image-tools", "-o", "jsonpath={range .status.containerStatuses[*]}{.name}={.state}{\"\\n\"}{end}")
		t.Fatalf("pod image-tools: %s, want Succeeded (every image's programs run):\n%s", phase, out)
	}
	// kubectl logs goes apiserver to kubelet (its self-signed serving
	// certificate, not verified: kube-apiserver has no
	// --kubelet-certificate-authority).
	out, err := s.Kubectl(ctx, "logs", "image-tools", "-c", "coredns")
	if err != nil || !strings.Contains(string(out), "CoreDNS-") {
		t.Errorf("kubectl logs image-tools -c coredns: %q (%v), want CoreDNS' version line", out, err)
	}
}

// crashVIPHolder: the VIP holder crashes (link cut, PID 1 killed) while the
// worker runs: the Node stays Ready, kubelet keeps renewing its Lease
// through the VIP's new holder, kube-proxy's watch reconnects, the Service
// keeps answering and its name resolves through CoreDNS. Figures: the
// longest gap between renewTimes of the node Lease, kube-proxy's first
// successful request to the API after the crash (its client metrics), how
// long a Service created after the crash took to answer from the worker, the
// longest outage of the Service and of the name seen by probes every 100 ms
// from the worker, and the first pod create through the VIP after the crash.
func crashVIPHolder(t *testing.T, ctx context.Context, s *scenarioLab, w *lab.Worker, set images.Set, clusterIP string) {
	t.Helper()
	readySince := nodeReadySince(t, ctx, s, w.Name)

	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	svc := probeLoop(pctx, func(ctx context.Context) error { return getService(ctx, w, clusterIP) })
	dns := probeLoop(pctx, func(ctx context.Context) error { return resolveService(ctx, w, clusterIP) })
	lease := pollNodeLease(pctx, s, w.Name)
	kp := watchKubeProxy(pctx, w)
	time.Sleep(15 * time.Second) // a renewal or more before the crash

	victim := s.vipHolder(t)
	t.Logf("etcd leader before the crash: %s (the VIP holder, about to crash: %s)", s.etcdLeaders(ctx), victim.Name)
	t0 := time.Now()
	if err := s.Crash(ctx, victim); err != nil {
		t.Fatal(err)
	}
	holder, took := s.waitVIPOff(t, victim, t0, true, 2*time.Minute)
	t.Logf("crashed %s (the VIP holder); the VIP is on %s after %.1fs; etcd leader now: %s", victim.Name, holder, took.Seconds(), s.etcdLeaders(ctx))

	// A Service created after the crash answers from the worker once
	// kube-proxy there got it through a watch that survived or reconnected.
	after := s.writeManifest(t, "echo-after.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: echo-after\n  namespace: default\nspec:\n  selector: {app: echo}\n  ports:\n  - port: 80\n    targetPort: 8080\n")
	created := s.applyRetried(t, ctx, after, func(err error) { s.etcdConnections(t, ctx, victim) })
	out, err := s.Kubectl(ctx, "get", "service", "echo-after", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	afterIP := strings.TrimSpace(string(out))
	var answered time.Time
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c, cancel := context.WithTimeout(ctx, time.Second)
		err := getService(c, w, afterIP)
		cancel()
		if err == nil {
			answered = time.Now()
			break
		}
	}
	if answered.IsZero() {
		t.Errorf("service echo-after (%s), created %.1fs after the crash: no answer from %s within 2 minutes (kube-proxy's watch did not deliver it)", afterIP, created.Sub(t0).Seconds(), w.Name)
	} else {
		figure(t, "VIP holder crash seen by worker %s: Service created %.1fs after the crash answered through kube-proxy %.1fs after its create", w.Name, created.Sub(t0).Seconds(), answered.Sub(created).Seconds())
	}

	// Past kube-controller-manager's node-monitor-grace-period (40 s): a
	// Node whose Lease stopped renewing would have turned Unknown by then.
	time.Sleep(time.Until(t0.Add(60 * time.Second)))
	pcancel()
	svcOut, svcFails, svcOK := svc.wait()
	dnsOut, dnsFails, dnsOK := dns.wait()
	gap, renewals, notReady := lease.wait()
	firstOK, gets, errs := kp.after(t0)

	figure(t, "VIP holder crash seen by worker %s: longest gap between node Lease renewTimes %.1fs (%d renewals seen)", w.Name, gap.Seconds(), renewals)
	figure(t, "VIP holder crash seen by worker %s: Service %s outage %.1fs (%d failed probes of %d, every 100 ms), name through CoreDNS outage %.1fs (%d failed of %d)",
		w.Name, clusterIP, svcOut.Seconds(), svcFails, svcFails+svcOK, dnsOut.Seconds(), dnsFails, dnsFails+dnsOK)
	if firstOK > 0 {
		figure(t, "VIP holder crash seen by worker %s: kube-proxy's first successful GET (list or watch) after the crash at %.1fs (%d successful GETs and %d failed requests in the 60 s after it, rest_client_requests_total)", w.Name, firstOK.Seconds(), gets, errs)
	} else {
		t.Errorf("kube-proxy on %s: no successful GET (list or watch) in the 60 s after the crash (rest_client_requests_total; %d failed requests): its watches did not reconnect; last read: %v", w.Name, errs, kp.lastErr)
	}
	if notReady != "" {
		t.Errorf("node %s was not Ready during the failover: %s", w.Name, notReady)
	}
	if got := nodeReadySince(t, ctx, s, w.Name); got != readySince {
		t.Errorf("node %s: Ready since %s before the crash, %s after: it left Ready in between", w.Name, readySince, got)
	}
	if renewals < 2 {
		t.Errorf("node Lease: %d renewals seen in the 75 s observed, want at least 2 (kubelet renews every 10 s)", renewals)
	}
	if svcOK == 0 || svc.lastErr() != nil || dnsOK == 0 || dns.lastErr() != nil {
		t.Errorf("after the failover: Service probe %v, name probe %v; want both answering", svc.lastErr(), dns.lastErr())
	}
	if out, err := s.Kubectl(ctx, "get", "--raw", "/readyz"); err != nil {
		t.Errorf("apiserver through the VIP after the crash: %v: %s", err, out)
	}
	t.Logf("the surviving apiservers' etcd connections before the first pod create after the crash:")
	s.etcdConnections(t, ctx, victim)
	start := time.Now()
	if got := serviceFromPod(t, ctx, s, set, "echo-client-after", func(error) { s.etcdConnections(t, ctx, victim) }); got != clusterIP {
		t.Errorf("service echo: ClusterIP %s after the failover, %s before", got, clusterIP)
	}
	figure(t, "VIP holder crash: first pod create through the VIP, %.0fs after the crash, to the client pod's answer: %.1fs", start.Sub(t0).Seconds(), time.Since(start).Seconds())
}

// applyRetried runs kubectl apply -f manifest until it succeeds (2 minutes
// at most), logging each failure and calling diag with it, and returns when
// it succeeded.
func (s *scenarioLab) applyRetried(t *testing.T, ctx context.Context, manifest string, diag func(error)) time.Time {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		start := time.Now()
		out, err := s.Kubectl(ctx, "apply", "-f", manifest)
		if err == nil {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: %s", err, out)
		}
		t.Logf("kubectl apply -f %s failed after %.1fs (retried): %v", filepath.Base(manifest), time.Since(start).Seconds(), err)
		if diag != nil {
			diag(err)
		}
		time.Sleep(2 * time.Second)
	}
}

// etcdLeaders names the masters whose embedded etcd member says it leads
// (from `masterd status --json`; the crashed ones answer nothing).
func (s *scenarioLab) etcdLeaders(ctx context.Context) string {
	var out []string
	for _, m := range s.Masters() {
		select {
		case <-m.Host().Exited():
			continue
		default:
		}
		st, err := m.Status(ctx)
		if err != nil {
			continue
		}
		var e struct{ Leader bool }
		if json.Unmarshal(st.Sections["etcd"], &e) == nil && e.Leader {
			out = append(out, m.Name)
		}
	}
	if len(out) == 0 {
		return "none seen"
	}
	return strings.Join(out, ", ")
}

// etcdConnections logs, on every master but victim, the TCP connections to
// victim in any state with their timers and send queues (ss -tnopi): a
// kube-apiserver's etcd client keeps a connection to a crashed member's
// port 2379 until it sends on it and gives up, a balancer's dial to its
// port 6443 waits in SYN-SENT; and the balancer section of the VIP
// holder's status.
func (s *scenarioLab) etcdConnections(t *testing.T, ctx context.Context, victim *lab.Master) {
	t.Helper()
	for _, m := range s.Masters() {
		if m == victim {
			continue
		}
		out, err := m.Exec(ctx, "ss", "-tnopi", "dst", victim.Addr.String())
		t.Logf("--- %s: ss -tnopi dst %s (%v)\n%s", m.Name, victim.Addr, err, out)
		if st, err := m.Status(ctx); err == nil {
			for name, sec := range st.Sections {
				if strings.HasPrefix(name, "lb") || strings.HasPrefix(name, "balancer") {
					t.Logf("--- %s: status section %s: %s", m.Name, name, sec)
				}
			}
		}
	}
}

// kubeProxyWatch samples kube-proxy's client metrics on the worker
// (127.0.0.1:10249/metrics in the worker's network namespace: kube-proxy
// runs with hostNetwork) every 100 ms.
type kubeProxyWatch struct {
	done    chan struct{}
	samples []kubeProxySample
	lastErr error
}

// kubeProxySample is one read of rest_client_requests_total: the GETs (lists
// and watches) answered 200, and the requests that failed (no answer or
// another code).
type kubeProxySample struct {
	at         time.Time
	gets, errs int
}

func watchKubeProxy(ctx context.Context, w *lab.Worker) *kubeProxyWatch {
	p := &kubeProxyWatch{done: make(chan struct{})}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return w.Host().DialContext(ctx, network, a)
		},
	}}
	go func() {
		defer close(p.done)
		defer client.CloseIdleConnections()
		for ctx.Err() == nil {
			c, cancel := context.WithTimeout(ctx, time.Second)
			smp, err := readKubeProxyMetrics(c, client)
			cancel()
			if err == nil {
				p.samples = append(p.samples, smp)
			} else if ctx.Err() == nil {
				p.lastErr = err
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return p
}

func readKubeProxyMetrics(ctx context.Context, client *http.Client) (kubeProxySample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:10249/metrics", nil)
	if err != nil {
		return kubeProxySample{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return kubeProxySample{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return kubeProxySample{}, fmt.Errorf("kube-proxy metrics: %d (%v)", resp.StatusCode, err)
	}
	smp := kubeProxySample{at: time.Now()}
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		found = true
		f := strings.Fields(line)
		var v float64
		if _, err := fmt.Sscan(f[len(f)-1], &v); err != nil {
			return kubeProxySample{}, fmt.Errorf("kube-proxy metrics: %q: %w", line, err)
		}
		switch {
		case strings.Contains(line, `code="200"`) && strings.Contains(line, `method="GET"`):
			smp.gets += int(v)
		case !strings.Contains(line, `code="2`):
			smp.errs += int(v)
		}
	}
	if !found {
		return kubeProxySample{}, errors.New("kube-proxy metrics: no rest_client_requests_total")
	}
	return smp, nil
}

// after returns, once sampling ended, the time from t0 to the first sample
// after t0 that counts more successful GETs than the last sample before t0
// (0 if none), and the GETs and failed requests counted from t0 to the end.
func (p *kubeProxyWatch) after(t0 time.Time) (time.Duration, int, int) {
	<-p.done
	var base *kubeProxySample
	var first time.Duration
	for i := range p.samples {
		smp := &p.samples[i]
		if !smp.at.After(t0) {
			base = smp
			continue
		}
		if base != nil && first == 0 && smp.gets > base.gets {
			first = smp.at.Sub(t0)
		}
	}
	if base == nil || len(p.samples) == 0 {
		return 0, 0, 0
	}
	last := p.samples[len(p.samples)-1]
	return first, last.gets - base.gets, last.errs - base.errs
}

// badTokens: kubeadm join with an expired token (made by `masterd token
// create --ttl 1s`, deleted by the controller-manager's tokencleaner, its
// signature dropped from cluster-info) and with a token of another cluster
// fails discovery with kubeadm's usual message, and creates no Node and no
// kubelet.conf. kubeadm's discovery is bounded to 15 s (a JoinConfiguration).
func badTokens(t *testing.T, ctx context.Context, s *scenarioLab, w *lab.Worker, join []string) {
	t.Helper()
	hash := flagValue(join, "--discovery-token-ca-cert-hash")
	if hash == "" {
		t.Fatalf("join arguments %q: no --discovery-token-ca-cert-hash", join)
	}
	out, err := s.Masters()[0].Exec(ctx, "masterd", "token", "create", "--ttl", "1s", "--description", "expires at once")
	if err != nil {
		t.Fatalf("masterd token create --ttl 1s: %v: %s", err, out)
	}
	expired, err := bootstrap.ParseToken(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("masterd token create printed %q: %v", out, err)
	}
	s.waitKubectlOutput(t, ctx, 2*time.Minute, "", "get", "secret", "-n", "kube-system", "bootstrap-token-"+expired.ID, "-o", "name", "--ignore-not-found")
	s.waitKubectlOutput(t, ctx, 2*time.Minute, "", "get", "configmap", "-n", "kube-public", "cluster-info", "-o", "jsonpath={.data.jws-kubeconfig-"+expired.ID+"}")
	other, err := bootstrap.GenerateToken(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		tok  bootstrap.Token
	}{{"an expired token", expired}, {"a token of another cluster", other}} {
		bctx, bcancel := context.WithTimeout(ctx, 2*time.Minute)
		out, err := w.KubeadmJoinBounded(bctx, join[0], c.tok.String(), hash, 15*time.Second)
		bcancel()
		if err == nil || !strings.Contains(string(out), `could not find a JWS signature in the cluster-info ConfigMap for token ID "`+c.tok.ID+`"`) {
			t.Fatalf("kubeadm join with %s: %v, want kubeadm's \"could not find a JWS signature in the cluster-info ConfigMap for token ID %q\":\n%s", c.name, err, c.tok.ID, out)
		}
		if out, err := s.Kubectl(ctx, "get", "node", w.Name, "-o", "name", "--ignore-not-found"); err != nil || strings.TrimSpace(string(out)) != "" {
			t.Fatalf("after kubeadm join with %s: node %q (%v), want none", c.name, out, err)
		}
		if _, err := os.Stat(w.Host().Path("/etc/kubernetes/kubelet.conf")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after kubeadm join with %s: /etc/kubernetes/kubelet.conf on %s: %v, want none", c.name, w.Name, err)
		}
		t.Logf("kubeadm join with %s refused: could not find a JWS signature ... for token ID %q", c.name, c.tok.ID)
	}
}

// flagValue returns the argument after name in args ("" if none).
func flagValue(args []string, name string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name {
			return args[i+1]
		}
	}
	return ""
}

// joinLab boots a lab of masters with kube, builds and imports the images a
// worker needs (pause, echo, kube-proxy, CoreDNS), adds worker 1 and returns
// the arguments of the join command `masterd token create
// --print-join-command` printed (after "kubeadm join"), once the masters have
// published cluster-info for its token.
func joinLab(t *testing.T, ctx context.Context, masters int, prefix string) (*scenarioLab, *lab.Worker, images.Set, []string) {
	t.Helper()
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
		t.Skip("no containerd v2 binaries: run `make containerd` (or set CONTAINERD_BIN_DIR)")
	}
	set := images.DefaultSet()
	set.KubeBinDir = o.KubeBinDir
	set.CoreDNSBinary = images.FindCoreDNS()
	if set.CoreDNSBinary == "" {
		t.Skip("no cached coredns binary: run `make containerd` (integration/images/coredns.sh)")
	}
	o.Masters = masters
	o.Prefix = fmt.Sprintf("%s%d", prefix, os.Getpid()%1000000)
	archives, wrap, err := set.BuildForWorker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := upLab(t, ctx, o, 5*time.Minute)
	l := s.Lab
	out, err := l.Masters()[0].Exec(ctx, "masterd", "token", "create", "--print-join-command")
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
			out, _ := l.Kubectl(c, "get", "pods", "-A", "-o", "wide")
			t.Logf("--- kubectl get pods -A\n%s", out)
		}
	})
	return s, w, set, join[2:]
}

// joinWorker runs kubeadm join with args on w and waits for its Node to be
// Ready, with a kubelet.conf that names the VIP.
func joinWorker(t *testing.T, ctx context.Context, s *scenarioLab, w *lab.Worker, args []string) {
	t.Helper()
	start := time.Now()
	if out, err := w.KubeadmJoin(ctx, args...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s.waitKubectlOutput(t, ctx, 3*time.Minute, "True",
		"get", "node", w.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	figure(t, "kubeadm join to Node %s Ready through the VIP: %.1fs", w.Name, time.Since(start).Seconds())
	kc, err := os.ReadFile(w.Host().Path("/etc/kubernetes/kubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kc), "https://"+netip.AddrPortFrom(s.VIP(), 6443).String()) {
		t.Errorf("kubelet.conf written by kubeadm join does not name the VIP:\n%s", kc)
	}
}

// deployEcho runs the Deployment echo (2 replicas) and its Service echo
// (port 80 to 8080), checks both pods run on w and answer by pod IP, and
// waits for the daemon's addons (kube-proxy, CoreDNS) to be rolled out.
func deployEcho(t *testing.T, ctx context.Context, s *scenarioLab, w *lab.Worker, set images.Set) {
	t.Helper()
	s.waitKubectlOutput(t, ctx, 2*time.Minute, "default", "get", "serviceaccount", "default", "-o", "jsonpath={.metadata.name}")
	deploy := filepath.Join(s.Dir(), "echo-deployment.yaml")
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
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: default
spec:
  selector: {app: echo}
  ports:
  - port: 80
    targetPort: 8080
`, set.Echo)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := s.Kubectl(ctx, "apply", "-f", deploy); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	start := time.Now()
	s.waitKubectlOutput(t, ctx, 3*time.Minute, "2", "get", "deployment", "echo", "-o", "jsonpath={.status.availableReplicas}")
	figure(t, "Deployment echo (2 replicas) created to available on %s: %.1fs", w.Name, time.Since(start).Seconds())
	out, err := s.Kubectl(ctx, "get", "pods", "-l", "app=echo", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{"\n"}{end}`)
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
	for _, a := range []string{"daemonset/kube-proxy", "deployment/coredns"} {
		if out, err := s.Kubectl(ctx, "rollout", "status", "-n", "kube-system", a, "--timeout=3m"); err != nil {
			t.Fatalf("the daemon's addon %s did not roll out on %s: %v: %s", a, w.Name, err, out)
		}
	}
}

// serviceFromPod runs a pod of the echo image as a client (`echo get`): the
// name echo.default.svc.cluster.local resolves through CoreDNS (the pod's
// resolv.conf names kube-dns' ClusterIP) to the Service's ClusterIP, and a
// GET there reaches an echo pod through kube-proxy. It returns the ClusterIP.
// diag (nil: none) is called on each failed create of the pod.
func serviceFromPod(t *testing.T, ctx context.Context, s *scenarioLab, set images.Set, name string, diag func(error)) string {
	t.Helper()
	out, err := s.Kubectl(ctx, "get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	clusterIP := strings.TrimSpace(string(out))
	if _, err := netip.ParseAddr(clusterIP); err != nil {
		t.Fatalf("service echo: ClusterIP %q: %v", clusterIP, err)
	}
	client := filepath.Join(s.Dir(), name+".yaml")
	if err := os.WriteFile(client, []byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
  restartPolicy: Never
  containers:
  - name: client
    image: %s
    imagePullPolicy: Never
    command: ["/echo", "get", "http://echo.default.svc.cluster.local/svc"]
`, name, set.Echo)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Retried (2 min at most), each failure logged and diagnosed: after a
	// master's crash a write through the VIP has been seen to time out.
	s.applyRetried(t, ctx, client, diag)
	phase := s.waitPodDone(t, ctx, 3*time.Minute, name)
	out, err = s.Kubectl(ctx, "get", "pod", name, "-o", "jsonpath={.status.containerStatuses[0].state.terminated.message}")
	if err != nil {
		t.Fatal(err)
	}
	msg := strings.TrimSpace(string(out))
	f := strings.Fields(msg)
	if phase != "Succeeded" || len(f) != 3 || f[0] != clusterIP || !strings.HasPrefix(f[1], "echo-") || f[2] != "/svc" {
		t.Fatalf("client pod %s: %s, %q; want Succeeded and \"%s echo-<pod> /svc\" (the name resolved by CoreDNS to the ClusterIP, answered through kube-proxy)", name, phase, msg, clusterIP)
	}
	t.Logf("from pod %s: echo.default.svc.cluster.local -> %s, answered by %s", name, f[0], f[1])
	return clusterIP
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

// nodeReadySince returns the lastTransitionTime of the node's Ready
// condition, failing unless the condition is True.
func nodeReadySince(t *testing.T, ctx context.Context, s *scenarioLab, node string) string {
	t.Helper()
	out, err := s.Kubectl(ctx, "get", "node", node, "-o",
		`jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastTransitionTime}`)
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 || f[0] != "True" {
		t.Fatalf("node %s: Ready condition %q (%v), want True and its time", node, out, err)
	}
	return f[1]
}

// prober runs a check every 100 ms and keeps the longest run of failures.
type prober struct {
	done    chan struct{}
	longest time.Duration
	fails   int
	ok      int
	last    error
}

func probeLoop(ctx context.Context, check func(context.Context) error) *prober {
	p := &prober{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		var failingSince time.Time
		for ctx.Err() == nil {
			start := time.Now()
			c, cancel := context.WithTimeout(ctx, time.Second)
			err := check(c)
			cancel()
			if ctx.Err() != nil {
				return
			}
			p.last = err
			if err != nil {
				p.fails++
				if failingSince.IsZero() {
					failingSince = start
				}
			} else {
				p.ok++
				if !failingSince.IsZero() {
					p.longest = max(p.longest, start.Sub(failingSince))
					failingSince = time.Time{}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100*time.Millisecond - time.Since(start)):
			}
		}
		if !failingSince.IsZero() {
			p.longest = max(p.longest, time.Since(failingSince))
		}
	}()
	return p
}

// wait returns the longest outage and the failed and good probes.
func (p *prober) wait() (time.Duration, int, int) {
	<-p.done
	return p.longest, p.fails, p.ok
}

// lastErr is the last probe's error (after wait).
func (p *prober) lastErr() error {
	<-p.done
	return p.last
}

// getService GETs http://clusterIP/probe from the worker's network
// namespace, through kube-proxy's rules there.
func getService(ctx context.Context, w *lab.Worker, clusterIP string) error {
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return w.Host().DialContext(ctx, network, a)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+clusterIP+"/probe", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasSuffix(strings.TrimSpace(string(body)), " /probe") {
		return fmt.Errorf("GET %s/probe: %d %q (%v)", clusterIP, resp.StatusCode, body, err)
	}
	return nil
}

// resolveService asks kube-dns' ClusterIP (10.96.0.10), from the worker's
// network namespace, for the Service's name and wants its ClusterIP.
func resolveService(ctx context.Context, w *lab.Worker, clusterIP string) error {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return w.Host().DialContext(ctx, network, "10.96.0.10:53")
	}}
	addrs, err := r.LookupHost(ctx, "echo.default.svc.cluster.local")
	if err != nil {
		return err
	}
	if len(addrs) != 1 || addrs[0] != clusterIP {
		return fmt.Errorf("echo.default.svc.cluster.local: %v, want %s", addrs, clusterIP)
	}
	return nil
}

// nodeLeasePoller reads the node's Lease in kube-node-lease every second.
type nodeLeasePoller struct {
	done     chan struct{}
	gap      time.Duration
	renewals int
	notReady string
}

func pollNodeLease(ctx context.Context, s *scenarioLab, node string) *nodeLeasePoller {
	p := &nodeLeasePoller{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		var prev time.Time
		for ctx.Err() == nil {
			out, err := s.Kubectl(ctx, "get", "lease", "-n", "kube-node-lease", node, "-o", "jsonpath={.spec.renewTime}")
			if err == nil {
				if rt, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(out))); err == nil && rt.After(prev) {
					if !prev.IsZero() {
						p.renewals++
						p.gap = max(p.gap, rt.Sub(prev))
					}
					prev = rt
				}
			}
			out, err = s.Kubectl(ctx, "get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			if st := strings.TrimSpace(string(out)); err == nil && st != "True" && p.notReady == "" {
				p.notReady = fmt.Sprintf("Ready %s at %s", st, time.Now().Format(time.TimeOnly))
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return p
}

// wait returns the longest gap between renewTimes, the renewals seen and
// the first observation of the Node not Ready ("" if none).
func (p *nodeLeasePoller) wait() (time.Duration, int, string) {
	<-p.done
	return p.gap, p.renewals, p.notReady
}
