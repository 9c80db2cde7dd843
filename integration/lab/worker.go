package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/masterd/masterd/integration/labhost"
)

// WorkerOptions describe a worker host: a lab host (real systemd in its own
// network namespace on the lab bridge) with containerd, runc, the CNI
// plugins, kubelet, kube-proxy and kubeadm installed, containerd running and
// the given images imported. Kubelet is installed but not started: see
// (*Worker).StartKubelet, or run kubeadm join in it.
type WorkerOptions struct {
	// Index numbers the worker: host <prefix>-w<Index>, bridge port w<Index>,
	// address .50+Index of the lab subnet. 1 to 49.
	Index int
	// ContainerdBinDir holds containerd, ctr and containerd-shim-runc-v2
	// (integration/containerd/build.sh).
	ContainerdBinDir string
	// RuncWrap is the runcwrap binary (integration/containerd/runcwrap), which
	// containerd runs in place of runc; empty: containerd runs
	// /usr/sbin/runc itself. Needed where the machine's cgroup v2 hierarchy
	// lacks the cpu, memory and pids controllers (a hybrid hierarchy).
	RuncWrap string
	// KubeBinDir holds kubelet, kube-proxy, kubeadm and kubectl. Empty: the
	// lab's.
	KubeBinDir string
	// Images maps image names to OCI archives (integration/images) to import
	// into containerd's k8s.io namespace.
	Images map[string]string
	// PauseImage is containerd's sandbox image; it must be among Images.
	PauseImage string
	// PodCIDR is the range the worker's bridge CNI network hands out.
	PodCIDR netip.Prefix
	// Snapshotter is containerd's snapshotter: "native" (default; works on
	// the lab's overlay root) or "overlayfs" (containerd's default; an
	// overlay upper layer cannot live on the lab's overlay root, so the
	// worker then gets a tmpfs on /var/lib/containerd).
	Snapshotter string
}

// Worker is a worker host of the lab.
type Worker struct {
	// Name is the host name, network namespace and Kubernetes node name.
	Name string
	// Addr is its address on the lab bridge.
	Addr netip.Addr
	// Port is its veth on the bridge (in the bridge namespace).
	Port string
	// PodCIDR is the range of its pods' addresses.
	PodCIDR netip.Prefix

	lab  *Lab
	opts WorkerOptions
	host *labhost.Host
}

// kubeletSysctls are the kernel settings kubelet checks at start (its
// setupKernelTunables) and, finding another value, writes. The sysctls are
// the machine's, shared by every namespace: a lab host's /proc/sys is
// read-only, and a test must not change the machine's kernel.panic. The
// worker shows kubelet the values it wants through files bind-mounted over
// these (in the worker's mount namespace only).
var kubeletSysctls = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// workerBinaries are bound from KubeBinDir into the worker's /usr/local/bin.
var workerKubeBinaries = []string{"kubelet", "kube-proxy", "kubeadm", "kubectl"}

// containerdBinaries are bound from ContainerdBinDir into /usr/local/bin.
var containerdBinaries = []string{"containerd", "ctr", "containerd-shim-runc-v2"}

// AddWorker wires a worker host to the lab bridge, boots it and installs and
// starts its container runtime. The lab's Down (through Clean) removes it;
// Close removes it earlier.
func (l *Lab) AddWorker(ctx context.Context, opts WorkerOptions) (*Worker, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("lab: worker: %w", err)
	}
	if opts.KubeBinDir == "" {
		opts.KubeBinDir = l.opts.KubeBinDir
	}
	if opts.KubeBinDir == "" {
		return nil, errors.New("lab: worker: no kube binaries (KubeBinDir)")
	}
	if opts.Snapshotter == "" {
		opts.Snapshotter = "native"
	}
	base := l.opts.Subnet.Masked().Addr().As4()
	base[3] = byte(50 + opts.Index)
	w := &Worker{
		Name:    fmt.Sprintf("%s-w%d", l.opts.Prefix, opts.Index),
		Addr:    netip.AddrFrom4(base),
		Port:    fmt.Sprintf("w%d", opts.Index),
		PodCIDR: opts.PodCIDR,
		lab:     l,
		opts:    opts,
	}
	if err := w.up(ctx); err != nil {
		if cerr := w.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, fmt.Errorf("lab: worker %s: %w", w.Name, err)
	}
	return w, nil
}

func (o WorkerOptions) validate() error {
	var errs []error
	if o.Index < 1 || o.Index > 49 {
		errs = append(errs, fmt.Errorf("index %d: want 1 to 49", o.Index))
	}
	for _, b := range containerdBinaries {
		if _, err := os.Stat(filepath.Join(o.ContainerdBinDir, b)); err != nil {
			errs = append(errs, fmt.Errorf("containerd binaries: %w (run integration/containerd/build.sh)", err))
		}
	}
	if o.RuncWrap != "" {
		if _, err := os.Stat(o.RuncWrap); err != nil {
			errs = append(errs, fmt.Errorf("runcwrap: %w", err))
		}
	}
	if _, ok := o.Images[o.PauseImage]; !ok || o.PauseImage == "" {
		errs = append(errs, fmt.Errorf("pause image %q: not among the images to import", o.PauseImage))
	}
	if !o.PodCIDR.IsValid() || !o.PodCIDR.Addr().Is4() || o.PodCIDR.Bits() > 28 || o.PodCIDR != o.PodCIDR.Masked() {
		errs = append(errs, fmt.Errorf("pod CIDR %v: want an IPv4 network of at least 16 addresses", o.PodCIDR))
	}
	switch o.Snapshotter {
	case "", "native", "overlayfs":
	default:
		errs = append(errs, fmt.Errorf("snapshotter %q: want native or overlayfs", o.Snapshotter))
	}
	return errors.Join(errs...)
}

func (w *Worker) up(ctx context.Context) error {
	l := w.lab
	l.progress("%s: network %s on %s, pods %v", w.Name, w.Addr, l.brNS, w.PodCIDR)
	for _, c := range [][]string{
		{"ip", "netns", "add", w.Name},
		{"ip", "-n", w.Name, "link", "set", "lo", "up"},
		{"ip", "-n", l.brNS, "link", "add", w.Port, "type", "veth", "peer", "name", "eth0", "netns", w.Name},
		{"ip", "-n", l.brNS, "link", "set", w.Port, "master", "br0", "up"},
		{"ip", "-n", w.Name, "addr", "add", netip.PrefixFrom(w.Addr, 24).String(), "dev", "eth0"},
		{"ip", "-n", w.Name, "link", "set", "eth0", "up"},
		// A default route, as a node has: a connection from the worker
		// itself to a ClusterIP needs a route before kube-proxy's rules
		// rewrite its destination.
		{"ip", "-n", w.Name, "route", "add", "default", "dev", "eth0"},
	} {
		if _, err := run(ctx, c...); err != nil {
			return err
		}
	}
	// The masters route the worker's pod range to it, as a host-gw CNI
	// would: a pod reaches the apiserver (Service kubernetes, DNATed by
	// kube-proxy to a master) with its own address, and the answer must
	// find its way back.
	for _, m := range l.masters {
		if _, err := run(ctx, "ip", "-n", m.Name, "route", "replace", w.PodCIDR.String(), "via", w.Addr.String()); err != nil {
			return fmt.Errorf("route %v on %s: %w", w.PodCIDR, m.Name, err)
		}
	}
	l.progress("%s: booting systemd", w.Name)
	h, err := labhost.Boot(ctx, labhost.Options{Name: w.Name, NetNS: w.Name})
	if err != nil {
		return err
	}
	w.host = h
	if _, err := h.WaitRunning(ctx); err != nil {
		return err
	}
	if err := installRuntime(ctx, h, w.Name, w.opts, workerKubeBinaries); err != nil {
		return err
	}
	files := map[string]string{
		"/etc/systemd/system/kubelet.service":                   kubeletUnit,
		"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf": kubeletKubeadmDropIn,
		"/etc/default/kubelet":                                  fmt.Sprintf("KUBELET_EXTRA_ARGS=--node-ip=%s\n", w.Addr),
	}
	for p, content := range files {
		if err := h.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return startRuntime(ctx, l, h, w.Name, w.opts)
}

// startRuntime reloads systemd, starts containerd, waits for its CRI plugin
// and imports the images.
func startRuntime(ctx context.Context, l *Lab, h *labhost.Host, name string, opts WorkerOptions) error {
	if _, err := h.Systemctl(ctx, "daemon-reload"); err != nil {
		return err
	}
	l.progress("%s: systemctl enable --now containerd", name)
	if _, err := h.Systemctl(ctx, "enable", "--now", "containerd"); err != nil {
		return fmt.Errorf("%w\n%s", err, journal(ctx, h, "containerd", 40))
	}
	if err := waitContainerd(ctx, h); err != nil {
		return err
	}
	names := make([]string, 0, len(opts.Images))
	for n := range opts.Images {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l.progress("%s: import %s", name, n)
		if _, err := h.Exec(ctx, "ctr", "--namespace", "k8s.io", "images", "import",
			"--snapshotter", opts.Snapshotter, opts.Images[n]); err != nil {
			return fmt.Errorf("import %s: %w", n, err)
		}
	}
	return nil
}

// installRuntime binds kubeBins and containerd's binaries into the host,
// prepares what kubelet checks and writes containerd's configuration and
// unit and the CNI network (a worker's, or a master's whose kubelet masterd
// runs).
func installRuntime(ctx context.Context, h *labhost.Host, name string, opts WorkerOptions, kubeBins []string) error {
	bind := func(src, dst string) error {
		if err := h.WriteFile(dst, nil, 0o755); err != nil {
			return err
		}
		_, err := h.Exec(ctx, "mount", "--bind", "-o", "ro", src, dst)
		return err
	}
	for _, b := range kubeBins {
		if err := bind(filepath.Join(opts.KubeBinDir, b), "/usr/local/bin/"+b); err != nil {
			return err
		}
	}
	for _, b := range containerdBinaries {
		if err := bind(filepath.Join(opts.ContainerdBinDir, b), "/usr/local/bin/"+b); err != nil {
			return err
		}
	}
	runc := "/usr/sbin/runc"
	if opts.RuncWrap != "" {
		runc = "/usr/local/sbin/runc-lab"
		if err := bind(opts.RuncWrap, runc); err != nil {
			return err
		}
	}
	// kubelet's OOM watcher reads the kernel log; a lab host's /dev has
	// only the basic nodes. The static pod directory is what the packages
	// create.
	if _, err := h.Exec(ctx, "sh", "-c", "[ -e /dev/kmsg ] || mknod -m 600 /dev/kmsg c 1 11; mkdir -p /etc/kubernetes/manifests"); err != nil {
		return err
	}
	for name, value := range kubeletSysctls {
		src := "/run/lab-sysctl/" + strings.ReplaceAll(name, "/", ".")
		if err := h.WriteFile(src, []byte(value+"\n"), 0o444); err != nil {
			return err
		}
		if _, err := h.Exec(ctx, "mount", "--bind", "-o", "ro", src, "/proc/sys/"+name); err != nil {
			return err
		}
	}
	if opts.Snapshotter == "overlayfs" {
		if _, err := h.Exec(ctx, "mkdir", "-p", "/var/lib/containerd"); err != nil {
			return err
		}
		if _, err := h.Exec(ctx, "mount", "-t", "tmpfs", "-o", "mode=711", "tmpfs", "/var/lib/containerd"); err != nil {
			return err
		}
	}
	files := map[string]string{
		"/etc/containerd/config.toml":            containerdConfig(name, opts, runc),
		"/etc/systemd/system/containerd.service": containerdUnit,
		"/etc/cni/net.d/10-lab.conflist":         cniConfig(opts.PodCIDR),
		"/etc/crictl.yaml":                       "runtime-endpoint: unix:///run/containerd/containerd.sock\n",
	}
	for p, content := range files {
		if err := h.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// containerdConfig is containerd 2.x's configuration (version 3) for the
// host name: the CRI plugin with the chosen snapshotter, the lab's pause
// image pinned, runc through cgroupfs (kubelet's driver here, see
// KubeletConfig) and the Debian CNI plugins.
func containerdConfig(name string, opts WorkerOptions, runc string) string {
	return fmt.Sprintf(`# written by integration/lab for %s
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = %q
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %q

[plugins."io.containerd.cri.v1.runtime"]
  # kubelet asks for negative OOM scores (-998 for sandboxes); lowering a
  # score needs CAP_SYS_RESOURCE, which these machines do not grant. Clamp
  # them to containerd's own score instead of failing in runc init.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = %q
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "/etc/cni/net.d"

# ctr images import unpacks through the transfer service, which unpacks
# only for the platforms and snapshotters listed here (default: overlayfs).
[plugins."io.containerd.transfer.v1.local"]
  [[plugins."io.containerd.transfer.v1.local".unpack_config]]
    platform = "linux/%s"
    snapshotter = %q
    differ = "walking"
`, name, opts.Snapshotter, opts.PauseImage, runc, runtime.GOARCH, opts.Snapshotter)
}

// cniConfig is a bridge network (cni0, the host the gateway) with
// host-local addresses from the pod CIDR. No masquerading: pod traffic
// never leaves the lab's namespaces, and the masters route a worker's pod
// range to it (see up).
func cniConfig(podCIDR netip.Prefix) string {
	gw := podCIDR.Addr().Next()
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "lab",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
`, podCIDR.String(), gw.String())
}

const containerdUnit = `[Unit]
Description=containerd container runtime (masterd lab worker)
After=network.target local-fs.target

[Service]
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=1
LimitNOFILE=infinity
TasksMax=infinity

[Install]
WantedBy=lab.target
`

// kubeletUnit and kubeletKubeadmDropIn are the unit and drop-in the
// Kubernetes packages install: kubeadm join writes
// /var/lib/kubelet/kubeadm-flags.env, config.yaml and the bootstrap
// kubeconfig, and restarts this unit.
const kubeletUnit = `[Unit]
Description=kubelet: The Kubernetes Node Agent
Wants=network-online.target containerd.service
After=network-online.target containerd.service

[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=2

[Install]
WantedBy=lab.target
`

const kubeletKubeadmDropIn = `[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

// waitContainerd waits until the CRI plugin answers (ctr plugins ls shows
// it ok).
func waitContainerd(ctx context.Context, h *labhost.Host) error {
	var last []byte
	for {
		out, err := h.Exec(ctx, "ctr", "plugins", "ls")
		if err == nil && bytes.Contains(out, []byte("io.containerd.grpc.v1")) && criOK(out) {
			return nil
		}
		last = out
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd not ready: %w: %s\n%s", ctx.Err(), bytes.TrimSpace(last), journal(context.Background(), h, "containerd", 40))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// criOK tells whether `ctr plugins ls` lists the CRI gRPC plugin as ok.
func criOK(out []byte) bool {
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "io.containerd.grpc.v1" && f[1] == "cri" {
			return f[len(f)-1] == "ok"
		}
	}
	return false
}

// KubeletConfig returns the KubeletConfiguration the worker's kubelet runs
// with, for the cluster's CA file, DNS address and domain. It fits the lab:
//   - cgroupsPerQOS off and nothing enforced on node allocatable: kubelet
//     would write cpu.weight and memory.max into pod cgroups, and a hybrid
//     machine's cgroup v2 hierarchy has neither controller;
//   - cgroupfs driver, as containerd's runc options say (SystemdCgroup false);
//   - localStorageCapacityIsolation off: the root is an overlay on tmpfs,
//     which cadvisor does not map to a device for the rootfs capacity.
func KubeletConfig(caFile string, dns netip.Addr, domain string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
clusterDNS:
- %s
clusterDomain: %s
failSwapOn: false
staticPodPath: /etc/kubernetes/manifests
rotateCertificates: true
resolvConf: /etc/resolv.conf
`, caFile, dns, domain)
}

// StartKubelet writes kubelet's kubeconfig, the cluster CA and config and
// starts kubelet.service: the way to run kubelet without kubeadm (a
// kubeconfig with a node client certificate, or a bootstrap kubeconfig as
// bootstrap when bootstrap is true).
func (w *Worker) StartKubelet(ctx context.Context, kubeconfig, caPEM []byte, config string, bootstrap bool) error {
	h := w.host
	kc := "/etc/kubernetes/kubelet.conf"
	if bootstrap {
		kc = "/etc/kubernetes/bootstrap-kubelet.conf"
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{kc, kubeconfig, 0o600},
		{"/etc/kubernetes/pki/ca.crt", caPEM, 0o644},
		{"/var/lib/kubelet/config.yaml", []byte(config), 0o644},
	} {
		if err := h.WriteFile(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	if _, err := h.Systemctl(ctx, "enable", "--now", "kubelet"); err != nil {
		return fmt.Errorf("lab: %s: start kubelet: %w\n%s", w.Name, err, w.Journal(ctx, "kubelet", 40))
	}
	return nil
}

// Host returns the worker's lab host.
func (w *Worker) Host() *labhost.Host { return w.host }

// Exec runs argv inside the worker (all its namespaces).
func (w *Worker) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	if w.host == nil {
		return nil, fmt.Errorf("lab: %s: not booted", w.Name)
	}
	return w.host.Exec(ctx, argv...)
}

// Journal returns the last lines of unit's journal in the worker.
func (w *Worker) Journal(ctx context.Context, unit string, lines int) string {
	if w.host == nil {
		return ""
	}
	return journal(ctx, w.host, unit, lines)
}

// journal returns the last lines of unit's journal in host h.
func journal(ctx context.Context, h *labhost.Host, unit string, lines int) string {
	out, _ := h.Exec(ctx, "journalctl", "--no-pager", "-o", "cat", "-u", unit, "-n", fmt.Sprint(lines))
	return string(out)
}

// Close powers the worker off and removes its namespace (the lab's Down
// does it too). It is idempotent.
func (w *Worker) Close() error {
	var errs []error
	if w.host != nil {
		errs = append(errs, w.host.Close())
	}
	if _, err := os.Stat(filepath.Join("/run/netns", w.Name)); err == nil {
		killInNetNS([]string{w.Name})
		if _, err := run(context.Background(), "ip", "netns", "delete", w.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// FindContainerdBinDir returns $CONTAINERD_BIN_DIR, or the cache directory
// integration/containerd/build.sh fills for $CONTAINERD_VERSION (default
// v2.4.2), if it holds the binaries; else "".
func FindContainerdBinDir() string {
	return findBinDir("CONTAINERD_BIN_DIR", "containerd", "CONTAINERD_VERSION", "v2.4.2", containerdBinaries)
}

// kubeletPatch is the patch kubeadm join applies to the KubeletConfiguration
// it downloads from the cluster (kubeadm's --patches, target
// kubeletconfiguration): the lab settings KubeletConfig explains.
const kubeletPatch = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
failSwapOn: false
`

// KubeadmJoin runs `kubeadm join` with args (as `masterd token create
// --print-join-command` prints them, without the leading "kubeadm join") in
// the worker and returns its output. The lab adds what this machine needs:
// the kubelet patch above, the containerd socket, and SystemVerification
// among the ignored preflight errors (kubeadm's system check wants the cpu,
// memory and pids cgroup controllers, which a hybrid machine keeps in v1).
// IP forwarding, which kubeadm's preflight requires, is turned on in the
// worker's network namespace first.
func (w *Worker) KubeadmJoin(ctx context.Context, args ...string) ([]byte, error) {
	return w.kubeadmJoin(ctx, append(args, "--cri-socket", "unix:///run/containerd/containerd.sock",
		"--patches", "/etc/kubernetes/lab-patches",
		"--ignore-preflight-errors", "SystemVerification", "--v", "1"))
}

// KubeadmJoinBounded runs `kubeadm join` as KubeadmJoin does, from a
// JoinConfiguration (the configuration the command line's flags stand for)
// that also bounds kubeadm's discovery to discovery (its default is 5
// minutes, which no flag changes): for joins expected to fail discovering
// the cluster.
func (w *Worker) KubeadmJoinBounded(ctx context.Context, endpoint, token, caCertHash string, discovery time.Duration) ([]byte, error) {
	config := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: %q
    token: %q
    caCertHashes: [%q]
  tlsBootstrapToken: %q
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  ignorePreflightErrors: [SystemVerification]
patches:
  directory: /etc/kubernetes/lab-patches
timeouts:
  discovery: %s
`, endpoint, token, caCertHash, token, discovery)
	// The token is a credential: the file is 0600 and removed after.
	const path = "/etc/kubernetes/lab-join.yaml"
	if err := w.host.WriteFile(path, []byte(config), 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(w.host.Path(path))
	return w.kubeadmJoin(ctx, []string{"--config", path, "--v", "1"})
}

func (w *Worker) kubeadmJoin(ctx context.Context, args []string) ([]byte, error) {
	h := w.host
	if err := h.WriteFile("/etc/kubernetes/lab-patches/kubeletconfiguration+merge.yaml", []byte(kubeletPatch), 0o644); err != nil {
		return nil, err
	}
	if _, err := h.Exec(ctx, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"); err != nil {
		return nil, err
	}
	// kubeadm runs under timeout inside the worker: ending nsenter when ctx
	// ends would leave kubeadm running (it retries discovery for minutes)
	// and holding the output pipe.
	limit := 300 * time.Second
	if d, ok := ctx.Deadline(); ok {
		limit = time.Until(d) - 2*time.Second
	}
	if limit < time.Second {
		return nil, fmt.Errorf("lab: %s: kubeadm join: no time left (%w)", w.Name, context.DeadlineExceeded)
	}
	argv := append([]string{"timeout", "--kill-after=5", fmt.Sprintf("%.0f", limit.Seconds()), "kubeadm", "join"}, args...)
	out, err := h.Exec(ctx, argv...)
	if err != nil {
		return out, fmt.Errorf("lab: %s: kubeadm join: %w", w.Name, err)
	}
	return out, nil
}
