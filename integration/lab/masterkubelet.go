package lab

import (
	"context"
	"errors"
	"fmt"
)

// MasterKubeletYAML is what a lab master's masterd.yaml needs (through
// Options.ExtraYAML) to run its own kubelet on this machine: nodes.masterKubelet
// on, the cgroupfs driver (containerd's runc options here) and the kubelet
// flags KubeletConfig explains (no QoS cgroups, nothing enforced on node
// allocatable, no local storage isolation, swap tolerated).
const MasterKubeletYAML = `nodes:
  cgroupDriver: cgroupfs
  masterKubelet:
    enabled: true
    extraArgs:
      cgroups-per-qos: "false"
      enforce-node-allocatable: ""
      local-storage-capacity-isolation: "false"
      fail-swap-on: "false"
`

// AddMasterRuntime gives master m what masterd's master kubelet needs and
// masterd does not install: kubelet bound into /usr/local/bin (beside the
// control-plane binaries), containerd with runc and the CNI bridge network
// of opts.PodCIDR, running, with opts.Images imported; the kernel settings
// kubelet checks are shown to it as on a worker. opts.Index and
// opts.KubeBinDir's other binaries are not used. masterd's kubelet unit,
// restarting until the runtime answers, then registers the master's Node.
// The lab's Down removes it with the master.
func (l *Lab) AddMasterRuntime(ctx context.Context, m *Master, opts WorkerOptions) error {
	opts.Index = 1 // validated, unused
	if err := opts.validate(); err != nil {
		return fmt.Errorf("lab: %s runtime: %w", m.Name, err)
	}
	if opts.KubeBinDir == "" {
		opts.KubeBinDir = l.opts.KubeBinDir
	}
	if opts.KubeBinDir == "" {
		return errors.New("lab: master runtime: no kube binaries (KubeBinDir)")
	}
	if opts.Snapshotter == "" {
		opts.Snapshotter = "native"
	}
	h := m.Host()
	if h == nil {
		return fmt.Errorf("lab: %s: not booted", m.Name)
	}
	l.progress("%s: container runtime for the master kubelet, pods %v", m.Name, opts.PodCIDR)
	if err := installRuntime(ctx, h, m.Name, opts, []string{"kubelet"}); err != nil {
		return fmt.Errorf("lab: %s runtime: %w", m.Name, err)
	}
	if err := startRuntime(ctx, l, h, m.Name, opts); err != nil {
		return fmt.Errorf("lab: %s runtime: %w", m.Name, err)
	}
	return nil
}
