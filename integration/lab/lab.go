package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/masterd/masterd/integration/labhost"
)

// stateRoot is labhost's state root; the lab keeps its own files (cluster
// key, admin.conf, saved disks, state.json) in stateRoot/<prefix>.
const stateRoot = "/run/masterd-lab"

// Lab is a running lab. Its methods are safe for concurrent use.
type Lab struct {
	opts     Options
	dir      string
	brNS     string
	clientNS string
	vip      netip.Addr
	masters  []*Master
	// lastOctet is the highest last octet of a master's address so far
	// (AddMaster gives the next one: a new master gets a new address).
	lastOctet byte

	mu       sync.Mutex
	adminCfg string
	downOnce sync.Once
	downErr  error
}

// Master is one master host of the lab.
type Master struct {
	// Name is the host name, its network namespace and its masterd node name.
	Name string
	// Addr is its address on the lab bridge.
	Addr netip.Addr
	// Port is its veth on the bridge (in the bridge namespace).
	Port string

	lab  *Lab
	mu   sync.Mutex
	host *labhost.Host
}

// Up builds and boots a lab: it removes the leftovers of an earlier lab with
// the same prefix, creates the network, boots every master, installs and
// enables masterd in each, and returns without waiting for the cluster to be
// ready (see WaitReady). On error everything is torn down.
func Up(ctx context.Context, opts Options) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("lab: up needs root")
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("lab: options: %w", err)
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	l := &Lab{
		opts:     opts,
		dir:      filepath.Join(stateRoot, opts.Prefix),
		brNS:     opts.Prefix + "-br",
		clientNS: opts.Prefix + "-client",
		vip:      opts.VIP,
	}
	base := opts.Subnet.Masked().Addr().As4()
	at := func(n byte) netip.Addr { b := base; b[3] = n; return netip.AddrFrom4(b) }
	if !l.vip.IsValid() {
		l.vip = at(10)
	}
	for i := 1; i <= opts.Masters; i++ {
		l.masters = append(l.masters, &Master{
			Name: fmt.Sprintf("%s-m%d", opts.Prefix, i),
			Addr: at(byte(10 + i)),
			Port: fmt.Sprintf("m%d", i),
			lab:  l,
		})
	}
	l.lastOctet = byte(10 + opts.Masters)
	l.progress("cleaning leftovers of lab %q", opts.Prefix)
	if err := Clean(opts.Prefix); err != nil {
		return nil, fmt.Errorf("lab: clean leftovers: %w", err)
	}
	if err := l.up(ctx); err != nil {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, fmt.Errorf("lab: up: %w", err)
	}
	return l, nil
}

func (l *Lab) progress(format string, args ...any) {
	fmt.Fprintf(l.opts.Progress, "lab: "+format+"\n", args...)
}

func (l *Lab) up(ctx context.Context) error {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return err
	}
	l.progress("network: bridge %s, client %s, %d masters on %v, VIP %v", l.brNS, l.clientNS, len(l.masters), l.opts.Subnet, l.vip)
	if err := l.network(ctx); err != nil {
		return err
	}
	l.progress("cluster secret: masterd init")
	if _, err := run(ctx, "dpkg-deb", "-x", l.opts.Deb, filepath.Join(l.dir, "pkg")); err != nil {
		return err
	}
	if _, err := run(ctx, filepath.Join(l.dir, "pkg/usr/bin/masterd"), "init", "--dir", l.dir); err != nil {
		return err
	}
	if err := l.saveState(); err != nil {
		return err
	}
	errs := make(chan error, len(l.masters))
	for _, m := range l.masters {
		go func() { errs <- m.boot(ctx, nil) }()
	}
	var all []error
	for range l.masters {
		all = append(all, <-errs)
	}
	if err := errors.Join(all...); err != nil {
		return err
	}
	return l.saveState()
}

// network creates the bridge namespace, the client and master namespaces and
// their veths.
func (l *Lab) network(ctx context.Context) error {
	cmds := [][]string{
		{"ip", "netns", "add", l.brNS},
		{"ip", "-n", l.brNS, "link", "set", "lo", "up"},
		{"ip", "-n", l.brNS, "link", "add", "br0", "type", "bridge", "forward_delay", "0"},
		{"ip", "-n", l.brNS, "link", "set", "br0", "up"},
	}
	base := l.opts.Subnet.Masked().Addr().As4()
	base[3] = 100
	cmds = append(cmds, l.attachCmds(l.clientNS, "client", netip.AddrFrom4(base))...)
	for _, m := range l.masters {
		cmds = append(cmds, l.attachCmds(m.Name, m.Port, m.Addr)...)
	}
	for _, c := range cmds {
		if _, err := run(ctx, c...); err != nil {
			return err
		}
	}
	return nil
}

// attachCmds are the commands that create network namespace ns with eth0
// at addr, its peer port on the bridge.
func (l *Lab) attachCmds(ns, port string, addr netip.Addr) [][]string {
	return [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", l.brNS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "-n", l.brNS, "link", "set", port, "master", "br0", "up"},
		{"ip", "-n", ns, "addr", "add", netip.PrefixFrom(addr, 24).String(), "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
	}
}

// boot boots the master's host, provisions it and starts masterd; disk,
// when not nil, is a directory with saved etc/masterd and var/lib/masterd to
// restore.
func (m *Master) boot(ctx context.Context, disk *string) error {
	return m.provision(ctx, disk, true)
}

// provision boots the master's host and provisions it (see boot); masterd
// is enabled, and started only when start is set.
func (m *Master) provision(ctx context.Context, disk *string, start bool) error {
	l := m.lab
	l.progress("%s: booting systemd", m.Name)
	h, err := labhost.Boot(ctx, labhost.Options{Name: m.Name, NetNS: m.Name})
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.host = h
	m.mu.Unlock()
	if _, err := h.WaitRunning(ctx); err != nil {
		return err
	}
	// labhost masks masterd.service (a host's enabled services never run in a
	// lab host); this lab wants it.
	if err := os.Remove(h.Path("/etc/systemd/system/masterd.service")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: unmask masterd.service: %w", m.Name, err)
	}
	if l.opts.KubeBinDir != "" {
		// Bind the cached binaries (visible through the overlay's lower
		// layer, but under /root, which masterd.service's ProtectHome hides)
		// onto /usr/local/bin inside the host: no copy of 400 MB per host.
		for _, b := range kubeBinaries {
			dst := "/usr/local/bin/" + b
			if err := h.WriteFile(dst, nil, 0o755); err != nil {
				return err
			}
			if _, err := h.Exec(ctx, "mount", "--bind", "-o", "ro", filepath.Join(l.opts.KubeBinDir, b), dst); err != nil {
				return err
			}
		}
	}
	l.progress("%s: dpkg -i %s", m.Name, filepath.Base(l.opts.Deb))
	// The host sees the machine's / but has its own /tmp and /run: copy the
	// package in.
	deb, err := os.ReadFile(l.opts.Deb)
	if err != nil {
		return err
	}
	inHost := "/var/cache/masterd-lab/" + filepath.Base(l.opts.Deb)
	if err := h.WriteFile(inHost, deb, 0o644); err != nil {
		return err
	}
	if _, err := h.Exec(ctx, "dpkg", "-i", "--force-confold", inHost); err != nil {
		return err
	}
	if disk != nil {
		for _, d := range []string{"etc/masterd", "var/lib/masterd"} {
			dst := h.Path("/" + d)
			if _, err := run(ctx, "rm", "-rf", dst); err != nil {
				return err
			}
			if _, err := run(ctx, "cp", "-a", filepath.Join(*disk, d), dst); err != nil {
				return err
			}
		}
	} else {
		key, err := os.ReadFile(filepath.Join(l.dir, "cluster.key"))
		if err != nil {
			return err
		}
		if err := h.WriteFile("/etc/masterd/cluster.key", key, 0o600); err != nil {
			return err
		}
		if err := h.WriteFile("/etc/masterd/masterd.yaml", []byte(l.config(m)), 0o644); err != nil {
			return err
		}
	}
	if l.opts.UnitDropIn != "" {
		if err := h.WriteFile("/etc/systemd/system/masterd.service.d/lab.conf", []byte(l.opts.UnitDropIn), 0o644); err != nil {
			return err
		}
		if _, err := h.Systemctl(ctx, "daemon-reload"); err != nil {
			return err
		}
	}
	if !start {
		l.progress("%s: systemctl enable masterd (not started)", m.Name)
		_, err := h.Systemctl(ctx, "enable", "masterd")
		return err
	}
	l.progress("%s: systemctl enable --now masterd", m.Name)
	// --no-block: a master's start waits for its peers (etcd quorum).
	if _, err := h.Systemctl(ctx, "enable", "--now", "--no-block", "masterd"); err != nil {
		return err
	}
	return nil
}

// config renders masterd.yaml for m.
func (l *Lab) config(m *Master) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by integration/lab for %s\nname: %s\naddress: %s\npeers:\n", m.Name, m.Name, m.Addr)
	for _, p := range l.masters {
		fmt.Fprintf(&b, "  - name: %s\n    address: %s\n", p.Name, p.Addr)
	}
	fmt.Fprintf(&b, "clusterKeyFile: /etc/masterd/cluster.key\ndataDir: /var/lib/masterd\n")
	fmt.Fprintf(&b, "vip:\n  enabled: true\n  address: %s\n  interface: eth0\n  profile: %s\n  fence: %v\n", l.vip, l.opts.VIPProfile, l.opts.Fence)
	mode := "managed"
	if l.opts.KubeBinDir == "" {
		mode = "none"
	}
	fmt.Fprintf(&b, "kubernetes:\n  mode: %s\n  binDir: /usr/local/bin\n", mode)
	b.WriteString(l.opts.ExtraYAML)
	return b.String()
}

// state is what cmd/lab needs to find a running lab from another process.
type state struct {
	Prefix  string      `json:"prefix"`
	VIP     string      `json:"vip"`
	Client  string      `json:"client"`
	Kubectl string      `json:"kubectl,omitempty"`
	Admin   string      `json:"adminConf"`
	Masters []stateHost `json:"masters"`
	Keeper  int         `json:"keeperPID,omitempty"`
	Started time.Time   `json:"started"`
}

type stateHost struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	PID1 int    `json:"pid1"`
}

func (l *Lab) saveState() error {
	st := state{Prefix: l.opts.Prefix, VIP: l.vip.String(), Client: l.clientNS, Started: time.Now().UTC(),
		Keeper: os.Getpid(), Admin: filepath.Join(l.dir, "admin.conf")}
	if l.opts.KubeBinDir != "" {
		st.Kubectl = filepath.Join(l.opts.KubeBinDir, "kubectl")
	}
	for _, m := range l.masters {
		pid := 0
		if h := m.Host(); h != nil {
			pid = h.PID1()
		}
		st.Masters = append(st.Masters, stateHost{Name: m.Name, Addr: m.Addr.String(), PID1: pid})
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(l.dir, "state.json"), b, 0o600)
}

// Masters returns the lab's masters in order (m1 first).
func (l *Lab) Masters() []*Master { return l.masters }

// Master returns the master named name, or nil.
func (l *Lab) Master(name string) *Master {
	for _, m := range l.masters {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// VIP returns the floating address.
func (l *Lab) VIP() netip.Addr { return l.vip }

// ClientNS returns the client's network namespace.
func (l *Lab) ClientNS() string { return l.clientNS }

// Masterd returns the path, on the machine, of the masterd binary of the
// lab's package (extracted at Up), e.g. for `masterd init` of another key.
func (l *Lab) Masterd() string { return filepath.Join(l.dir, "pkg/usr/bin/masterd") }

// KubeEnabled reports whether the lab runs the kube components.
func (l *Lab) KubeEnabled() bool { return l.opts.KubeBinDir != "" }

// Dir returns the lab's state directory on the machine.
func (l *Lab) Dir() string { return l.dir }

// Host returns the master's current lab host (it changes on Reboot).
func (m *Master) Host() *labhost.Host {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.host
}

// Exec runs argv inside the master (all its namespaces).
func (m *Master) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	h := m.Host()
	if h == nil {
		return nil, fmt.Errorf("lab: %s: not booted", m.Name)
	}
	return h.Exec(ctx, argv...)
}

// Journal returns the master's masterd journal (last lines).
func (m *Master) Journal(ctx context.Context, lines int) string {
	out, _ := m.Exec(ctx, "journalctl", "--no-pager", "-o", "cat", "-u", "masterd", "-n", fmt.Sprint(lines))
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(out), "\n") {
		if len(line) > 400 {
			line = line[:400] + "…\n"
		}
		b.WriteString(line)
	}
	return b.String()
}

// JournalSince returns masterd's journal lines of the master logged at or
// after t (the current boot of the host only).
func (m *Master) JournalSince(ctx context.Context, t time.Time) string {
	out, _ := m.Exec(ctx, "journalctl", "--no-pager", "-o", "cat", "-u", "masterd", "--since", "@"+fmt.Sprint(t.Unix()))
	return string(out)
}

// Down powers every host off and removes every namespace, mount, cgroup and
// the state directory. It is idempotent.
func (l *Lab) Down() error {
	l.downOnce.Do(func() {
		var errs []error
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, m := range l.masters {
			if h := m.Host(); h != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := h.Close(); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
		errs = append(errs, Clean(l.opts.Prefix))
		l.downErr = errors.Join(errs...)
	})
	return l.downErr
}

// run runs a command in the machine's namespaces and returns its output.
func run(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
}
