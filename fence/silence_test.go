package fence

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The holder helper: the test binary re-executed inside a lab namespace
// (FENCE_TEST_HOLDER=<vip>) installs the fence and renews like a lease
// holder: every renewal computes the lease deadline, prints it, and arms
// the fence until deadline - margin. The test SIGKILLs it and checks, from
// the wire, that the VIP went silent before the last printed deadline.
const (
	holderEnv    = "FENCE_TEST_HOLDER"
	holderLease  = 300 * time.Millisecond
	holderRenew  = 50 * time.Millisecond
	holderMargin = 10 * time.Millisecond
)

func TestMain(m *testing.M) {
	if v := os.Getenv(holderEnv); v != "" {
		os.Exit(holderMain(v))
	}
	os.Exit(m.Run())
}

func holderMain(v string) int {
	vip, err := netip.ParseAddr(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	f, err := New(DefaultConfig("eth0", vip), nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := f.Install(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("installed")
	for {
		deadline := time.Now().Add(holderLease) // a renewal validated now
		fmt.Printf("deadline %d\n", deadline.UnixNano())
		if err := f.ArmUntil(vip, deadline.Add(-holderMargin)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		time.Sleep(holderRenew)
	}
}

type holderProc struct {
	cmd      *exec.Cmd
	mu       sync.Mutex
	deadline time.Time
	lines    int
	ready    chan struct{}
	stderr   bytes.Buffer
}

func startHolder(t *testing.T, h *labHost, vip netip.Addr) *holderProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &holderProc{ready: make(chan struct{})}
	p.cmd = exec.Command("ip", "netns", "exec", h.NS, exe)
	p.cmd.Env = append(os.Environ(), holderEnv+"="+vip.String())
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if ns, ok := strings.CutPrefix(line, "deadline "); ok {
				n, err := strconv.ParseInt(ns, 10, 64)
				if err != nil {
					continue
				}
				p.mu.Lock()
				p.deadline = time.Unix(0, n)
				p.lines++
				if p.lines == 1 {
					close(p.ready)
				}
				p.mu.Unlock()
			}
		}
	}()
	select {
	case <-p.ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("holder helper did not arm within 10 s; stderr: %s", p.stderr.String())
	}
	return p
}

// kill SIGKILLs the helper and returns the last deadline it printed.
func (p *holderProc) kill(t *testing.T) time.Time {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	time.Sleep(20 * time.Millisecond) // let the stdout reader finish the pipe
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deadline
}

func TestKilledHolderGoesSilentBeforeItsLeaseDeadline(t *testing.T) {
	l := newLab(t, 2)
	holder, client := l.Hosts[0], l.Hosts[1]
	vip := vip4(holder)
	holder.MustExec("ip", "addr", "add", vip.String()+"/32", "dev", "eth0")
	hp := startHolder(t, holder, vip)
	pr := startARPProber(t, client, vip, 2*time.Millisecond)
	waitFor(t, "the armed holder to answer ARP", 5*time.Second, func() bool {
		n, _ := answeredAfter(pr.Probes(), time.Time{})
		return n >= 10
	})
	time.Sleep(4 * holderRenew)
	killed := time.Now()
	deadline := hp.kill(t)
	time.Sleep(time.Until(deadline.Add(300 * time.Millisecond)))
	pr.Stop()
	ps := pr.Probes()

	before, sentBefore := 0, 0
	for _, p := range ps {
		if p.sent.Before(killed) {
			sentBefore++
			if p.mac != nil {
				before++
			}
		}
	}
	if before == 0 {
		t.Fatal("the holder never answered while armed")
	}
	answered, sent := answeredAfter(ps, deadline)
	last, _ := lastAnswered(ps)
	firstSilent := deadline
	for _, p := range ps {
		if p.sent.After(last) {
			firstSilent = p.sent
			break
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	t.Logf("probes answered while renewing: %d/%d; last answered probe sent %.1f ms, first unanswered %.1f ms before the last printed lease deadline; killed %.1f ms before it",
		before, sentBefore, ms(deadline.Sub(last)), ms(deadline.Sub(firstSilent)), ms(deadline.Sub(killed)))
	if answered > 0 {
		t.Fatalf("%d of %d probes sent after the lease deadline were answered: the fence did not silence the killed holder", answered, sent)
	}
	if sent < 10 {
		t.Fatalf("only %d probes sent after the deadline: too few to tell", sent)
	}
	// The address is still configured: the silence is the fence's doing.
	if out := holder.MustExec("ip", "addr", "show", "dev", "eth0"); !strings.Contains(out, vip.String()+"/32") {
		t.Fatalf("VIP gone from the holder, the test proves nothing:\n%s", out)
	}
}

func TestEgressDropsUserSpaceGratuitousARPUntilArmed(t *testing.T) {
	l := newLab(t, 2)
	holder, client := l.Hosts[0], l.Hosts[1]
	vip := vip4(holder)
	f := newFence(t, holder, vip)
	if err := f.Install(); err != nil {
		t.Fatal(err)
	}
	stale := "02:00:00:00:00:99"
	client.MustExec("ip", "neigh", "replace", vip.String(), "lladdr", stale, "dev", "eth0", "nud", "stale")
	time.Sleep(1100 * time.Millisecond) // past the client's neighbour locktime
	if err := sendGratuitousARP(t, holder, vip); !errors.Is(err, unix.ENOBUFS) {
		t.Fatalf("sending a fenced gratuitous ARP: %v, want ENOBUFS (dropped by the egress hook)", err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := client.Neighbour(vip).String(); got != stale {
		t.Fatalf("fenced holder's gratuitous ARP reached the client: entry now %s", got)
	}
	if err := f.Arm(vip, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the armed holder's gratuitous ARP to update the client", 3*time.Second, func() bool {
		if err := sendGratuitousARP(t, holder, vip); err != nil {
			t.Fatalf("sending an armed gratuitous ARP: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
		return client.Neighbour(vip).String() == holder.MAC.String()
	})
}

func TestEgressDropsUserSpaceNeighbourAdvertisementUntilArmed(t *testing.T) {
	l := newLab(t, 2)
	holder, client := l.Hosts[0], l.Hosts[1]
	vip := vip6(holder)
	f := newFence(t, holder, vip)
	if err := f.Install(); err != nil {
		t.Fatal(err)
	}
	stale := "02:00:00:00:00:99"
	client.MustExec("ip", "-6", "neigh", "replace", vip.String(), "lladdr", stale, "dev", "eth0", "nud", "stale")
	if err := sendUnsolicitedNA(t, holder, vip); !errors.Is(err, unix.ENOBUFS) {
		t.Fatalf("sending a fenced neighbour advertisement: %v, want ENOBUFS (dropped by the egress hook)", err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := client.Neighbour(vip).String(); got != stale {
		t.Fatalf("fenced holder's advertisement reached the client: entry now %s", got)
	}
	if err := f.Arm(vip, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the armed holder's advertisement to update the client", 3*time.Second, func() bool {
		if err := sendUnsolicitedNA(t, holder, vip); err != nil {
			t.Fatalf("sending an armed neighbour advertisement: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
		return client.Neighbour(vip).String() == holder.MAC.String()
	})
}

func TestUnarmedVIPCarriesNoIPTraffic(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name := map[bool]string{false: "ipv4", true: "ipv6"}[v6]
		t.Run(name, func(t *testing.T) {
			l := newLab(t, 2)
			holder, client := l.Hosts[0], l.Hosts[1]
			vip, plen := vip4(holder), "/32"
			if v6 {
				vip, plen = vip6(holder), "/128"
			}
			args := []string{"ip", "addr", "add", vip.String() + plen, "dev", "eth0"}
			if v6 {
				args = append(args, "nodad")
			}
			holder.MustExec(args...)
			f := newFence(t, holder, vip)
			if err := f.Install(); err != nil {
				t.Fatal(err)
			}
			ping := func() error {
				_, err := client.Exec("ping", "-c", "1", "-W", "1", vip.String())
				return err
			}
			if ping() == nil {
				t.Fatal("client reached the fenced, unarmed VIP")
			}
			if err := f.Arm(vip, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			// The client's ARP/ND for the VIP may still be in its failed
			// resolution from the fenced ping (probes 1 s apart): a single
			// 1 s ping can miss the next probe under load.
			err := ping()
			for i := 0; i < 2 && err != nil; i++ {
				err = ping()
			}
			if err != nil {
				t.Fatalf("client cannot reach the armed VIP (3 pings): %v", err)
			}
			if err := f.Disarm(vip); err != nil {
				t.Fatal(err)
			}
			if ping() == nil {
				t.Fatal("client reached the VIP after Disarm")
			}
		})
	}
}
