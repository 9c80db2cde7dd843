package vip

import (
	"fmt"
	"strings"
	"time"
)

// System is one way of holding the VIP.
type System struct {
	Name        string
	Description string
	// Keepalived is true for keepalived systems (masterd's VIP role off).
	Keepalived bool
	// KubeVIP is true for the kube-vip system (masterd's VIP role off).
	KubeVIP bool
	// masterd settings.
	Profile string
	Fence   bool
	// keepalived settings.
	VRRPVersion int
	AdvertInt   string
	// Expect is the failover time the system is built for; it sizes the
	// observation windows.
	Expect time.Duration
}

var systems = []System{
	{Name: "masterd-default", Description: "masterd, vip.profile default (lease 800 ms, renew 500 ms, retry 100 ms), vip.fence true (masterd's defaults)",
		Profile: "default", Fence: true, Expect: time.Second},
	{Name: "masterd-fast", Description: "masterd, vip.profile fast (lease 250 ms, renew 150 ms, retry 30 ms), vip.fence true",
		Profile: "fast", Fence: true, Expect: 300 * time.Millisecond},
	{Name: "keepalived-default", Description: "keepalived (Debian 2.2.7), VRRPv2, advert_int 1, priorities 150/100/50, preempt (defaults); haproxy on VIP:6443 in every master (TCP, /readyz checks every 1 s, rise 2 fall 3)",
		Keepalived: true, VRRPVersion: 2, AdvertInt: "1", Expect: 3600 * time.Millisecond},
	{Name: "keepalived-tuned", Description: "keepalived (Debian 2.2.7), VRRPv3, advert_int 0.1, priorities 150/100/50, preempt; haproxy on VIP:6443 as above",
		Keepalived: true, VRRPVersion: 3, AdvertInt: "0.1", Expect: 400 * time.Millisecond},
	{Name: "kube-vip", Description: "kube-vip " + KubeVIPVersion + " (built from the Go module proxy), ARP mode, control-plane VIP, Kubernetes lease election at its defaults (lease 5 s, renew 3 s, retry 1 s) against the host's own apiserver, restarted 2 s after it exits (as the kubelet restarts its static pod); haproxy on VIP:6443 as above",
		// Lease 5 s + retry 1 s by design; 13-14 s measured here on link
		// cut and partition (one trial each): 8 s keeps the partition hold
		// (2 × Expect + 1 s) beyond the failover.
		KubeVIP: true, Expect: 8 * time.Second},
}

// masterdVIP reports whether masterd manages the VIP in system s.
func (s System) masterdVIP() bool { return !s.Keepalived && !s.KubeVIP }

// daemonUnit is the unit of the VIP daemon of s inside a lab host.
func (s System) daemonUnit() string {
	switch {
	case s.Keepalived:
		return keepalivedUnit
	case s.KubeVIP:
		return kubeVIPUnit
	}
	return "masterd"
}

// AllSystems lists the systems in run order (kube-vip included; the
// default run leaves it out when it is not built, see DefaultConfig).
func AllSystems() []string {
	out := make([]string, len(systems))
	for i, s := range systems {
		out[i] = s.Name
	}
	return out
}

// Systems returns the named systems' descriptions.
func Systems() []System { return append([]System(nil), systems...) }

func systemByName(n string) (System, bool) {
	for _, s := range systems {
		if s.Name == n {
			return s, true
		}
	}
	return System{}, false
}

// Scenario names.
const (
	LinkCut   = "linkcut"
	SIGKILL   = "sigkill"
	SIGTERM   = "sigterm"
	Partition = "partition"
	Stress    = "stress"
	// Crash cuts the holder's link and kills its PID 1: the machine is gone
	// with every process on it (its apiserver and etcd member too).
	Crash = "crash"
	// TakeoverCrash and TakeoverPartition crash or isolate the holder of
	// the scheduler or controller-manager role (not the VIP's) and measure
	// the work a user waits for: a new Pod bound, a scaled Deployment's new
	// pod created. masterd systems only: the kube components' takeover does
	// not depend on who holds the VIP.
	TakeoverCrash     = "takeover-crash"
	TakeoverPartition = "takeover-partition"
)

// AllScenarios lists the scenarios in run order.
func AllScenarios() []string {
	return []string{LinkCut, SIGKILL, SIGTERM, Partition, Stress, Crash, TakeoverCrash, TakeoverPartition}
}

// apiScenario reports whether the API probes run in scenario sc: the
// faults that take the holder's path to the apiserver away.
func apiScenario(sc string) bool {
	return sc == LinkCut || sc == SIGKILL || sc == Partition || sc == Crash
}

// takeoverScenario reports whether sc measures the kube components'
// takeover rather than the VIP's.
func takeoverScenario(sc string) bool { return sc == TakeoverCrash || sc == TakeoverPartition }

// ScenarioDescriptions says what each scenario does, for the note.
func ScenarioDescriptions() map[string]string {
	return map[string]string{
		LinkCut:           "The holder's bridge port goes down (a pulled cable; its namespace keeps the VIP but is off the wire). Outage: longest gap between ping replies at the client (10 ms pings) from the fault until the client is served again.",
		SIGKILL:           "The VIP daemon dies. masterd: `systemctl kill -s SIGKILL masterd` (systemd restarts it after 2 s). keepalived: SIGSTOP the parent, SIGKILL the VRRP child, SIGKILL the parent. kube-vip: `systemctl kill -s SIGKILL bench-kube-vip` (restarted after 2 s). The host's kernel stays up with its link: a dead keepalived or kube-vip leaves the VIP on eth0, answering.",
		SIGTERM:           "Graceful stop: `systemctl stop masterd` / `bench-keepalived` / `bench-kube-vip` (SIGTERM). Outage as for linkcut.",
		Partition:         "nftables in the holder's namespace drop every packet from and to the other masters (and VRRP multicast) for a hold time, then the partition heals. Outage: the longer of the longest ping gap and the longest time the client's neighbour entry for the VIP pointed at no right holder (the isolated master is never right while isolated) — measured until the client reaches the right holder again after the heal. Post-heal: the same measure from the heal on.",
		Crash:             "The holder crashes: its bridge port goes down, then its PID 1 is SIGKILLed (every process of the host dies: VIP daemon, etcd member, kube-apiserver, haproxy). Afterwards the host boots again with its disk and rejoins before the next trial.",
		TakeoverCrash:     "The holder of the scheduler role (odd trials) or of the controller-manager role (even trials) crashes as in crash. Right after the fault the client creates a Pod and scales a Deployment up by one through the VIP (retrying until the API takes them); figures: the time from the fault until the Pod is bound to a node, and until the Deployment's new pod exists.",
		TakeoverPartition: "As takeover-crash, but the role holder is isolated from the other masters (as in partition) for 15 s or until both figures are in (at most 60 s), then healed.",
		Stress:            "stress-ng --cpu 4 on the holder (bounded), as its own transient unit in the holder's host (`systemd-run --wait --unit bench-stress`): its own session and scheduler autogroup, like a neighbour service, so it competes with the VIP daemon rather than with the benchmark's probes. Any move of the VIP away from it is a false failover.",
	}
}

// keepalivedConf renders keepalived.conf for master i (0-based) of the lab.
func keepalivedConf(s System, i int, vip string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by bench/vip for %s\nglobal_defs {\n  router_id bench-m%d\n", s.Name, i+1)
	if s.VRRPVersion == 3 {
		b.WriteString("  vrrp_version 3\n")
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, `vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int %s
  virtual_ipaddress {
    %s/32 dev eth0
  }
}
`, 150-50*i, s.AdvertInt, vip)
	return b.String()
}
