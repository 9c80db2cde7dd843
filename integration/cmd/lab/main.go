// Command lab runs the multi-master lab of package integration/lab for humans:
//
//	go run ./integration/cmd/lab up      # make demo
//	go run ./integration/cmd/lab status
//	go run ./integration/cmd/lab down    # make demo-down
//
// up starts a keeper process (this binary, `lab keep`, in its own session)
// that builds the lab, waits until it is ready, prints the VIP, the `masterd
// status` table and a kubectl command, demonstrates a failover and then keeps
// the lab running until `lab down`. up itself follows the keeper's log
// (/run/masterd-lab-<prefix>.log) and returns once the demo is done, leaving
// the lab running. A lab host's systemd dies with the process that booted it,
// hence the keeper.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/masterd/masterd/integration/lab"
)

const doneLine = "lab: the lab keeps running"

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = cmdUp(os.Args[2:])
	case "keep":
		err = cmdKeep(os.Args[2:])
	case "down":
		err = cmdDown(os.Args[2:])
	case "status":
		err = cmdStatus(os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: lab up|status|down [flags]

  up      build and boot a lab of masterd masters in network namespaces, wait
          until it is ready, demonstrate a failover, leave it running
  status  masterd status of every master, and who holds the VIP
  down    stop the lab and remove everything it made

Run as root from the repository (make demo / make demo-down).
`)
}

type flags struct {
	prefix  string
	masters int
	deb     string
	kube    string
	profile string
	fence   bool
	noDemo  bool
	timeout time.Duration
}

func parseFlags(name string, args []string) (flags, []string, error) {
	d := lab.DefaultOptions()
	var f flags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&f.prefix, "prefix", d.Prefix, "name prefix of the lab's namespaces and hosts")
	fs.IntVar(&f.masters, "masters", d.Masters, "number of masters")
	fs.StringVar(&f.deb, "deb", d.Deb, "masterd .deb to install (default: newest dist/masterd_*.deb)")
	fs.StringVar(&f.kube, "kube-bin", lab.FindKubeBinDir(), "directory with kube-apiserver, kube-scheduler, kube-controller-manager, kubectl; empty: no Kubernetes")
	fs.StringVar(&f.profile, "profile", d.VIPProfile, "VIP timing profile: default or fast")
	fs.BoolVar(&f.fence, "fence", false, "enable the nftables kernel fence (needed by -profile fast)")
	fs.BoolVar(&f.noDemo, "no-demo", false, "skip the failover demonstration")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Minute, "how long to wait for the lab to become ready")
	err := fs.Parse(args)
	return f, fs.Args(), err
}

func logPath(prefix string) string { return "/run/masterd-lab-" + prefix + ".log" }

// cmdUp starts the keeper and follows its log until the demo is done.
func cmdUp(args []string) error {
	f, _, err := parseFlags("up", args)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("up needs root (network namespaces, systemd hosts)")
	}
	if f.kube == "" {
		fmt.Println("lab: no kube binaries found (make kube); the lab runs masterd with kubernetes.mode: none")
	}
	if st, err := readState(f.prefix); err == nil && alive(st.Keeper) {
		return fmt.Errorf("a lab %q is running (keeper pid %d): `make demo-down` first", f.prefix, st.Keeper)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(logPath(f.prefix), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, append([]string{"keep"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir, _ = os.Getwd()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start keeper: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Printf("lab: keeper pid %d, log %s\n", cmd.Process.Pid, logPath(f.prefix))

	in, err := os.Open(logPath(f.prefix))
	if err != nil {
		return err
	}
	defer in.Close()
	r := bufio.NewReader(in)
	var partial string
	for {
		line, err := r.ReadString('\n')
		partial += line
		if err == io.EOF {
			select {
			case werr := <-exited:
				rest, _ := io.ReadAll(r)
				fmt.Print(partial + string(rest))
				return fmt.Errorf("the keeper exited (%v); the lab is down, see above", werr)
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return err
		}
		fmt.Print(partial)
		if strings.HasPrefix(partial, doneLine) {
			return nil
		}
		partial = ""
	}
}

// cmdKeep builds the lab, shows it, demonstrates a failover and keeps it
// until SIGTERM or SIGINT.
func cmdKeep(args []string) error {
	f, _, err := parseFlags("keep", args)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-sigs; cancel() }()

	o := lab.DefaultOptions()
	o.Prefix, o.Masters, o.Deb, o.KubeBinDir = f.prefix, f.masters, f.deb, f.kube
	o.VIPProfile, o.Fence, o.Progress = f.profile, f.fence, os.Stdout
	// A debugging aid: a drop-in for masterd.service in every master.
	o.UnitDropIn = os.Getenv("MASTERD_LAB_DROPIN")
	start := time.Now()
	l, err := lab.Up(ctx, o)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("lab: tearing down")
		if err := l.Down(); err != nil {
			fmt.Println("lab: down:", err)
		}
		_ = os.Remove(logPath(f.prefix))
	}()
	fmt.Printf("lab: hosts booted in %.1fs; waiting for the control plane (etcd, apiservers, VIP)\n", time.Since(start).Seconds())
	stop := progressTicker(ctx, l, 10*time.Second)
	rctx, rcancel := context.WithTimeout(ctx, f.timeout)
	err = l.WaitReady(rctx)
	rcancel()
	stop()
	if err != nil {
		for _, m := range l.Masters() {
			fmt.Printf("--- %s: journalctl -u masterd (last 30 lines)\n%s", m.Name, m.Journal(context.Background(), 30))
		}
		return err
	}
	fmt.Printf("lab: ready %.1fs after start\n\n", time.Since(start).Seconds())
	show(ctx, l)
	if !f.noDemo {
		if err := demo(ctx, l); err != nil {
			fmt.Println("lab: demo failed:", err)
		}
		if err := demoWorker(ctx, l, f.kube); err != nil {
			fmt.Println("lab: worker demo failed:", err)
		}
	}
	fmt.Printf("%s: `make demo-down` (go run ./integration/cmd/lab down) removes it\n", doneLine)
	<-ctx.Done()
	return nil
}

// progressTicker prints what the lab waits for every interval.
func progressTicker(ctx context.Context, l *lab.Lab, every time.Duration) func() {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sts, _ := l.Statuses(ctx)
				var parts []string
				for _, m := range l.Masters() {
					st, ok := sts[m.Name]
					switch {
					case !ok:
						parts = append(parts, m.Name+": no status yet")
					case st.Ready:
						parts = append(parts, m.Name+": ready")
					default:
						parts = append(parts, m.Name+": starting")
					}
				}
				hs, _ := l.VIPHolders()
				fmt.Printf("lab: waiting... %s; VIP on %v\n", strings.Join(parts, ", "), hs)
			}
		}
	}()
	return cancel
}

// show prints the VIP, a master's status table and the kubectl command.
func show(ctx context.Context, l *lab.Lab) {
	hs, _ := l.VIPHolders()
	fmt.Printf("VIP %s held by %v\n\n", l.VIP(), hs)
	fmt.Println("ROLE                HOLDER (as each master reports itself)")
	for _, role := range []string{"vip", "scheduler", "controller-manager"} {
		fmt.Printf("%-19s %v\n", role, l.Holders(ctx, role))
	}
	fmt.Println()
	m := l.Masters()[0]
	out, err := m.Exec(ctx, "masterd", "status")
	fmt.Printf("$ masterd status   (on %s)\n%s", m.Name, out)
	if err != nil {
		fmt.Println(err)
	}
	fmt.Println()
	if _, err := l.Kubectl(ctx, "version"); err == nil {
		fmt.Printf("kubectl through the VIP, from the client namespace:\n  %s get nodes\n\n", l.KubectlCommand())
	}
}

// demo crashes the VIP holder (link cut + its PID 1 killed) and shows the VIP
// and the scheduler role moving and kubectl working again, then reboots it.
func demo(ctx context.Context, l *lab.Lab) error {
	hs, err := l.VIPHolders()
	if err != nil || len(hs) != 1 {
		return fmt.Errorf("VIP holders %v (%v)", hs, err)
	}
	victim := l.Master(hs[0])
	sched := l.Holders(ctx, "scheduler")
	fmt.Printf("== failover demo: crash of the VIP holder %s (link cut, then its systemd PID 1 SIGKILLed)\n", victim.Name)
	fmt.Printf("   before: VIP on %v, scheduler role on %v\n", hs, sched)
	mon, err := l.MonitorVIP(10 * time.Millisecond)
	if err != nil {
		return err
	}
	p, err := l.StartPinger(10 * time.Millisecond)
	if err != nil {
		mon.Stop()
		return err
	}
	time.Sleep(500 * time.Millisecond)
	t0 := time.Now()
	mon.Ignore(victim.Name)
	if err := l.Crash(ctx, victim); err != nil {
		p.Stop()
		mon.Stop()
		return err
	}
	var newHolder []string
	for time.Since(t0) < 30*time.Second {
		newHolder, _ = l.VIPHolders()
		if len(newHolder) == 1 && newHolder[0] != victim.Name {
			break
		}
		// The crashed host's namespace keeps the VIP (its kernel is "hung"),
		// but its link is cut: the one that counts is the other holder.
		if len(newHolder) == 2 {
			var others []string
			for _, h := range newHolder {
				if h != victim.Name {
					others = append(others, h)
				}
			}
			newHolder = others
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	moved := time.Since(t0)
	var kubectlGap time.Duration
	for l.KubeEnabled() && time.Since(t0) < 60*time.Second {
		if _, err := l.Kubectl(ctx, "get", "nodes"); err == nil {
			kubectlGap = time.Since(t0)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	pr := p.Stop()
	mr := mon.Stop()
	fmt.Printf("   VIP moved to %v %.3fs after the crash (ping from the client: longest gap %.3fs)\n", newHolder, moved.Seconds(), pr.LongestGap.Seconds())
	switch {
	case !l.KubeEnabled():
	case kubectlGap > 0:
		fmt.Printf("   kubectl get nodes through the VIP works again %.3fs after the crash\n", kubectlGap.Seconds())
	default:
		fmt.Println("   kubectl through the VIP did not work again within 60s")
	}
	// The scheduler role moves once its lease (15 s by default) runs out.
	deadline := time.Now().Add(40 * time.Second)
	var sched2 []string
	for time.Now().Before(deadline) {
		sched2 = l.Holders(ctx, "scheduler")
		if len(sched2) == 1 && sched2[0] != victim.Name {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(sched) == 1 && sched[0] == victim.Name {
		fmt.Printf("   scheduler role: %v -> %v (%.1fs after the crash; its lease runs out first)\n", sched, sched2, time.Since(t0).Seconds())
	} else {
		fmt.Printf("   scheduler role stays on %v (it was not on the crashed master)\n", sched2)
	}
	fmt.Printf("   VIP samples every 10 ms in every connected namespace: %s\n", mr)
	fmt.Printf("== rebooting %s with its disk\n", victim.Name)
	if err := l.Reboot(ctx, victim); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := l.WaitReady(rctx); err != nil {
		return err
	}
	fmt.Printf("   %s is back; the cluster is whole again\n\n", victim.Name)
	show(ctx, l)
	return nil
}

// stateFile mirrors the lab's state.json.
type stateFile struct {
	Prefix  string `json:"prefix"`
	VIP     string `json:"vip"`
	Client  string `json:"client"`
	Kubectl string `json:"kubectl"`
	Admin   string `json:"adminConf"`
	Keeper  int    `json:"keeperPID"`
	Masters []struct {
		Name string `json:"name"`
		Addr string `json:"addr"`
		PID1 int    `json:"pid1"`
	} `json:"masters"`
}

func readState(prefix string) (stateFile, error) {
	var st stateFile
	b, err := os.ReadFile(filepath.Join("/run/masterd-lab", prefix, "state.json"))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

func cmdDown(args []string) error {
	f, _, err := parseFlags("down", args)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("down needs root")
	}
	if st, err := readState(f.prefix); err == nil && alive(st.Keeper) {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(st.Keeper) + "/cmdline"); strings.Contains(string(b), "keep") {
			fmt.Printf("lab: stopping keeper %d\n", st.Keeper)
			_ = syscall.Kill(st.Keeper, syscall.SIGTERM)
			for i := 0; i < 600 && alive(st.Keeper); i++ {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	if err := lab.Clean(f.prefix); err != nil {
		return err
	}
	_ = os.Remove(logPath(f.prefix))
	fmt.Printf("lab: %s is down\n", f.prefix)
	return nil
}

func cmdStatus(args []string) error {
	f, _, err := parseFlags("status", args)
	if err != nil {
		return err
	}
	st, err := readState(f.prefix)
	if err != nil {
		return fmt.Errorf("no lab %q running (%v)", f.prefix, err)
	}
	vip, _ := netip.ParseAddr(st.VIP)
	fmt.Printf("lab %s: VIP %s, keeper pid %d (alive %v)\n", st.Prefix, vip, st.Keeper, alive(st.Keeper))
	for _, m := range st.Masters {
		out, _ := exec.Command("ip", "-n", m.Name, "-4", "-o", "addr", "show", "dev", "eth0").Output()
		holds := strings.Contains(string(out), " "+vip.String()+"/")
		fmt.Printf("\n== %s %s (PID 1 %d)  holds VIP: %v\n", m.Name, m.Addr, m.PID1, holds)
		if !alive(m.PID1) {
			fmt.Println("   host is down")
			continue
		}
		out, err := exec.Command("nsenter", "-t", strconv.Itoa(m.PID1), "-a", "masterd", "status").CombinedOutput()
		fmt.Print(string(out))
		if err != nil {
			fmt.Println("  ", err)
		}
	}
	if st.Kubectl != "" {
		fmt.Printf("\nkubectl: ip netns exec %s %s --kubeconfig %s get nodes\n", st.Client, st.Kubectl, st.Admin)
	}
	return nil
}
