package units

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"
)

// KubeletUnit is the unit of the kubelet masterd runs on a master that
// enables it. Not kubelet.service: the Kubernetes packages' drop-ins
// (kubelet.service.d/10-kubeadm.conf) apply to any unit of that name,
// wherever its file lives, and would replace masterd's command line.
const KubeletUnit = "masterd-kubelet.service"

// KubeletConfig is what the master kubelet's command line is generated
// from. The settings kubelet reads from a file (authentication, taints,
// cluster DNS) are in ConfigFile, which the agent writes.
type KubeletConfig struct {
	// BinDir holds kubelet.
	BinDir string
	// NodeName is the Node's name (--hostname-override): the master's name,
	// the CN of its client certificate (system:node:<name>).
	NodeName string
	// NodeIP is the address the Node reports (--node-ip): the master's own.
	NodeIP string
	// Kubeconfig is kubelet's credential to the apiserver (--kubeconfig).
	Kubeconfig string
	// ConfigFile is its KubeletConfiguration (--config).
	ConfigFile string
	// ExtraArgs, "--flag=value" or "--flag"; a flag given here replaces the
	// generated flag of the same name, others are appended.
	ExtraArgs []string
}

// Validate reports every problem at once.
func (k KubeletConfig) Validate() error {
	var errs []error
	if !filepath.IsAbs(k.BinDir) {
		errs = append(errs, fmt.Errorf("units: kubelet bin_dir %q: must be an absolute path", k.BinDir))
	}
	if k.NodeName == "" {
		errs = append(errs, errors.New("units: kubelet node_name: required"))
	}
	if net.ParseIP(k.NodeIP) == nil {
		errs = append(errs, fmt.Errorf("units: kubelet node_ip %q: not an IP address", k.NodeIP))
	}
	for _, p := range []struct{ name, path string }{{"kubeconfig", k.Kubeconfig}, {"config_file", k.ConfigFile}} {
		if !filepath.IsAbs(p.path) {
			errs = append(errs, fmt.Errorf("units: kubelet %s %q: must be an absolute path", p.name, p.path))
		}
	}
	for _, a := range k.ExtraArgs {
		if _, _, err := splitFlag(a); err != nil {
			errs = append(errs, fmt.Errorf("units: kubelet extra_args: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Kubelet returns the master kubelet's definition. It runs on every master
// that enables it, whatever roles the master holds (like kube-apiserver).
func (k KubeletConfig) Kubelet() (Definition, error) {
	if err := k.Validate(); err != nil {
		return Definition{}, err
	}
	f := flags{}
	f.set("config", k.ConfigFile)
	f.set("kubeconfig", k.Kubeconfig)
	f.set("hostname-override", k.NodeName)
	f.set("node-ip", k.NodeIP)
	if err := f.override(k.ExtraArgs); err != nil {
		return Definition{}, fmt.Errorf("units: kubelet: %w", err)
	}
	return Definition{
		Description: "Kubernetes node agent on this master (managed by masterd)",
		ExecStart:   append([]string{filepath.Join(k.BinDir, "kubelet")}, f.args()...),
		// The container runtime first when it is a unit here (an After= and
		// Wants= on a unit that does not exist change nothing).
		After: []string{"network-online.target", "containerd.service"},
		// The packages' kubelet.service restarts after 10 s; 2 s brings a
		// kubelet that waited for its runtime up sooner, and systemd's
		// start limit is off for managed units.
		RestartDelay: 2 * time.Second,
		// kubelet sets its own oom_score_adj (-999, --oom-score-adj).
		LimitNOFILE: 1048576,
	}, nil
}
