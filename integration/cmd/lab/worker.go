package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/masterd/masterd/integration/images"
	"github.com/masterd/masterd/integration/lab"
)

// demoWorker ends the demo as the HA guides end: a worker joins through the
// VIP with the join command masterd prints (stock kubeadm join), a
// Deployment's pods run on it, and its Service answers through kube-proxy.
// Without the worker's binaries (make kube containerd) it says what is
// missing and does nothing.
func demoWorker(ctx context.Context, l *lab.Lab, kubeBin string) error {
	for _, b := range []string{"kubelet", "kubeadm", "kube-proxy"} {
		if _, err := os.Stat(filepath.Join(kubeBin, b)); err != nil {
			fmt.Printf("== worker: skipped, no %s in %s (make kube)\n", b, kubeBin)
			return nil
		}
	}
	ctrd := lab.FindContainerdBinDir()
	set := images.DefaultSet()
	set.KubeBinDir = kubeBin
	set.CoreDNSBinary = images.FindCoreDNS()
	if ctrd == "" || set.CoreDNSBinary == "" {
		fmt.Println("== worker: skipped, no containerd v2 or coredns build (make containerd)")
		return nil
	}
	fmt.Println("== worker: join a node through the VIP")
	start := time.Now()
	archives, wrap, err := set.BuildForWorker(ctx)
	if err != nil {
		return fmt.Errorf("worker images: %w", err)
	}
	out, err := l.Masters()[0].Exec(ctx, "masterd", "token", "create", "--print-join-command")
	if err != nil {
		return fmt.Errorf("masterd token create: %v: %s", err, out)
	}
	join := strings.Fields(strings.TrimSpace(string(out)))
	if len(join) < 7 || join[0] != "kubeadm" || join[1] != "join" {
		return fmt.Errorf("masterd token create printed %q, want a kubeadm join command", out)
	}
	fmt.Printf("   on %s: masterd token create --print-join-command\n   %s\n", l.Masters()[0].Name, strings.TrimSpace(string(out)))
	fmt.Println("   (paste that line on your own worker, with kubeadm, kubelet and a container runtime installed)")
	var token string
	for i := 2; i+1 < len(join); i++ {
		if join[i] == "--token" {
			token = join[i+1]
		}
	}
	id, _, _ := strings.Cut(token, ".")
	if err := waitFor(ctx, 3*time.Minute, "cluster-info signed for the token", func() (bool, string) {
		out, err := l.Kubectl(ctx, "get", "configmap", "-n", "kube-public", "cluster-info", "-o", "jsonpath={.data.jws-kubeconfig-"+id+"}")
		return err == nil && len(strings.TrimSpace(string(out))) > 0, string(out)
	}); err != nil {
		return err
	}
	w, err := l.AddWorker(ctx, lab.WorkerOptions{
		Index: 1, ContainerdBinDir: ctrd, RuncWrap: wrap, Images: archives,
		PauseImage: set.Pause, PodCIDR: netip.MustParsePrefix("10.244.1.0/24"),
	})
	if err != nil {
		return err
	}
	if out, err := w.KubeadmJoin(ctx, join[2:]...); err != nil {
		return fmt.Errorf("kubeadm join on %s: %v\n%s", w.Name, err, out)
	}
	if err := waitFor(ctx, 3*time.Minute, "node "+w.Name+" Ready", func() (bool, string) {
		out, _ := l.Kubectl(ctx, "get", "node", w.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return strings.TrimSpace(string(out)) == "True", string(out)
	}); err != nil {
		return err
	}
	fmt.Printf("   node %s Ready %.1fs after the join started\n", w.Name, time.Since(start).Seconds())
	manifest := filepath.Join(os.TempDir(), "masterd-demo-echo.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - {name: echo, image: %s, imagePullPolicy: Never, ports: [{containerPort: 8080}],
         readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
`, set.Echo)), 0o644); err != nil {
		return err
	}
	defer os.Remove(manifest)
	if err := waitFor(ctx, 2*time.Minute, "the default ServiceAccount and the echo Deployment applied", func() (bool, string) {
		out, err := l.Kubectl(ctx, "apply", "-f", manifest)
		return err == nil, string(out)
	}); err != nil {
		return err
	}
	clusterIP := ""
	var body string
	if err := waitFor(ctx, 3*time.Minute, "Service echo answering through kube-proxy", func() (bool, string) {
		out, err := l.Kubectl(ctx, "get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}")
		if err != nil {
			return false, string(out)
		}
		clusterIP = strings.TrimSpace(string(out))
		body, err = getFrom(ctx, w, "http://"+clusterIP+"/demo")
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	}); err != nil {
		return err
	}
	fmt.Printf("   pods of Deployment echo run on %s; from the worker, Service echo (%s) answers through kube-proxy: %s\n",
		w.Name, clusterIP, strings.TrimSpace(body))
	fmt.Printf("   kubectl get pods -o wide: %s get pods -o wide\n\n", l.KubectlCommand())
	return nil
}

// getFrom GETs url from the worker's network namespace.
func getFrom(ctx context.Context, w *lab.Worker, url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return w.Host().DialContext(ctx, network, a)
		},
	}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}

// waitFor polls ok every second until it holds, for at most d; the error
// names what was awaited and the last thing seen.
func waitFor(ctx context.Context, d time.Duration, what string, ok func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		done, last := ok()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %s (last: %s)", what, d, strings.TrimSpace(last))
		case <-time.After(time.Second):
		}
	}
}
