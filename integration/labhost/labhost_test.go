package labhost

import (
	"context"

	"fmt"
	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("labhost tests boot systemd in namespaces and need root")
	}
}

func boot(t *testing.T, ctx context.Context, suffix string) *Host {
	t.Helper()
	h, err := Boot(ctx, Options{Name: fmt.Sprintf("labt-%d-%s", os.Getpid(), suffix)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if st, err := h.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("%s: %s", h.Name(), st)
	}
	return h
}

func TestBootRunsCommandAndTransientServiceThenPowersOff(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := boot(t, ctx, "a")

	out, err := h.Exec(ctx, "hostname")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != h.Name() {
		t.Errorf("hostname inside = %q, want %q", got, h.Name())
	}
	out, err = h.Exec(ctx, "cat", "/proc/1/comm")
	if err != nil || strings.TrimSpace(string(out)) != "systemd" {
		t.Errorf("PID 1 inside = %q (%v), want systemd", out, err)
	}
	// The host's services and timers are masked, not running.
	if out, _ := h.Systemctl(ctx, "is-active", "postgresql.service"); strings.TrimSpace(string(out)) == "active" {
		t.Errorf("postgresql.service is active inside the lab")
	}

	// A transient service through the lab's D-Bus (systemd-run).
	if _, err := h.Exec(ctx, "systemd-run", "--unit=labt-sleep", "--service-type=exec", "/bin/sleep", "300"); err != nil {
		t.Fatal(err)
	}
	out, _ = h.Systemctl(ctx, "is-active", "labt-sleep.service")
	if got := strings.TrimSpace(string(out)); got != "active" {
		t.Errorf("labt-sleep.service is %q, want active", got)
	}
	// A file written through WriteFile lands in the lab's /run (its own tmpfs).
	if err := h.WriteFile("/run/labt/hello", []byte("hi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Exec(ctx, "cat", "/run/labt/hello"); err != nil || string(out) != "hi\n" {
		t.Errorf("cat /run/labt/hello = %q, %v", out, err)
	}
	if _, err := os.Stat("/run/labt/hello"); err == nil {
		t.Errorf("/run/labt/hello leaked onto the machine's /run")
	}

	dir, cg, ns := h.dir, h.cgroup, h.netns
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Exited():
	default:
		t.Fatal("systemd still running after Close")
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	assertGone(t, dir, cg, ns)
}

func assertGone(t *testing.T, dir, cg, ns string) {
	t.Helper()
	for _, p := range []string{dir, cg, filepath.Join("/run/netns", ns)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s still exists after Close", p)
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), dir) {
		t.Errorf("mounts under %s remain after Close", dir)
	}
}

func TestTwoHostsRunAtOnceIndependently(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := boot(t, ctx, "x")
	b := boot(t, ctx, "y")
	if _, err := a.Exec(ctx, "systemd-run", "--unit=only-on-a", "/bin/sleep", "300"); err != nil {
		t.Fatal(err)
	}
	if out, _ := b.Systemctl(ctx, "is-active", "only-on-a.service"); strings.TrimSpace(string(out)) == "active" {
		t.Errorf("a unit started on %s is active on %s", a.Name(), b.Name())
	}
	ida, _ := a.Exec(ctx, "cat", "/etc/machine-id")
	idb, _ := b.Exec(ctx, "cat", "/etc/machine-id")
	if string(ida) == string(idb) {
		t.Errorf("both hosts have machine-id %s", ida)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := b.WaitRunning(ctx); err != nil {
		t.Errorf("%s after %s closed: %s %v", b.Name(), a.Name(), st, err)
	}
}

func TestBootCleansLeftoversOfACrashedRun(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := fmt.Sprintf("labt-%d-crash", os.Getpid())
	// Simulate a crashed run: the launcher is killed (taking systemd with it
	// through --kill-child), but mounts, cgroup and namespace stay.
	h, err := Boot(ctx, Options{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	if _, err := h.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	// Also leave a stray process in a sub-cgroup, like a unit would.
	if _, err := h.Exec(ctx, "systemd-run", "--unit=stray", "/bin/sleep", "300"); err != nil {
		t.Fatal(err)
	}
	_ = h.cmd.Process.Kill()
	<-h.Exited()

	h2, err := Boot(ctx, Options{Name: name})
	if err != nil {
		t.Fatalf("boot over leftovers: %v", err)
	}
	if _, err := h2.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	if out, _ := h2.Systemctl(ctx, "is-active", "stray.service"); strings.TrimSpace(string(out)) == "active" {
		t.Errorf("stray.service of the crashed run is active in the new boot")
	}
	if err := h2.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, h2.dir, h2.cgroup, h2.netns)
	if out, err := exec.Command("pgrep", "-f", "labt-"+fmt.Sprint(os.Getpid())).Output(); err == nil {
		t.Errorf("processes of the lab remain: %s", out)
	}
}

func TestDialContextReachesAListenerInsideTheHost(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3 for a listener inside the lab")
	}
	h := boot(t, ctx, "dial")
	// A one-shot TCP server inside the lab on its loopback.
	if _, err := h.Exec(ctx, "systemd-run", "--unit=labt-echo", "/bin/sh", "-c",
		"exec /usr/bin/python3 -c 'import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind((\"127.0.0.1\",7777));s.listen();c,_=s.accept();c.sendall(b\"lab\");c.close()'"); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for ctx.Err() == nil {
		c, err := h.DialContext(ctx, "tcp", "127.0.0.1:7777")
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		buf := make([]byte, 16)
		n, _ := c.Read(buf)
		got = buf[:n]
		c.Close()
		break
	}
	if string(got) != "lab" {
		t.Errorf("read %q from the lab's 127.0.0.1:7777, want %q", got, "lab")
	}
}

func TestPrivateSocketRelayReachesTheLabsSystemd(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := boot(t, ctx, "priv")
	c, err := sdbus.NewConnection(func() (*dbus.Conn, error) {
		conn, err := dbus.Dial("unix:path=" + h.PrivateSocket())
		if err != nil {
			return nil, err
		}
		if err := conn.Auth([]dbus.Auth{dbus.AuthExternal("0")}); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	})
	if err != nil {
		t.Fatalf("connect over %s: %v", h.PrivateSocket(), err)
	}
	defer c.Close()
	v, err := c.GetManagerProperty("Virtualization")
	if err != nil {
		t.Fatal(err)
	}
	if v == `""` {
		t.Errorf("Virtualization = %s over the relay, want the lab's container mode", v)
	}
	st, err := c.GetUnitPropertyContext(ctx, "lab.target", "ActiveState")
	if err != nil || st.Value.Value() != "active" {
		t.Errorf("lab.target ActiveState = %v (%v), want active", st, err)
	}
	t.Logf("Virtualization over the relay: %s", v)
}

func TestMasksFollowOptions(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/etc/systemd/system/multi-user.target.wants/haproxy.service"); err != nil {
		t.Skip("haproxy.service is not enabled on this machine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := Boot(ctx, Options{Name: fmt.Sprintf("labt-%d-mask", os.Getpid()), Masks: []string{"labt-extra.service"}, NoMask: []string{"haproxy.service"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	if _, err := h.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	for unit, want := range map[string]string{"labt-extra.service": "masked", "haproxy.service": "enabled", "postgresql.service": "masked"} {
		out, _ := h.Systemctl(ctx, "is-enabled", unit)
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s is %q, want %q", unit, got, want)
		}
	}
}

// TestHelperProcessBootsAndDies is the body of a child process for
// TestBootCleansLabsOfADeadTestProcess: it boots a host and is killed.
func TestHelperProcessBootsAndDies(t *testing.T) {
	name := os.Getenv("LABHOST_HELPER_NAME")
	if name == "" {
		t.Skip("helper for TestBootCleansLabsOfADeadTestProcess")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := Boot(ctx, Options{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	fmt.Println("BOOTED")
	time.Sleep(time.Minute) // killed by the parent
}

func TestBootCleansLabsOfADeadTestProcess(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	name := fmt.Sprintf("labt-%d-dead", os.Getpid())
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcessBootsAndDies$", "-test.v")
	cmd.Env = append(os.Environ(), "LABHOST_HELPER_NAME="+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var seen string
	for !strings.Contains(seen, "BOOTED") {
		n, err := out.Read(buf)
		if err != nil {
			t.Fatalf("helper ended before booting: %s", seen)
		}
		seen += string(buf[:n])
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	dir := filepath.Join(stateRoot, name)
	if _, err := os.Stat(filepath.Join(dir, "merged")); err != nil {
		t.Fatalf("expected the dead process's lab mounts to remain before cleaning: %v", err)
	}
	if err := CleanStale(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, dir, filepath.Join(cgroupRoot, "masterd-lab-"+name), name)
	if _, err := os.Stat(ownerFile(name)); err == nil {
		t.Errorf("owner file of the cleaned lab remains")
	}
}
