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

// Build assembles the components of this node from cfg. cfg must be valid.
func Build(cfg Config, log *slog.Logger, reg *prometheus.Registry) (*Node, error) {
	shared := &node{cfg: cfg, log: log, reg: reg}
	pkiC, err := newPKIComponent(shared)
	if err != nil {
		return nil, err
	}
	n := &Node{
		Gatherer: prometheus.Gatherers{reg, libraryGatherer{prometheus.DefaultGatherer}},
	}
	n.Components = append(n.Components, pkiC, &etcdComponent{n: shared})
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
