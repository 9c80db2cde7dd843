package election

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the driver's Prometheus metrics, namespace masterd.
type metrics struct {
	leader          *prometheus.GaugeVec
	term            *prometheus.GaugeVec
	transitions     *prometheus.CounterVec
	releaseFailures *prometheus.CounterVec
	quorum          *prometheus.GaugeVec
	members         *prometheus.GaugeVec
	messages        *prometheus.CounterVec
	rejected        *prometheus.CounterVec
	renewLatency    *prometheus.HistogramVec
	loopLatency     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "masterd", Name: "role_leader",
			Help: "1 while this node holds the role."}, []string{"role"}),
		term: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "masterd", Name: "role_term",
			Help: "Highest term of the role this node granted or led (the fencing token)."}, []string{"role"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "masterd", Name: "role_transitions_total",
			Help: "Times this node acquired or lost the role."}, []string{"role"}),
		releaseFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "masterd", Name: "role_release_failures_total",
			Help: "Releases of a held role that failed (reason error) or overran their slack (reason deadline): no Release was sent, the lease ended by expiry."}, []string{"role", "reason"}),
		quorum: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "masterd", Subsystem: "election", Name: "quorum",
			Help: "1 while this node heard from a majority of voters within one lease."}, []string{"role"}),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "masterd", Subsystem: "cluster", Name: "members",
			Help: "Gossip members by state (alive, suspect, dead, left)."}, []string{"state"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "masterd", Subsystem: "election", Name: "messages_total",
			Help: "Election messages by type and direction (in, out)."}, []string{"type", "direction"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "masterd", Subsystem: "election", Name: "rejected_messages_total",
			Help: "Messages dropped, by reason (decode reasons, config_hash, stale_incarnation, decrypt, label, queue_full, ...)."}, []string{"reason"}),
		renewLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "masterd", Subsystem: "election", Name: "renew_latency_seconds",
			Help:    "Age of the lease start when a renewal is validated: the round trip of the quorum-th acknowledgement.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5}}, []string{"role"}),
		loopLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "masterd", Subsystem: "election", Name: "loop_latency_seconds",
			Help:    "How late the election loop ran a due timer (deadline checks included).",
			Buckets: []float64{.0001, .0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1}}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.leader, m.term, m.transitions, m.releaseFailures, m.quorum, m.members, m.messages, m.rejected, m.renewLatency, m.loopLatency} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("election: register metrics: %w", err)
	}
	return m, nil
}
