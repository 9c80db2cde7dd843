package etcdembed

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are masterd's own etcd metrics (etcd's come from etcd itself).
type metrics struct {
	healthy   prometheus.Gauge
	leader    prometheus.Gauge
	snapshots *prometheus.CounterVec
}

// newMetrics registers the metrics on reg (nil: unregistered). A collector
// already registered by another Member on the same registry is reused, so two
// Members in one process share the series instead of failing.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "masterd", Subsystem: "etcd", Name: "member_healthy",
			Help: "1 when the last health check of the local etcd member passed, else 0.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "masterd", Subsystem: "etcd", Name: "is_leader",
			Help: "1 while the local etcd member is the raft leader, else 0.",
		}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "masterd", Subsystem: "etcd", Name: "snapshots_total",
			Help: "Snapshots of the etcd keyspace taken by masterd, by result (ok, error).",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.healthy, err = register(reg, m.healthy)
	if err != nil {
		return nil, err
	}
	m.leader, err = register(reg, m.leader)
	if err != nil {
		return nil, err
	}
	m.snapshots, err = register(reg, m.snapshots)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
