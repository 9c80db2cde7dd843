package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestVanishedBackendHostEndsTheClientConnection: the backend's host
// disappears mid-stream without a FIN or RST (its link goes down, like a
// power loss). Only keepalive / TCP_USER_TIMEOUT can notice; the client must
// get an error within about (KeepAliveCount+1)·KeepAlive, not hang forever.
//
// Layout, all in namespaces this test creates: lbd-<pid>-a holds the client
// and the balancer, lbd-<pid>-b the backend, joined by a veth pair
// 10.98.0.1/24 — 10.98.0.2/24. The far end going down drops every packet.
func TestVanishedBackendHostEndsTheClientConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: creates network namespaces (run without -short as root)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	nsA, nsB := fmt.Sprintf("lbd-%d-a", os.Getpid()), fmt.Sprintf("lbd-%d-b", os.Getpid())
	vethA, vethB := fmt.Sprintf("lbd%da", os.Getpid()%100000), fmt.Sprintf("lbd%db", os.Getpid()%100000)
	ipcmd := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{nsA, nsB} {
		ipcmd("netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	ipcmd("link", "add", vethA, "netns", nsA, "type", "veth", "peer", "name", vethB, "netns", nsB)
	ipcmd("-n", nsA, "addr", "add", "10.98.0.1/24", "dev", vethA)
	ipcmd("-n", nsB, "addr", "add", "10.98.0.2/24", "dev", vethB)
	for _, x := range [][2]string{{nsA, vethA}, {nsB, vethB}, {nsA, "lo"}, {nsB, "lo"}} {
		ipcmd("-n", x[0], "link", "set", x[1], "up")
	}

	dir := t.TempDir()
	if err := getPKI(t).writeFiles(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The backend, in B.
	back := exec.CommandContext(ctx, "ip", "netns", "exec", nsB, os.Args[0])
	back.Env = append(os.Environ(), "LB_TEST_HELPER=backend", "LB_TEST_DIR="+dir,
		"LB_TEST_ADDR=10.98.0.2:0", "LB_TEST_NAME=far")
	backOut, err := back.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	back.Stderr = os.Stderr
	if err := back.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = back.Wait() })
	line, err := bufio.NewReader(backOut).ReadString('\n')
	if err != nil {
		t.Fatalf("backend address: %v", err)
	}

	// Balancer and client, in A.
	cl := exec.CommandContext(ctx, "ip", "netns", "exec", nsA, os.Args[0])
	cl.Env = append(os.Environ(), "LB_TEST_HELPER=deadpeer", "LB_TEST_DIR="+dir, "LB_TEST_ADDR="+strings.TrimSpace(line))
	stdin, err := cl.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cl.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cl.Stderr = os.Stderr
	if err := cl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Process.Kill(); _ = cl.Wait() })
	r := bufio.NewReader(stdout)
	if l, err := r.ReadString('\n'); err != nil || l != "STREAMING\n" {
		t.Fatalf("client helper: %q, %v", l, err)
	}

	// The backend host vanishes: its end of the link goes down, nothing
	// more comes from it, not even a RST.
	ipcmd("-n", nsB, "link", "set", vethB, "down")
	if _, err := io.WriteString(stdin, "GO\n"); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	t.Logf("client helper:\n%s", rest)
	if err := cl.Wait(); err != nil {
		t.Fatalf("client helper failed: %v", err)
	}
	if !strings.Contains(string(rest), "PASS deadpeer") {
		t.Fatal("client helper did not report success")
	}
}

// helperDeadPeer runs in namespace A: balancer with a 1 s keepalive and a
// single probe, a client streaming from the far backend through it.
func helperDeadPeer() int {
	if err := deadPeer(); err != nil {
		fmt.Printf("FAIL %v\n", err)
		return 1
	}
	fmt.Println("PASS deadpeer")
	return 0
}

func deadPeer() error {
	pki, err := makePKIFromDir(os.Getenv("LB_TEST_DIR"))
	if err != nil {
		return err
	}
	cfg := DefaultConfig()
	cfg.Listen = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.Backends = []Backend{{Name: "far", Address: netip.MustParseAddrPort(os.Getenv("LB_TEST_ADDR"))}}
	cfg.HealthCheck.CA = pki.pool
	cfg.KeepAlive, cfg.KeepAliveCount = time.Second, 1
	lb, err := New(cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(20 * time.Second); !lb.Status()[0].Up; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("backend never came up: %s", lb.Status()[0].LastError)
		}
	}

	c, err := net.Dial("tcp", lb.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := io.WriteString(c, "STREAM\n"); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	if name, err := br.ReadString('\n'); err != nil || name != "far\n" {
		return fmt.Errorf("stream start: %q, %v", name, err)
	}
	if _, err := io.ReadFull(br, make([]byte, 16<<10)); err != nil {
		return fmt.Errorf("stream data: %w", err)
	}
	fmt.Println("STREAMING")
	if l, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil || l != "GO\n" {
		return fmt.Errorf("waiting for the parent: %q, %v", l, err)
	}
	// Drain what was in flight; the stream then stops for good. Without
	// dead-peer detection this read would wait forever; the deadline only
	// turns that hang into a failure.
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(20 * time.Second))
	_, err = io.Copy(io.Discard, br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("client still hanging %.0f s after the backend host vanished", time.Since(start).Seconds())
	}
	fmt.Printf("client connection ended %.1f s after the backend host vanished: %v\n", time.Since(start).Seconds(), err)
	// The broken stream is passed on as a reset, not a clean end.
	if !errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("client got %v, want connection reset", err)
	}
	return nil
}
