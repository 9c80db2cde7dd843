package vip

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// floodFrames is how many spoofed claims the flood test sends per family.
const floodFrames = 100_000

// A host on the LAN sends 100,000 ARP replies (or neighbour advertisements)
// claiming the held VIP, each from another random MAC. The conflict counter
// counts them, but the rate-limit map stays within its cap, the log gets a
// bounded number of lines, and the manager keeps the VIP.
func TestSpoofedClaimFloodKeepsMemoryAndLogsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a lab namespace with 100,000 frames per family")
	}
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			l := newLab(t, 2)
			a, rogue := l.Hosts[0], l.Hosts[1]
			vip := f.vip(a)
			cfg := DefaultConfig(vip)
			cfg.ConflictProbeInterval = 0 // only the flood's frames are claims
			var logs syncBuffer
			m := newManager(t, a, cfg, &logs)
			runManager(t, m)
			if err := m.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}

			// The holder refreshes as the agent would: only a lost VIP, not
			// an expired lifetime, may fail the test.
			stopRefresh := make(chan struct{})
			defer close(stopRefresh)
			go func() {
				tick := time.NewTicker(500 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stopRefresh:
						return
					case <-tick.C:
						_ = m.Refresh()
					}
				}
			}()

			peak := sampleHeap(t)
			start := time.Now()
			seen := floodClaims(t, rogue, vip.Is4(), func(mac net.HardwareAddr) []byte {
				if vip.Is4() {
					return arpFrame(arpReply, a.MAC, mac, vip, a.MAC, vip)
				}
				return naFrame(mac, vip)
			}, func() float64 { return value(m.m.conflicts) })
			elapsed := time.Since(start)
			heap := peak()

			m.mu.Lock()
			entries := len(m.lastLogged)
			m.mu.Unlock()
			lines := strings.Count(logs.String(), "another host answers for the vip")
			suppressed := value(m.m.conflictLogsSuppressed)
			t.Logf("%d frames sent in %.2fs, %.0f counted as conflicts; rate-limit map %d entries; %d log lines, %.0f suppressed; peak heap %.1f MiB, peak RSS of the test process %s",
				floodFrames, elapsed.Seconds(), seen, entries, lines, suppressed, float64(heap)/(1<<20), peakRSS())

			// Most frames must have reached the manager, or the test proves nothing.
			if seen < floodFrames/2 {
				t.Fatalf("only %.0f of %d frames counted as conflicts", seen, floodFrames)
			}
			if entries > conflictLogMACs {
				t.Errorf("rate-limit map holds %d entries, cap %d", entries, conflictLogMACs)
			}
			// At most conflictLogMACs lines per conflictLogEvery window the flood touched.
			if want := conflictLogMACs * (int(elapsed/conflictLogEvery) + 2); lines == 0 || lines > want {
				t.Errorf("%d conflict log lines, want 1..%d", lines, want)
			}
			if float64(lines)+suppressed < seen {
				t.Errorf("%d lines + %.0f suppressed < %.0f conflicts: suppressed lines are not all counted", lines, suppressed, seen)
			}
			if !m.Owned() {
				t.Error("the flood took the VIP away")
			}
		})
	}
}

// floodClaims sends floodFrames frames from h's eth0, each built by frame
// for a new random locally administered MAC, in batches that let the
// receiver keep up (a full socket buffer would drop frames and hide the
// growth under test). It returns counted() after the last batch arrived.
func floodClaims(t *testing.T, h *labHost, arp bool, frame func(net.HardwareAddr) []byte, counted func() float64) float64 {
	t.Helper()
	var fd, ifindex int
	h.In(func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		ifindex = link.Attrs().Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	defer unix.Close(fd)
	proto := uint16(etherTypeARP)
	if !arp {
		proto = etherTypeIPv6
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifindex, Halen: 6}
	copy(sa.Addr[:], broadcastMAC)
	r := rand.New(rand.NewPCG(1, 2))
	mac := make(net.HardwareAddr, 6)
	const batch = 64
	for sent := 0; sent < floodFrames; {
		for range min(batch, floodFrames-sent) {
			for i := range mac {
				mac[i] = byte(r.UintN(256))
			}
			mac[0] = mac[0]&^1 | 2 // unicast, locally administered
			if err := unix.Sendto(fd, frame(mac), 0, sa); err != nil {
				t.Fatalf("send spoofed claim: %v", err)
			}
			sent++
		}
		// Wait (briefly) for the receiver to drain the batch.
		deadline := time.Now().Add(100 * time.Millisecond)
		for counted() < float64(sent) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	last, stable := counted(), 0
	for stable < 20 {
		time.Sleep(10 * time.Millisecond)
		if c := counted(); c == last {
			stable++
		} else {
			last, stable = c, 0
		}
	}
	return last
}

// sampleHeap samples the heap in use every 5 ms until the returned function
// is called, which returns the peak.
func sampleHeap(t *testing.T) func() uint64 {
	runtime.GC()
	var mu sync.Mutex
	var peak uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	end := func() uint64 {
		once.Do(func() { close(stop); <-done })
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
	t.Cleanup(func() { end() })
	return end
}

// peakRSS reads VmHWM (the process's peak resident set) from /proc.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(v)
			if kb, err := strconv.Atoi(f[0]); err == nil {
				return strconv.FormatFloat(float64(kb)/1024, 'f', 1, 64) + " MiB"
			}
		}
	}
	return "unknown"
}
