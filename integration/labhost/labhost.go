package labhost

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

//go:embed inner.sh
var innerScript []byte

const (
	// stateRoot holds one tmpfs per lab host (overlay upper/work/merged).
	stateRoot = "/run/masterd-lab"
	// cgroupRoot is the machine's cgroup2 mount (hybrid hierarchy here).
	cgroupRoot = "/sys/fs/cgroup/unified"
	// sigPoweroff is SIGRTMIN+4: systemd's "poweroff now, cleanly".
	sigPoweroff = syscall.Signal(34 + 4)
)

// Options describe a lab host to boot.
type Options struct {
	// Name is the host name, also used for its state directory, its cgroup and,
	// unless NetNS is set, its network namespace. Lowercase letters, digits
	// and '-', at most 40 characters; make it unique per test run (add the PID).
	Name string
	// NetNS is an existing network namespace (ip netns name) to boot in. Empty:
	// Boot creates a namespace named Name (only lo) and Close deletes it.
	NetNS string
	// Masks are extra units to mask (link to /dev/null) besides the defaults:
	// every timer of the machine and every service it has enabled.
	Masks []string
	// NoMask are units to leave unmasked although the defaults would mask
	// them (e.g. haproxy.service, enabled on the machine, for a comparison
	// lab). lab.target does not start them; the test does.
	NoMask []string
	// StopTimeout bounds the clean poweroff in Close before SIGKILL. Zero: 10s.
	StopTimeout time.Duration
}

// Host is a booted lab host. Its methods are safe for concurrent use.
type Host struct {
	name         string
	netns        string
	createdNetNS bool
	dir          string
	cgroup       string
	stopTimeout  time.Duration

	cmd    *exec.Cmd
	exited chan struct{}
	pid1   int

	closeOnce sync.Once
	closeErr  error
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// Boot prepares the root, namespaces and cgroup of a lab host and starts its
// systemd. It returns once systemd is PID 1 of the host; call WaitRunning to
// wait for the boot to finish. Leftovers of an earlier run with the same name
// are removed first. On error nothing is left behind.
func Boot(ctx context.Context, opts Options) (*Host, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("labhost: boot needs root")
	}
	if !nameRE.MatchString(opts.Name) {
		return nil, fmt.Errorf("labhost: name %q: want [a-z0-9-], 1 to 40 characters", opts.Name)
	}
	h := &Host{
		name:        opts.Name,
		netns:       opts.NetNS,
		dir:         filepath.Join(stateRoot, opts.Name),
		cgroup:      filepath.Join(cgroupRoot, "masterd-lab-"+opts.Name),
		stopTimeout: opts.StopTimeout,
		exited:      make(chan struct{}),
	}
	if h.stopTimeout <= 0 {
		h.stopTimeout = 10 * time.Second
	}
	if h.netns == "" {
		h.netns = opts.Name
		h.createdNetNS = true
	}
	_ = CleanStale()
	if err := h.cleanup(); err != nil {
		return nil, fmt.Errorf("labhost: %s: clean leftovers: %w", h.name, err)
	}
	if err := h.writeOwner(); err != nil {
		return nil, fmt.Errorf("labhost: %s: record owner: %w", h.name, err)
	}
	if err := h.boot(ctx, opts); err != nil {
		if cerr := h.cleanup(); cerr != nil {
			err = errors.Join(err, cerr)
		} else {
			_ = os.Remove(ownerFile(h.name))
		}
		return nil, fmt.Errorf("labhost: boot %s: %w", h.name, err)
	}
	return h, nil
}

func (h *Host) merged() string { return filepath.Join(h.dir, "merged") }

func (h *Host) boot(ctx context.Context, opts Options) error {
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", h.dir, "tmpfs", 0, "mode=700"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", h.dir, err)
	}
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(h.dir, d), 0o755); err != nil {
			return err
		}
	}
	ovl := fmt.Sprintf("lowerdir=/,upperdir=%s/upper,workdir=%s/work", h.dir, h.dir)
	if err := unix.Mount("overlay", h.merged(), "overlay", 0, ovl); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", h.merged(), err)
	}
	if err := os.Mkdir(filepath.Join(h.merged(), ".oldroot"), 0o700); err != nil {
		return err
	}
	if err := h.writeEtc(opts.Masks, opts.NoMask); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(h.dir, "inner.sh"), innerScript, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(h.cgroup, 0o755); err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	if h.createdNetNS {
		if out, err := exec.CommandContext(ctx, "ip", "netns", "add", h.netns).CombinedOutput(); err != nil {
			return fmt.Errorf("ip netns add %s: %w: %s", h.netns, err, bytes.TrimSpace(out))
		}
		if out, err := exec.CommandContext(ctx, "ip", "-n", h.netns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
			return fmt.Errorf("ip -n %s link set lo up: %w: %s", h.netns, err, bytes.TrimSpace(out))
		}
	}
	console, err := os.Create(filepath.Join(h.dir, "console.log"))
	if err != nil {
		return err
	}
	defer console.Close()
	// The launcher joins the lab's cgroup first so that unshare --cgroup makes
	// it the root of the lab's cgroup namespace.
	launcher := `echo $$ > "$1/cgroup.procs" && exec ip netns exec "$2" unshare --pid --fork --kill-child --mount --propagation private --uts --ipc --cgroup -- /bin/sh "$3" "$4" "$5"`
	cmd := exec.Command("/bin/sh", "-c", launcher, "labhost",
		h.cgroup, h.netns, filepath.Join(h.dir, "inner.sh"), h.merged(), h.name)
	cmd.Stdout = console
	cmd.Stderr = console
	cmd.Dir = "/"
	// Setsid keeps terminal signals away; Pdeathsig takes the lab down (unshare
	// --kill-child) if the test process dies without Close.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start launcher: %w", err)
	}
	h.cmd = cmd
	go func() { _ = cmd.Wait(); close(h.exited) }()

	// Wait until the launcher's child (the lab's PID 1) has exec'd systemd.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		if pid := childOf(cmd.Process.Pid); pid > 0 {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); strings.HasSuffix(exe, "/systemd") {
				h.pid1 = pid
				return nil
			}
		}
		select {
		case <-h.exited:
			return fmt.Errorf("launcher exited before systemd started: %s", h.consoleTail())
		case <-ctx.Done():
			return fmt.Errorf("wait for systemd: %w: %s", ctx.Err(), h.consoleTail())
		case <-deadline:
			return fmt.Errorf("systemd did not start within 30s: %s", h.consoleTail())
		case <-tick.C:
		}
	}
}

// writeEtc writes the host's identity, boot target and masks into its root.
func (h *Host) writeEtc(extraMasks, noMask []string) error {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	etc := filepath.Join(h.merged(), "etc")
	files := map[string]string{
		"hostname":   h.name + "\n",
		"machine-id": hex.EncodeToString(id) + "\n",
		"hosts":      "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n127.0.1.1 " + h.name + "\n",
		"fstab":      "# lab host: nothing to mount\n",
		"systemd/system/lab.target": "[Unit]\nDescription=masterd lab host\n" +
			"Requires=basic.target\nAfter=basic.target\nAllowIsolate=yes\nWants=labhost-private.socket\n",
		// systemd refuses private-socket clients whose PID it cannot see
		// (any process outside the lab's PID namespace). A proxy inside the
		// lab relays such clients: see PrivateSocket.
		"systemd/system/labhost-private.socket": "[Unit]\nDescription=relay of systemd's private socket for the lab's test process\n" +
			"DefaultDependencies=no\n[Socket]\nListenStream=" + PrivateSocketInLab + "\nSocketMode=0600\n",
		"systemd/system/labhost-private.service": "[Unit]\nDescription=relay of systemd's private socket\nDefaultDependencies=no\n" +
			"[Service]\nExecStart=/lib/systemd/systemd-socket-proxyd /run/systemd/private\n",
	}
	for name, content := range files {
		p := filepath.Join(etc, name)
		_ = os.Remove(p)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	dflt := filepath.Join(etc, "systemd/system/default.target")
	_ = os.Remove(dflt)
	if err := os.Symlink("lab.target", dflt); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, u := range noMask {
		keep[u] = true
	}
	for _, u := range append(defaultMasks(), extraMasks...) {
		if keep[u] {
			continue
		}
		if strings.ContainsRune(u, '/') || u == "" {
			return fmt.Errorf("mask %q: not a unit name", u)
		}
		p := filepath.Join(etc, "systemd/system", u)
		_ = os.Remove(p)
		if err := os.Symlink("/dev/null", p); err != nil {
			return fmt.Errorf("mask %s: %w", u, err)
		}
	}
	return nil
}

// defaultMasks lists the machine's timers and the units it has enabled in
// /etc (postgresql, haproxy, timesyncd, getty, ...): a lab host runs none
// unless a test starts it (Options.NoMask). masterd.service and keepalived
// are not masked: deploy tests and benchmarks install and start them.
func defaultMasks() []string {
	seen := map[string]bool{}
	var out []string
	add := func(u string) {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	for _, dir := range []string{"/lib/systemd/system", "/etc/systemd/system"} {
		ms, _ := filepath.Glob(filepath.Join(dir, "*.timer"))
		for _, m := range ms {
			add(filepath.Base(m))
		}
	}
	wants, _ := filepath.Glob("/etc/systemd/system/*.wants/*")
	for _, w := range wants {
		add(filepath.Base(w))
	}
	for _, u := range []string{"systemd-timesyncd.service", "getty.target", "console-getty.service"} {
		add(u)
	}
	return out
}

// childOf returns the first child of pid, or 0.
func childOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

func (h *Host) consoleTail() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "console.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Name returns the host name.
func (h *Host) Name() string { return h.name }

// NetNS returns the network namespace the host runs in.
func (h *Host) NetNS() string { return h.netns }

// PID1 returns the PID (in the machine's PID namespace) of the host's systemd.
func (h *Host) PID1() int { return h.pid1 }

// Path maps an absolute path inside the host to one the calling process can
// open: /proc/<pid1>/root/<p>. It reaches the lab's /run and /tmp too.
func (h *Host) Path(p string) string {
	return fmt.Sprintf("/proc/%d/root%s", h.pid1, filepath.Clean("/"+p))
}

// PrivateSocketInLab is where, inside a lab host, a relay (socket-activated
// systemd-socket-proxyd) forwards to systemd's private socket. systemd 252
// refuses private-socket clients whose PID is not visible in its PID
// namespace, which is every process outside the lab; the relay runs inside.
const PrivateSocketInLab = "/run/labhost/systemd-private"

// PrivateSocket returns the path, openable by the calling process, of the
// relay to the lab's systemd private socket (for a D-Bus client such as
// github.com/coreos/go-systemd/v22/dbus). The relay's connection ends when
// systemd re-executes, like a direct one.
func (h *Host) PrivateSocket() string { return h.Path(PrivateSocketInLab) }

// Exec runs argv inside all of the host's namespaces (nsenter -a) and returns
// its combined output. The error wraps the exit status and quotes the output.
func (h *Host) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("labhost: exec: empty command")
	}
	args := append([]string{"-t", strconv.Itoa(h.pid1), "-a", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "LANG=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("labhost: %s: %s: %w: %s", h.name, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Systemctl runs systemctl with args inside the host.
func (h *Host) Systemctl(ctx context.Context, args ...string) ([]byte, error) {
	return h.Exec(ctx, append([]string{"systemctl", "--no-pager", "--no-ask-password"}, args...)...)
}

// WaitRunning waits until `systemctl is-system-running` says running or
// degraded (boot finished), and returns the state.
func (h *Host) WaitRunning(ctx context.Context) (string, error) {
	var last string
	for {
		out, _ := h.Exec(ctx, "systemctl", "is-system-running")
		last = strings.TrimSpace(string(out))
		if last == "running" || last == "degraded" {
			return last, nil
		}
		select {
		case <-h.exited:
			return last, fmt.Errorf("labhost: %s: systemd exited: %s", h.name, h.consoleTail())
		case <-ctx.Done():
			return last, fmt.Errorf("labhost: %s: wait running (last state %q): %w", h.name, last, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WriteFile writes data to path inside the host (creating parent
// directories), through Path, so /run and /tmp of the lab work too.
func (h *Host) WriteFile(path string, data []byte, mode os.FileMode) error {
	p := h.Path(path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("labhost: %s: write %s: %w", h.name, path, err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		return fmt.Errorf("labhost: %s: write %s: %w", h.name, path, err)
	}
	return os.Chmod(p, mode)
}

// Exited is closed when the host's systemd has exited.
func (h *Host) Exited() <-chan struct{} { return h.exited }

// Close powers the host off (SIGRTMIN+4, SIGKILL to its cgroup after the stop
// timeout) and removes its mounts, cgroups and, if Boot created it, its
// network namespace. It is idempotent.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		if h.cmd != nil {
			_ = syscall.Kill(h.pid1, sigPoweroff)
			select {
			case <-h.exited:
			case <-time.After(h.stopTimeout):
			}
		}
		h.closeErr = h.cleanup()
		if h.closeErr == nil {
			_ = os.Remove(ownerFile(h.name))
		}
		if h.cmd != nil {
			<-h.exited
		}
	})
	return h.closeErr
}

// cleanup kills every process in the lab's cgroup, unmounts the state dir and
// removes cgroups and the created namespace. It tolerates missing pieces.
func (h *Host) cleanup() error {
	var errs []error
	if _, err := os.Stat(h.cgroup); err == nil {
		if err := killCgroup(h.cgroup); err != nil {
			errs = append(errs, err)
		}
	}
	if h.cmd != nil {
		// The launcher (unshare) is outside the cgroup's subtree only before it
		// joined; make sure it is gone.
		_ = h.cmd.Process.Kill()
	}
	errs = append(errs, UnmountUnder(h.dir))
	if err := os.Remove(h.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := RemoveCgroup(h.cgroup); err != nil {
		errs = append(errs, err)
	}
	if h.createdNetNS {
		if _, err := os.Stat(filepath.Join("/run/netns", h.netns)); err == nil {
			if out, err := exec.Command("ip", "netns", "delete", h.netns).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("ip netns delete %s: %w: %s", h.netns, err, bytes.TrimSpace(out)))
			}
		}
	}
	return errors.Join(errs...)
}

// killCgroup SIGKILLs every process in the cgroup subtree (cgroup.kill) and
// waits until it is empty.
func killCgroup(cg string) error {
	if err := os.WriteFile(filepath.Join(cg, "cgroup.kill"), []byte("1"), 0); err != nil {
		return fmt.Errorf("kill cgroup %s: %w", cg, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join(cg, "cgroup.events"))
		if err != nil || strings.Contains(string(b), "populated 0") {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("cgroup %s still populated after kill", cg)
}

// RemoveCgroup removes a cgroup directory tree deepest first.
func RemoveCgroup(cg string) error {
	var dirs []string
	err := filepath.WalkDir(cg, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
		}
	}
	return errors.Join(errs...)
}

// UnmountUnder detaches every mount at or below dir, deepest first.
func UnmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	var errs []error
	for i := len(mps) - 1; i >= 0; i-- {
		if err := unix.Unmount(mps[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mps[i], err))
		}
	}
	return errors.Join(errs...)
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
