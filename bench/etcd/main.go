// Command etcd (make bench-etcd) compares put latency and throughput through
// masterd's embedded etcd member (package etcdembed) with a standalone etcd
// server process of the same version (./bench/etcd/etcdserver), with the
// same settings: one member, mutual TLS with package pki certificates, the
// same quota, raft timings, compaction and corruption checks, data dirs on
// the same filesystem. Runs alternate embedded/standalone to spread drift of
// a busy machine evenly; the table goes to bench/results/etcd.md.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/masterd/masterd/etcdembed"
	"github.com/masterd/masterd/pki"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

var (
	duration  = flag.Duration("duration", 6*time.Second, "measured duration of each slice")
	warmup    = flag.Duration("warmup", time.Second, "unmeasured warm-up before each slice")
	rounds    = flag.Int("rounds", 8, "rounds; each round loads embedded and standalone one slice each (order alternates)")
	clients   = flag.Int("clients", 16, "concurrent writers (one gRPC connection shared, as kube-apiserver does)")
	valueSize = flag.Int("value-size", 256, "bytes per value")
	out       = flag.String("out", "bench/results/etcd.md", "results file (markdown)")
	workDir   = flag.String("dir", "", "work dir for data dirs and certificates (default: a temp dir, removed)")
)

type result struct {
	target   string
	ops      int
	errors   int
	elapsed  time.Duration
	lat      []time.Duration
	p50, p99 time.Duration
}

func (r *result) finish() {
	slices.Sort(r.lat)
	if n := len(r.lat); n > 0 {
		r.p50 = r.lat[n*50/100]
		r.p99 = r.lat[min(n-1, n*99/100)]
	}
}

func (r result) throughput() float64 { return float64(r.ops) / r.elapsed.Seconds() }

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-etcd:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := *workDir
	if dir == "" {
		d, err := os.MkdirTemp("", "bench-etcd-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	secret, err := pki.GenerateSecret(rand.Reader, time.Now())
	if err != nil {
		return err
	}
	p := pki.DefaultParams()
	p.NodeName, p.NodeAddress = "bench", netip.MustParseAddr("127.0.0.1")
	p.Peers = []pki.Peer{{Name: "bench", Address: p.NodeAddress}}
	files, err := pki.Ensure(filepath.Join(dir, "pki"), secret, p, time.Now())
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "etcdserver")
	fmt.Println("building ./bench/etcd/etcdserver")
	if b, err := exec.Command("go", "build", "-o", bin, "./bench/etcd/etcdserver").CombinedOutput(); err != nil {
		return fmt.Errorf("build etcdserver: %v: %s", err, b)
	}

	// Both servers run for the whole benchmark; load alternates between them
	// in short slices (ABBA order) so that the drift of a shared machine
	// hits both alike.
	eCfg, err := config(files, filepath.Join(dir, "embedded", "etcd"))
	if err != nil {
		return err
	}
	stopEmbedded, err := startEmbedded(eCfg)
	if err != nil {
		return fmt.Errorf("embedded: %w", err)
	}
	defer stopEmbedded()
	sCfg, err := config(files, filepath.Join(dir, "standalone", "etcd"))
	if err != nil {
		return err
	}
	stopStandalone, err := startStandalone(bin, files, sCfg)
	if err != nil {
		return fmt.Errorf("standalone: %w", err)
	}
	defer stopStandalone()
	endpoint := map[string]string{
		"embedded":   fmt.Sprintf("https://127.0.0.1:%d", eCfg.ClientPort),
		"standalone": fmt.Sprintf("https://127.0.0.1:%d", sCfg.ClientPort),
	}
	var results []result
	for round := 0; round < *rounds; round++ {
		order := []string{"embedded", "standalone"}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, target := range order {
			r, err := load(target, files, endpoint[target])
			if err != nil {
				return fmt.Errorf("%s round %d: %w", target, round, err)
			}
			fmt.Printf("%-10s round %d: %6d puts, %7.0f puts/s, p50 %.2f ms, p99 %.2f ms, %d errors\n",
				target, round, r.ops, r.throughput(), ms(r.p50), ms(r.p99), r.errors)
			results = append(results, r)
		}
	}
	return writeResults(results)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func freePort() (uint16, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port), nil
}

func config(files *pki.Files, data string) (etcdembed.Config, error) {
	cfg := etcdembed.DefaultConfig()
	cfg.Name = "bench"
	cfg.DataDir = data
	cfg.Address = netip.MustParseAddr("127.0.0.1")
	var err1, err2 error
	cfg.ClientPort, err1 = freePort()
	cfg.PeerPort, err2 = freePort()
	cfg.Members = []etcdembed.Peer{{Name: "bench", Address: cfg.Address}}
	cfg.TLS = etcdembed.TLS{
		CAFile:         files.EtcdCA,
		ServerCertFile: files.EtcdServer.Cert, ServerKeyFile: files.EtcdServer.Key,
		PeerCertFile: files.EtcdPeer.Cert, PeerKeyFile: files.EtcdPeer.Key,
		ClientCertFile: files.EtcdClient.Cert, ClientKeyFile: files.EtcdClient.Key,
	}
	cfg.SnapshotInterval = 0
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	return cfg, errors.Join(err1, err2)
}

func startEmbedded(cfg etcdembed.Config) (stop func(), err error) {
	m, err := etcdembed.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	return func() { _ = m.Stop(context.Background()) }, nil
}

// startStandalone starts the etcd binary with the flags equivalent to
// etcdembed's embed.Config (see etcdembed/embedcfg.go) and waits until it
// serves.
func startStandalone(bin string, files *pki.Files, cfg etcdembed.Config) (stop func(), err error) {
	data := cfg.DataDir
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	client := fmt.Sprintf("https://127.0.0.1:%d", cfg.ClientPort)
	peer := fmt.Sprintf("https://127.0.0.1:%d", cfg.PeerPort)
	args := []string{
		"--name", cfg.Name, "--data-dir", data,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", cfg.Name + "=" + peer, "--initial-cluster-state", "new",
		"--initial-cluster-token", cfg.ClusterToken,
		"--cert-file", files.EtcdServer.Cert, "--key-file", files.EtcdServer.Key,
		"--client-cert-auth", "--trusted-ca-file", files.EtcdCA,
		"--peer-cert-file", files.EtcdPeer.Cert, "--peer-key-file", files.EtcdPeer.Key,
		"--peer-client-cert-auth", "--peer-trusted-ca-file", files.EtcdCA,
		"--quota-backend-bytes", fmt.Sprint(cfg.QuotaBytes),
		"--heartbeat-interval", fmt.Sprint(cfg.HeartbeatInterval.Milliseconds()),
		"--election-timeout", fmt.Sprint(cfg.ElectionTimeout.Milliseconds()),
		"--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1h",
		"--feature-gates", "InitialCorruptCheck=true,CompactHashCheck=true",
		"--corrupt-check-time", "10m", "--compact-hash-check-time", "1m",
		"--enable-grpc-gateway=false", "--metrics", "basic", "--max-learners", "1",
		"--log-level", "error",
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	cli, err := newClient(files, client)
	if err != nil {
		stop()
		return nil, err
	}
	defer cli.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "ready")
		cancel()
		if err == nil {
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("standalone etcd not ready: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func newClient(files *pki.Files, endpoint string) (*clientv3.Client, error) {
	info := transport.TLSInfo{CertFile: files.EtcdClient.Cert, KeyFile: files.EtcdClient.Key, TrustedCAFile: files.EtcdCA}
	tc, err := info.ClientConfig()
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// load runs *clients writers putting *valueSize-byte values on distinct keys
// for warm-up plus *duration, and measures the second part.
func load(target string, files *pki.Files, endpoint string) (result, error) {
	cli, err := newClient(files, endpoint)
	if err != nil {
		return result{}, err
	}
	defer cli.Close()
	value := strings.Repeat("v", *valueSize)
	var mu sync.Mutex
	r := result{target: target}
	start := time.Now()
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*duration)
	var wg sync.WaitGroup
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for n := 0; ; n++ {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := cli.Put(ctx, fmt.Sprintf("bench/%d/%d", c, n%10000), value)
				cancel()
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			r.lat = append(r.lat, lat...)
			r.errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(measureFrom)
	r.ops = len(r.lat)
	r.finish()
	return r, nil
}

func writeResults(results []result) error {
	var b strings.Builder
	agg := map[string]*result{}
	for _, r := range results {
		a := agg[r.target]
		if a == nil {
			a = &result{target: r.target}
			agg[r.target] = a
		}
		a.ops += r.ops
		a.errors += r.errors
		a.elapsed += r.elapsed
		a.lat = append(a.lat, r.lat...)
	}
	fmt.Fprintf(&b, "# etcd: embedded member vs standalone server\n\n")
	fmt.Fprintf(&b, "`make bench-etcd` (`go run ./bench/etcd`), %s, etcd server v3.7.3 both ways, %s, GOMAXPROCS %d.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.Version(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(&b, "One-member cluster, mutual TLS (package pki certificates), quota 8 GiB, heartbeat 100 ms, election 1 s, "+
		"corruption checks on, data dir on the same filesystem. %d concurrent writers on one client connection, "+
		"%d-byte values. Both servers run side by side for the whole benchmark; load alternates between them in "+
		"slices of %s (after %s unmeasured warm-up each), %d rounds in ABBA order, so a shared machine's drift hits both alike.\n\n",
		*clients, *valueSize, *duration, *warmup, *rounds)
	fmt.Fprintf(&b, "| target | puts | puts/s | p50 (ms) | p99 (ms) | errors |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s (slice) | %d | %.0f | %.2f | %.2f | %d |\n", r.target, r.ops, r.throughput(), ms(r.p50), ms(r.p99), r.errors)
	}
	for _, t := range []string{"embedded", "standalone"} {
		a := agg[t]
		a.finish()
		fmt.Fprintf(&b, "| **%s (all slices)** | %d | %.0f | %.2f | %.2f | %d |\n", t, a.ops, a.throughput(), ms(a.p50), ms(a.p99), a.errors)
	}
	e, s := agg["embedded"], agg["standalone"]
	fmt.Fprintf(&b, "\nEmbedded vs standalone: throughput %+.1f%%, p50 %+.1f%%, p99 %+.1f%% (target: within 5%%).\n",
		100*(e.throughput()/s.throughput()-1), 100*(float64(e.p50)/float64(s.p50)-1), 100*(float64(e.p99)/float64(s.p99)-1))
	fmt.Fprintf(&b, "\nNote: the embedded member shares its process (and Go scheduler) with the benchmark's clients, "+
		"as it shares masterd's; the standalone server has a process of its own. The machine is shared "+
		"(2 cores, other builds running), so the spread is shown per slice.\n")
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	fmt.Print("\n" + b.String())
	return os.WriteFile(*out, []byte(b.String()), 0o644)
}
