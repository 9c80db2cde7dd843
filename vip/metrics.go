package vip

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	owned             prometheus.Gauge
	garpSent          prometheus.Counter
	acquireDuration   prometheus.Histogram
	removedExternally prometheus.Counter
	conflicts         prometheus.Counter
	// conflictLogsSuppressed counts conflict log lines the rate limit
	// dropped (see conflictLogMACs).
	conflictLogsSuppressed prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "masterd", Name: "vip_owned",
			Help: "1 while this node holds the VIP (address added and announced), else 0.",
		}),
		garpSent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "masterd", Name: "garp_sent_total",
			Help: "Gratuitous ARP and unsolicited neighbour advertisement frames sent for the VIP.",
		}),
		acquireDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "masterd", Name: "vip_acquire_duration_seconds",
			Help:    "Time Acquire took to add the VIP and send the first announcement.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}),
		removedExternally: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "masterd", Name: "vip_removed_externally_total",
			Help: "Times the held VIP was removed by something else and put back.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "masterd", Name: "vip_conflicts_total",
			Help: "ARP replies or neighbour advertisements from another MAC for the held VIP.",
		}),
		conflictLogsSuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "masterd", Name: "vip_conflict_logs_suppressed_total",
			Help: "Conflict log lines not written because of the rate limit (every conflict is still counted in masterd_vip_conflicts_total).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.owned, m.garpSent, m.acquireDuration, m.removedExternally, m.conflicts, m.conflictLogsSuppressed} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("vip: register metrics: %w", err)
		}
	}
	return m, nil
}
