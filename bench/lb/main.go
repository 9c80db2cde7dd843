// Command lb benchmarks masterd's built-in balancer (package lb) against
// haproxy in TCP mode, in one run, with one client, over the same three TLS
// backends and the same readiness checks (GET /readyz over TLS every 1 s,
// rise 2, fall 3, least connections).
//
// The backends stand in for kube-apiservers: Go HTTPS servers answering
// GET /readyz ("ok") and GET /api/v1/namespaces/default/configmaps (a list
// of 8 ConfigMaps, about 4 KiB of JSON). The client alternates the two.
// Two client modes:
//   - keepalive: each client holds one HTTP/1.1 connection (controllers,
//     informers);
//   - newconn: a new TCP+TLS connection per request (kubectl, scripts).
//
// Each balancer runs in its own process; its CPU seconds are read from
// /proc/<pid>/stat around every measurement. Usage:
//
//	go run ./bench/lb -out bench/results/lb.md [-duration 4s] [-modes keepalive,newconn]
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/masterd/masterd/lb"
	"github.com/prometheus/client_golang/prometheus"
)

// Addresses on loopback: three backends, one listener per balancer.
var (
	backendAddrs = []string{"127.0.0.101:16443", "127.0.0.102:16443", "127.0.0.103:16443"}
	masterdAddr  = "127.0.0.110:16443"
	haproxyAddr  = "127.0.0.111:16443"
)

func main() {
	role := flag.String("role", "", "internal: backends or lb (child processes)")
	dir := flag.String("dir", "", "internal: directory with ca.pem, cert.pem, key.pem")
	out := flag.String("out", "bench/results/lb.md", "markdown results file")
	duration := flag.Duration("duration", 4*time.Second, "measurement time per cell")
	modes := flag.String("modes", "keepalive,newconn", "client modes to run")
	conc := flag.String("clients", "1,16,64", "concurrent clients")
	direct := flag.Bool("direct", true, "also measure the client straight to one backend (no balancer) as a baseline")
	flag.Parse()

	var err error
	switch *role {
	case "backends":
		err = runBackends(*dir)
	case "lb":
		err = runMasterdLB(*dir)
	case "":
		err = orchestrate(*out, *duration, strings.Split(*modes, ","), *conc, *direct)
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/lb:", err)
		os.Exit(1)
	}
}

// ---- child: backends ----

func runBackends(dir string) error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return err
	}
	list := configMapList()
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("/api/v1/namespaces/default/configmaps", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(list)
	})
	errc := make(chan error, len(backendAddrs))
	for _, a := range backendAddrs {
		srv := &http.Server{
			Addr:      a,
			Handler:   mux,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
			// HTTP/1.1 only, like the client.
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
			ErrorLog:     nil,
		}
		go func() { errc <- srv.ListenAndServeTLS("", "") }()
	}
	fmt.Println("ready")
	return <-errc
}

func configMapList() []byte {
	type item struct {
		Metadata map[string]string `json:"metadata"`
		Data     map[string]string `json:"data"`
	}
	var items []item
	for i := range 8 {
		items = append(items, item{
			Metadata: map[string]string{"name": fmt.Sprintf("config-%d", i), "namespace": "default",
				"uid": fmt.Sprintf("5d3b1e2a-0000-4000-8000-%012d", i), "resourceVersion": strconv.Itoa(1000 + i)},
			Data: map[string]string{"config.yaml": strings.Repeat("key: value\n", 35)},
		})
	}
	b, _ := json.Marshal(map[string]any{"kind": "ConfigMapList", "apiVersion": "v1", "items": items})
	return b
}

// ---- child: masterd's balancer ----

func runMasterdLB(dir string) error {
	cfg := lb.DefaultConfig()
	cfg.Listen = netip.MustParseAddrPort(masterdAddr)
	for i, a := range backendAddrs {
		cfg.Backends = append(cfg.Backends, lb.Backend{Name: fmt.Sprintf("m%d", i+1), Address: netip.MustParseAddrPort(a)})
	}
	cfg.HealthCheck.CAFile = filepath.Join(dir, "ca.pem")
	b, err := lb.New(cfg, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// BENCH_LB_CPUPROFILE=file profiles the balancer for the whole run.
	if f := os.Getenv("BENCH_LB_CPUPROFILE"); f != "" {
		pf, err := os.Create(f)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Println("ready")
	return b.Run(ctx)
}

// ---- orchestrator ----

const haproxyCfg = `global
    maxconn 4096
defaults
    mode tcp
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout check 900ms
frontend api
    bind {{LISTEN}}
    default_backend apiservers
backend apiservers
    balance leastconn
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server check check-ssl verify required ca-file {{CA}} inter 1s rise 2 fall 3
{{SERVERS}}`

type cell struct {
	mode, balancer string
	clients        int
	requests, errs int
	rps            float64
	p50, p99       time.Duration
	cpu            float64 // balancer CPU seconds during the cell
	wall           time.Duration
}

func orchestrate(out string, duration time.Duration, modes []string, concList string, direct bool) error {
	var concs []int
	for _, s := range strings.Split(concList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bad -clients %q", concList)
		}
		concs = append(concs, n)
	}
	dir, err := os.MkdirTemp("", "bench-lb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := writePKI(dir); err != nil {
		return err
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool.AppendCertsFromPEM(caPEM)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				_ = p.Process.Kill()
				<-done
			}
		}
	}()
	start := func(name string, args ...string) (*exec.Cmd, error) {
		cmd := exec.Command(name, args...)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		procs = append(procs, cmd)
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		return cmd, nil
	}

	if _, err := start(self, "-role", "backends", "-dir", dir); err != nil {
		return fmt.Errorf("start backends: %w", err)
	}
	mlb, err := start(self, "-role", "lb", "-dir", dir)
	if err != nil {
		return fmt.Errorf("start masterd lb: %w", err)
	}
	var servers strings.Builder
	for i, a := range backendAddrs {
		fmt.Fprintf(&servers, "    server m%d %s\n", i+1, a)
	}
	hcfg := strings.NewReplacer("{{LISTEN}}", haproxyAddr, "{{CA}}", filepath.Join(dir, "ca.pem"), "{{SERVERS}}", servers.String()).Replace(haproxyCfg)
	hpath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(hpath, []byte(hcfg), 0o600); err != nil {
		return err
	}
	hap, err := start("haproxy", "-db", "-f", hpath)
	if err != nil {
		return fmt.Errorf("start haproxy (apt-get install -y haproxy): %w", err)
	}
	hversion := "haproxy"
	if v, err := exec.Command("haproxy", "-v").Output(); err == nil {
		hversion = strings.SplitN(string(v), "\n", 2)[0]
	}

	targets := []struct {
		name string
		addr string
		pid  int
	}{
		{"masterd", masterdAddr, mlb.Process.Pid},
		{"haproxy", haproxyAddr, hap.Process.Pid},
	}
	if direct {
		// Baseline: one backend, no balancer in the path.
		targets = append(targets, struct {
			name string
			addr string
			pid  int
		}{"direct", backendAddrs[0], 0})
	}
	for _, tg := range targets {
		if err := waitServing(tg.addr, pool); err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
	}

	loadBefore := loadavg()
	// Idle cost: CPU while only the readiness checks run.
	idle := map[string]float64{}
	var c0 []float64
	for _, tg := range targets {
		v, err := cpuSeconds(tg.pid)
		if err != nil {
			return err
		}
		c0 = append(c0, v)
	}
	time.Sleep(idleWindow)
	for i, tg := range targets {
		v, err := cpuSeconds(tg.pid)
		if err != nil {
			return err
		}
		idle[tg.name] = (v - c0[i]) / idleWindow.Seconds()
	}

	// Each cell is measured in rounds of slices, the two balancers
	// alternating slice by slice (and swapping who goes first every
	// round), so drift in the shared machine's load hits both alike.
	var cells []cell
	began := time.Now()
	slice := duration / time.Duration(rounds)
	for _, mode := range modes {
		for _, c := range concs {
			acc := make([]sample, len(targets))
			for i, tg := range targets {
				run(tg.addr, pool, mode, c, warmup) // warm-up
				acc[i].balancer = tg.name
			}
			for r := range rounds {
				for k := range targets {
					i := (k + r) % len(targets)
					tg := targets[i]
					cpu0, err := cpuSeconds(tg.pid)
					if err != nil {
						return err
					}
					s := run(tg.addr, pool, mode, c, slice)
					cpu1, err := cpuSeconds(tg.pid)
					if err != nil {
						return err
					}
					s.cpu = cpu1 - cpu0
					acc[i].add(s)
				}
			}
			for _, a := range acc {
				res := a.cell(mode, c)
				cells = append(cells, res)
				fmt.Fprintf(os.Stderr, "%-9s c=%-3d %-8s %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  cpu %.2f s  errors %d\n",
					mode, c, res.balancer, res.rps, ms(res.p50), ms(res.p99), res.cpu, res.errs)
			}
		}
	}
	load := fmt.Sprintf("load average (1/5/15 min) %s before, %s after", loadBefore, loadavg())
	return writeReport(out, cells, idle, load, hversion, duration, time.Since(began))
}

// loadavg is the first three fields of /proc/loadavg: how busy the shared
// machine was, which these numbers depend on.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

const (
	idleWindow = 5 * time.Second        // idle CPU measurement
	rounds     = 4                      // slices per balancer per cell
	warmup     = 500 * time.Millisecond // per balancer per cell
)

// sample is what one or more measurement slices collected.
type sample struct {
	balancer string
	lat      []time.Duration
	errs     int
	wall     time.Duration
	cpu      float64
}

func (a *sample) add(s sample) {
	a.lat = append(a.lat, s.lat...)
	a.errs += s.errs
	a.wall += s.wall
	a.cpu += s.cpu
}

func (a *sample) cell(mode string, c int) cell {
	slices.Sort(a.lat)
	res := cell{mode: mode, balancer: a.balancer, clients: c, requests: len(a.lat), errs: a.errs, wall: a.wall, cpu: a.cpu}
	if n := len(a.lat); n > 0 {
		res.rps = float64(n) / a.wall.Seconds()
		res.p50 = a.lat[n*50/100]
		res.p99 = a.lat[min(n-1, n*99/100)]
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// waitServing retries a request until a balancer has its backends up.
func waitServing(addr string, pool *x509.CertPool) error {
	cl := newClient(pool, true)
	deadline := time.Now().Add(20 * time.Second)
	ok := 0
	for ok < 20 {
		if time.Now().After(deadline) {
			return fmt.Errorf("no answers through %s", addr)
		}
		if get(cl, addr, "/readyz") == nil {
			ok++
		} else {
			ok = 0
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func newClient(pool *x509.CertPool, keepalive bool) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "kubernetes.default"},
			// HTTP/1.1, one connection per client in keepalive mode.
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
			DisableKeepAlives:   !keepalive,
			MaxIdleConnsPerHost: 1,
			MaxConnsPerHost:     1,
			Proxy:               nil,
		},
	}
}

func get(cl *http.Client, addr, path string) error {
	resp, err := cl.Get("https://" + addr + path)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

// run drives c clients for d and returns their latencies.
func run(addr string, pool *x509.CertPool, mode string, c int, d time.Duration) sample {
	paths := []string{"/readyz", "/api/v1/namespaces/default/configmaps"}
	var mu sync.Mutex
	var res sample
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newClient(pool, mode == "keepalive")
			defer cl.CloseIdleConnections()
			lat := make([]time.Duration, 0, 4096)
			e := 0
			for i := w; ctx.Err() == nil; i++ {
				s := time.Now()
				if err := get(cl, addr, paths[i%len(paths)]); err != nil {
					e++
					continue
				}
				lat = append(lat, time.Since(s))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errs += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.wall = time.Since(t0)
	return res
}

// cpuSeconds is utime+stime of pid from /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// Fields after the command: state is f[0]; utime is field 14 of the
	// whole line, i.e. f[11], stime f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	const hz = 100 // USER_HZ on Linux
	return (ut + st) / hz, nil
}

func writeReport(out string, cells []cell, idle map[string]float64, load, hversion string, duration, total time.Duration) error {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# lb benchmark: masterd's balancer vs haproxy (TCP mode)\n\n")
	fmt.Fprintf(&b, "Generated by `go run ./bench/lb` (make bench-lb) on %s, %s, %d CPUs, %s; %s.\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), runtime.Version(), hversion)
	fmt.Fprintf(&b, "Each cell: %s per balancer after a %s warm-up, measured in %d slices alternating between the balancers; total run %.0f s. ", duration, warmup, rounds, total.Seconds())
	fmt.Fprintf(&b, "Three HTTPS backends on 127.0.0.101-103 (Go net/http, HTTP/1.1), TLS passed through by the balancer; "+
		"requests alternate GET /readyz and GET of a ~4 KiB ConfigMap list. Both balancers: least connections, "+
		"readiness GET /readyz over TLS verified against the CA every 1 s, rise 2, fall 3. "+
		"CPU is the balancer process's utime+stime during the cell. keepalive = one persistent connection per client; "+
		"newconn = a new TCP+TLS connection per request. direct = the same client straight to one backend, no balancer (a baseline, not a target).\n\n")
	fmt.Fprintf(&b, "The machine is shared (%d cores, other builds running; %s): the client, the backends and the balancer compete for the same cores, so absolute numbers are noisy; the two balancers ran interleaved slice by slice in the same run. CPU µs/req is the steadier figure.\n\n", runtime.NumCPU(), load)
	b.WriteString("| mode | clients | balancer | req/s | p50 ms | p99 ms | CPU s | CPU µs/req | errors | req/s vs haproxy | p99 vs haproxy |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	find := func(mode string, c int, name string) *cell {
		for i := range cells {
			if cells[i].mode == mode && cells[i].clients == c && cells[i].balancer == name {
				return &cells[i]
			}
		}
		return nil
	}
	for _, x := range cells {
		rel1, rel2 := "", ""
		if x.balancer == "masterd" {
			if h := find(x.mode, x.clients, "haproxy"); h != nil && h.rps > 0 && h.p99 > 0 {
				rel1 = fmt.Sprintf("%+.1f%%", 100*(x.rps/h.rps-1))
				rel2 = fmt.Sprintf("%+.1f%%", 100*(float64(x.p99)/float64(h.p99)-1))
			}
		}
		perReq := 0.0
		if x.requests > 0 {
			perReq = x.cpu / float64(x.requests) * 1e6
		}
		cpu, cpuReq := fmt.Sprintf("%.2f", x.cpu), fmt.Sprintf("%.1f", perReq)
		if x.balancer == "direct" {
			cpu, cpuReq = "–", "–"
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %.0f | %.3f | %.3f | %s | %s | %d | %s | %s |\n",
			x.mode, x.clients, x.balancer, x.rps, ms(x.p50), ms(x.p99), cpu, cpuReq, x.errs, rel1, rel2)
	}
	fmt.Fprintf(&b, "\nIdle CPU (no client traffic, readiness checks of 3 backends every 1 s), measured over %s before the cells: masterd %.1f ms/s, haproxy %.1f ms/s.\n",
		idleWindow, idle["masterd"]*1000, idle["haproxy"]*1000)
	b.WriteString("\nTarget (issue 12): masterd's throughput within 10% of haproxy's and p99 no worse by more than 10%.\n")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", out)
	return nil
}

// writePKI makes a CA and a serving certificate for the backends (their IPs)
// and the name the client verifies through either balancer.
func writePKI(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	var ips []net.IP
	for _, a := range backendAddrs {
		ips = append(ips, net.ParseIP(strings.Split(a, ":")[0]))
	}
	t := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"kubernetes.default"}, IPAddresses: ips}
	der, err := x509.CreateCertificate(rand.Reader, t, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	kDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.pem":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kDER}),
	}
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
