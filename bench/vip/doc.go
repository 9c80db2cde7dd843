// Package vip is the VIP failover benchmark of `make bench` / `make
// bench-vip` (issues 5, 11 and 13): masterd (default profile and fast
// profile, both with the kernel fence, on by default) side by side with keepalived 2.2.7 (VRRPv2 advert_int
// 1; VRRPv3 advert_int 0.1), in one run, on one lab (integration/lab: three
// masters with real systemd in network namespaces, a client namespace, one
// bridge), with one client.
//
// # Systems
//
// The lab boots once with masterd's defaults (profile default, fence on). Switching system
// rewrites /etc/masterd/masterd.yaml in every host and restarts masterd:
// vip.profile/vip.fence for masterd's fast profile, vip.enabled false for the
// keepalived systems (masterd keeps running, etcd included, but no longer
// manages the VIP, so only keepalived does). keepalived runs in each host as
// the transient unit bench-keepalived (systemd-run, KillMode=process as in
// Debian's unit), --vrrp only, priorities 150/100/50, default preemption, the
// same VIP on eth0; haproxy runs in each host as bench-haproxy (haproxyConf:
// TCP on VIP:6443 with the `transparent` bind, backends the three
// apiservers, /readyz checks), so the API time through the VIP is measured
// for the classic stack as for masterd's balancer.
//
// kube-vip (optional, issue 11; integration/kubevip/build.sh builds it from
// the Go module proxy) runs in each host as bench-kube-vip: ARP mode, the
// control-plane VIP, leader election through a Kubernetes lease at its
// default timings, against the host's own apiserver (admin kubeconfig,
// "kubernetes" mapped to the host's address in /etc/hosts, as kube-vip's
// static-pod setup maps it to the local apiserver); masterd's VIP role is
// off and haproxy serves VIP:6443 as for keepalived. Restart=always with a
// 2 s delay stands in for the kubelet (kube-vip exits when it loses its
// lease). SIGKILL is `systemctl kill -s SIGKILL`, SIGTERM `systemctl stop`.
//
// # Scenarios
//
// Each trial finds the holder (the one master namespace with the VIP in
// `ip addr`), starts a 10 ms ping from the client, a 10 ms sampler of `ip
// addr` in every master namespace and of the client's neighbour entry for
// the VIP, and a 20 ms ARP who-has probe from the client (distinct MACs
// answering), waits 0.5 s, injects the fault into the holder and observes
// until the client is served again (then 1 s more) or a window ends:
//
//	linkcut    the holder's bridge port goes down (a pulled cable)
//	sigkill    masterd: systemctl kill -s SIGKILL masterd (systemd restarts
//	           it); keepalived: SIGSTOP the parent, SIGKILL the VRRP child,
//	           SIGKILL the parent (killing only the parent makes the child
//	           shut down gracefully)
//	sigterm    systemctl stop of masterd / bench-keepalived (graceful)
//	partition  nftables in the holder's namespace drop every packet from and
//	           to the other masters (and VRRP multicast) for a hold time, then
//	           heal; measured until the client's neighbour entry points at the
//	           right holder (never the isolated one) and pings flow
//	stress     stress-ng --cpu 4 on the holder for a bounded time, as the
//	           transient unit bench-stress in the holder's host (its own
//	           session and scheduler autogroup, like a neighbour service;
//	           started from the benchmark it would share the benchmark's
//	           autogroup and starve its probes instead): moves of
//	           the VIP are false failovers
//
// Then the fault is undone (link up, daemon started, partition healed) and
// the harness waits until one namespace holds the VIP steadily and the
// client reaches it; if the client's neighbour entry stays on a MAC that no
// longer holds the VIP, the harness flushes it and records it
// (StaleNeighbour): a client-visible blackout keepalived leaves after a
// heal.
//
// Trials run round-robin over the scenarios of a system, so a run cut short
// by its time budget (split evenly over the systems left) still has every
// cell measured. With the kube binaries, linkcut and sigkill also measure the
// time to the first successful `kubectl get --raw /readyz` through the VIP.
//
// # Footprint
//
// RSS and idle CPU per master of masterd (etcd embedded, VIP and balancer)
// against the classic stack: a standalone three-member etcd of the same
// version (bench/etcd/etcdserver) with masterd's etcd settings and
// certificates, keepalived and haproxy, each a unit in every host, summed
// over the unit's processes. With the kube binaries both stacks serve the
// same idle control plane: masterd its own; for the classic stack masterd is
// stopped and the same kube-apiserver command line (read from the running
// process) runs on every master pointed at the standalone etcd, with one
// kube-scheduler and one kube-controller-manager. The kube components are
// measured for a note but not counted. RunFootprint measures only this.
package vip
