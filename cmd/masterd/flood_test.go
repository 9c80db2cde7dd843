package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masterd/masterd/internal/nslab"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// floodBuffer is a stderr shared by the daemon and the test.
type floodBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (f *floodBuffer) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.b.Write(p)
}

func (f *floodBuffer) String() string { f.mu.Lock(); defer f.mu.Unlock(); return f.b.String() }

// floodMetric reads one sample of masterd's /metrics from inside h's
// namespace (the socket is made there), summing the series of name.
func floodMetric(t *testing.T, h *nslab.Host, addr, name string) float64 {
	t.Helper()
	var body []byte
	h.In(func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		body, err = io.ReadAll(c)
		return err
	})
	total := 0.0
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if n, _, _ := strings.Cut(line, "{"); n == name || strings.HasPrefix(line, name+" ") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += v
		}
	}
	return total
}

// procStatus is a field of /proc/pid/status in KiB.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// A real masterd (the binary, kubernetes.mode none, VIP with the fence, the
// balancer and the firewall on as by default) holding the VIP in a lab
// namespace, and a host outside the cluster on the same LAN that sends
// 100,000 ARP replies claiming the VIP (each from another random MAC) and
// opens 10,000 connections to the balancer (VIP:6443) and 10,000 to the
// gossip port: masterd keeps the VIP all along (sampled every 10 ms, no
// vip acquired/released line), does not exit, its RSS grows by less than
// 64 MiB, its log by at most 500 lines, the balancer sees the connections
// and the firewall keeps them off the gossip port. The figures are logged.
func TestRealMasterdUnderSpoofedARPAndConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a lab namespace")
	}
	l := nslab.New(t, "mfld", 2)
	a, rogue := l.Hosts[0], l.Hosts[1]
	vip := a.V4.Masked().Addr()
	for range 10 {
		vip = vip.Next()
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	if out, err := exec.Command(bin, "init", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("masterd init: %v\n%s", err, out)
	}
	const gossipPort, metricsPort = 7946, 9470
	metrics := netip.AddrPortFrom(a.V4.Addr(), metricsPort).String()
	cfgPath := filepath.Join(dir, "masterd.yaml")
	cfg := "name: solo\naddress: " + a.V4.Addr().String() + "\n" +
		"peers: [{name: solo, address: " + a.V4.Addr().String() + "}]\n" +
		"clusterKeyFile: " + dir + "/cluster.key\ndataDir: " + dir + "/data\n" +
		"gossip: {port: " + strconv.Itoa(gossipPort) + "}\n" +
		"vip: {enabled: true, address: " + vip.String() + ", interface: eth0, fence: true}\n" +
		"kubernetes: {mode: none, serviceCIDR: 172.30.0.0/16}\n" +
		"metrics: {listen: \"" + metrics + "\"}\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs floodBuffer
	cmd := exec.Command("ip", "netns", "exec", a.NS, bin, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("masterd log:\n%s", tail(logs.String(), 4000))
		}
	})
	pid := cmd.Process.Pid // ip netns exec execs masterd: the same process
	hd := a.Handle()
	held := func() bool {
		as, err := hd.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			return false
		}
		for _, x := range as {
			if x.IP.Equal(vip.AsSlice()) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(90 * time.Second); !held(); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("masterd exited: %v\n%s", cmd.ProcessState, tail(logs.String(), 4000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("masterd did not take the VIP %s within 90 s\n%s", vip, tail(logs.String(), 4000))
		}
	}
	time.Sleep(2 * time.Second) // settle: the balancer listens, the first renewals pass
	rssBefore := procStatus(pid, "VmRSS")
	logOffset := len(logs.String())
	linesBefore := strings.Count(logs.String(), "\n")

	// Watch the VIP and the RSS for the whole flood.
	var lost, samples atomic.Int64
	var peakRSS atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			samples.Add(1)
			if !held() {
				lost.Add(1)
			}
			if r := procStatus(pid, "VmRSS"); r > peakRSS.Load() {
				peakRSS.Store(r)
			}
		}
	}()

	// 100,000 ARP replies claiming the VIP, each from a new MAC, in
	// batches the receiver can keep up with.
	const frames = 100_000
	t0 := time.Now()
	var fd, ifindex int
	rogue.In(func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		ifindex = link.Attrs().Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	sa := &unix.SockaddrLinklayer{Protocol: 0x0608, Ifindex: ifindex, Halen: 6} // ETH_P_ARP, network order
	copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	r := rand.New(rand.NewPCG(25, 4))
	frame := make([]byte, 42)
	for sent := 0; sent < frames; sent++ {
		mac := make([]byte, 6)
		binary.BigEndian.PutUint32(mac, r.Uint32())
		binary.BigEndian.PutUint16(mac[4:], uint16(r.Uint32()))
		mac[0] = mac[0]&^1 | 2
		copy(frame[0:6], a.MAC) // to the holder
		copy(frame[6:12], mac)
		binary.BigEndian.PutUint16(frame[12:], 0x0806)
		binary.BigEndian.PutUint16(frame[14:], 1)      // Ethernet
		binary.BigEndian.PutUint16(frame[16:], 0x0800) // IPv4
		frame[18], frame[19] = 6, 4
		binary.BigEndian.PutUint16(frame[20:], 2) // reply
		copy(frame[22:28], mac)
		copy(frame[28:32], vip.AsSlice())
		copy(frame[32:38], a.MAC)
		copy(frame[38:42], vip.AsSlice())
		if err := unix.Sendto(fd, frame, 0, sa); err != nil {
			t.Fatalf("send spoofed ARP reply: %v", err)
		}
		if sent%64 == 63 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	unix.Close(fd)
	arpTook := time.Since(t0)

	// 10,000 connections to each port from the outside host, opened
	// non-blocking in rounds of 500 and all held open at once before they
	// are closed (a connection counts as completed when its handshake did;
	// the firewall drops the SYNs to the gossip port).
	connFlood := func(to netip.AddrPort) (opened int) {
		rogue.In(func() error {
			sa := &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()}
			var fds []int
			defer func() {
				for _, s := range fds {
					unix.Close(s)
				}
			}()
			for range 20 {
				for range 500 {
					s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
					if err != nil {
						return err
					}
					fds = append(fds, s)
					if err := unix.Connect(s, sa); err != nil && err != unix.EINPROGRESS {
						continue
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond)
			for _, s := range fds {
				if _, err := unix.Getpeername(s); err == nil {
					opened++
				}
			}
			return nil
		})
		return opened
	}
	t1 := time.Now()
	lbOpened := connFlood(netip.AddrPortFrom(vip, 6443))
	gossipOpened := connFlood(netip.AddrPortFrom(a.V4.Addr(), gossipPort))
	connTook := time.Since(t1)
	time.Sleep(2 * time.Second) // let masterd drain what arrived
	close(stop)
	wg.Wait()

	conflicts := floodMetric(t, a, metrics, "masterd_vip_conflicts_total")
	suppressed := floodMetric(t, a, metrics, "masterd_vip_conflict_logs_suppressed_total")
	rejected := floodMetric(t, a, metrics, "masterd_lb_connections_rejected_total")
	accepted := floodMetric(t, a, metrics, "masterd_lb_connections_total")
	listening := a.MustExec("ss", "-Htln")
	hwm := procStatus(pid, "VmHWM")
	newLines := strings.Count(logs.String(), "\n") - linesBefore
	t.Logf("ARP: %d replies in %s, %.0f counted as conflicts, %.0f log lines suppressed; connections: %d completed of 10000 to the balancer, %d of 10000 to the gossip port, %.0f rejected and %.0f counted by the balancer, in %s; VIP absent in %d of %d samples; masterd RSS %.1f MiB before, peak %.1f MiB during, VmHWM %.1f MiB; %d new log lines; listening: %s",
		frames, arpTook.Round(time.Millisecond), conflicts, suppressed, lbOpened, gossipOpened, rejected, accepted, connTook.Round(time.Millisecond),
		lost.Load(), samples.Load(), float64(rssBefore)/1024, float64(peakRSS.Load())/1024, float64(hwm)/1024, newLines, strings.Join(strings.Fields(listening), " "))

	select {
	case <-exited:
		t.Fatalf("masterd exited during the flood: %v", cmd.ProcessState)
	default:
	}
	if conflicts < frames/2 {
		t.Errorf("only %.0f of %d spoofed replies counted as conflicts: the flood did not reach masterd", conflicts, frames)
	}
	if accepted < 10000/2 {
		t.Errorf("the balancer counted %.0f connections of the 10000: the flood did not reach it", accepted)
	}
	if gossipOpened != 0 {
		t.Errorf("%d connections from outside the cluster reached the gossip port: the firewall (on by default) lets them in", gossipOpened)
	}
	if lost.Load() != 0 {
		t.Errorf("the VIP was absent in %d of %d samples during the flood", lost.Load(), samples.Load())
	}
	if grow := peakRSS.Load() - rssBefore; grow > 64<<10 {
		t.Errorf("masterd's RSS grew by %.1f MiB during the flood (%.1f -> %.1f MiB), want under 64 MiB", float64(grow)/1024, float64(rssBefore)/1024, float64(peakRSS.Load())/1024)
	}
	if newLines > 500 {
		t.Errorf("%d log lines during the flood, want at most 500:\n%s", newLines, tail(logs.String(), 3000))
	}
	during := logs.String()[logOffset:]
	for _, failover := range []string{"vip released", "vip acquired", "vip removed externally"} {
		if strings.Contains(during, failover) {
			t.Errorf("masterd logged %q during the flood", failover)
		}
	}
}
