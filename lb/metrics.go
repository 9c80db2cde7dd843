package lb

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Connection results, the "result" label of masterd_lb_connections_total.
const (
	// resultOK: a backend accepted the connection and proxying started.
	resultOK = "ok"
	// resultDialError: connecting to this backend failed; the client was
	// retried on another backend if one was left.
	resultDialError = "dial_error"
	// resultNoBackend: no backend was up (or every dial failed); the client
	// connection was closed. Counted under backend="none".
	resultNoBackend = "no_backend"
)

// Byte directions, the "direction" label of masterd_lb_bytes_total.
const (
	dirToBackend = "to_backend"
	dirToClient  = "to_client"
)

// noBackend labels counters of connections that reached no backend.
const noBackend = "none"

type metrics struct {
	up       *prometheus.GaugeVec
	active   *prometheus.GaugeVec
	total    *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	checkDur *prometheus.HistogramVec
	marked   *prometheus.CounterVec
	rejected *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "masterd", Subsystem: "lb", Name: "backend_up",
			Help: "1 if the backend passes its readiness check and gets new connections, else 0.",
		}, []string{"backend"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "masterd", Subsystem: "lb", Name: "connections_active",
			Help: "Client connections currently proxied to the backend.",
		}, []string{"backend"}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "masterd", Subsystem: "lb", Name: "connections_total",
			Help: "Client connections by backend and result (ok, dial_error, no_backend).",
		}, []string{"backend", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "masterd", Subsystem: "lb", Name: "bytes_total",
			Help: "Bytes proxied by backend and direction (to_backend, to_client).",
		}, []string{"backend", "direction"}),
		checkDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "masterd", Subsystem: "lb", Name: "health_check_duration_seconds",
			Help:    "Duration of backend readiness checks by result (success, failure).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"backend", "result"}),
		marked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "masterd", Subsystem: "lb", Name: "marked_down_total",
			Help: "Backends taken out of rotation between checks, by reason (connect: a connect failed; dead: the election reported its master dead).",
		}, []string{"backend", "reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "masterd", Subsystem: "lb", Name: "connections_rejected_total",
			Help: "Client connections reset at once because a cap was reached, by reason (global: maxConns; per_source: maxConnsPerSource).",
		}, []string{"reason"}),
	}
	for _, r := range []string{rejectGlobal, rejectSource} {
		m.rejected.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.up, m.active, m.total, m.bytes, m.checkDur, m.marked, m.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("lb: register metrics: %w", err)
		}
	}
	return m, nil
}

// initBackend creates the series of one backend so dashboards see zeros
// rather than missing series.
func (m *metrics) initBackend(name string) {
	m.up.WithLabelValues(name).Set(0)
	m.active.WithLabelValues(name).Set(0)
	for _, r := range []string{resultOK, resultDialError} {
		m.total.WithLabelValues(name, r)
	}
	for _, d := range []string{dirToBackend, dirToClient} {
		m.bytes.WithLabelValues(name, d)
	}
	for _, r := range []string{reasonConnect, reasonDead} {
		m.marked.WithLabelValues(name, r)
	}
}
