package agent

import (
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Node is what Build assembles for Run: the components in start order and the
// process-wide hooks.
type Node struct {
	Components []Component
	// Gatherer serves /metrics: masterd's registry plus what libraries register
	// globally (etcd's own metrics).
	Gatherer prometheus.Gatherer
	// Liveness gates the systemd watchdog and /healthz.
	Liveness func() error
}

// Build assembles the components of this node from cfg, in start order:
//
//	pki → etcd → kube (kube-apiserver ready) → lb → vip → election → membership
//
// The election starts last: a role may only be taken once everything it drives
// is in place, and it is the first to stop, handing every held role over while
// the VIP and units can still be released. cfg must be valid.
func Build(cfg Config, log *slog.Logger, reg *prometheus.Registry) (*Node, error) {
	shared := &node{cfg: cfg, log: log, reg: reg}
	pkiC, err := newPKIComponent(shared)
	if err != nil {
		return nil, err
	}
	etcdC := &etcdComponent{n: shared}
	// joinGate (H6, issue 22): a master the membership does not list never
	// joins etcd.
	n := &Node{
		Gatherer:   prometheus.Gatherers{reg, libraryGatherer{prometheus.DefaultGatherer}},
		Components: []Component{pkiC, joinGate{n: shared}, etcdC},
	}
	n.Components = append(n.Components, &firewallComponent{n: shared, etcd: etcdC}) // H4, issue 25
	el := &electionComponent{n: shared, handlers: map[string]roleHandler{}, health: map[string]healthSource{}}
	if cfg.VIP.Enabled {
		// etcd's leader is kept off the VIP holder (see leaderAway).
		etcdC.vipHeld = func() bool { return el.holds(RoleVIP) }
	}

	// A role's eligibility: the local apiserver ready when masterd runs it,
	// else the etcd member healthy.
	fit := healthSource(etcdC.Check)
	// Versions and the skew policy (H4, issue 24): published before the
	// kube units start, which it may refuse.
	vc := newVersionsComponent(shared, etcdC)
	n.Components = append(n.Components, vc)
	if cfg.Kubernetes.Mode != "none" {
		kube := &kubeComponent{n: shared, skew: vc}
		if externalSigner(cfg) {
			// The apiserver's token signer serves before it starts
			// (sakeys.go, issue 24).
			sc, err := newSignerComponent(shared, etcdC)
			if err != nil {
				return nil, err
			}
			sc.changed = func() { kube.checkCredentials() }
			n.Components = append(n.Components, sc)
		}
		// The expiry metric reports the certificates the leader-only units
		// started with, not only the files.
		pkiC.running = kube.runningCerts
		// A renewal restarts the leader-only units at once (renew.go).
		pkiC.restartStale, pkiC.waitRestarts = kube.checkCredentials, kube.waitRestarts
		n.Components = append(n.Components, kube)
		if cfg.Kubernetes.Mode == "managed" && cfg.Nodes.MasterKubelet.Enabled {
			n.Components = append(n.Components, newKubeletComponent(shared, kube)) // H7, issue 23
		}
		fit = kube.Check
		el.handlers[RoleScheduler] = &leaderUnit{c: kube, unit: func() string { return kube.scheduler }}
		el.handlers[RoleControllerManager] = &leaderUnit{c: kube, unit: func() string { return kube.controllerManager }}
	}
	// Every role's eligibility starts with fit: once per health round.
	fit = onePerRound(fit)
	for role := range cfg.RoleTimings() {
		el.health[role] = roleFit(fit, vc, role)
	}
	if !cfg.VIP.Enabled || !cfg.VIP.Fence {
		n.Components = append(n.Components, staleFence{n: shared})
	}
	var lbC *lbComponent
	if cfg.VIP.Enabled {
		if cfg.VIP.Balancer.Enabled {
			lbC = &lbComponent{n: shared}
			n.Components = append(n.Components, lbC)
			el.beforeHandover = lbC.drain
			el.peerDown = lbC.peerDown
		}
		v := &vipComponent{n: shared}
		n.Components = append(n.Components, v)
		el.handlers[RoleVIP] = v
	}
	n.Components = append(n.Components, el)
	// Membership as data (H6, issue 22): the record in etcd feeds the
	// election's voters and gossip addresses; starts after the election.
	mc := newMembershipComponent(shared, etcdC, el)
	if lbC != nil {
		mc.onRecord = lbC.setMasters
	}
	n.Components = append(n.Components, mc)
	// The gossip keyring follows its record in etcd (keys.go, issue 24).
	n.Components = append(n.Components, newGossipKeysComponent(shared, etcdC, el))
	n.Liveness = el.Live
	return n, nil
}

// libraryGatherer serves what libraries (etcd, gRPC) registered on Prometheus'
// global registry, without the Go and process collectors the global registry
// also holds: masterd's own registry has those already.
type libraryGatherer struct{ g prometheus.Gatherer }

func (l libraryGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := l.g.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") {
			continue
		}
		out = append(out, mf)
	}
	return out, err
}
