package units

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	active        *prometheus.GaugeVec
	restarts      *prometheus.CounterVec
	failures      *prometheus.CounterVec
	startDuration *prometheus.HistogramVec
	stopDuration  *prometheus.HistogramVec
	reconnects    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "masterd", Subsystem: "unit", Name: "active",
			Help: "1 while the unit's ActiveState is active, else 0.",
		}, []string{"unit"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "masterd", Subsystem: "unit", Name: "restarts_total",
			Help: "Automatic restarts of the unit by systemd (its NRestarts increments).",
		}, []string{"unit"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "masterd", Subsystem: "unit", Name: "failures_total",
			Help: "Times the unit's process exited or failed without masterd stopping it.",
		}, []string{"unit"}),
		startDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "masterd", Subsystem: "unit", Name: "start_duration_seconds",
			Help:    "Time from the start request to active and healthy, for successful starts.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 4, 8, 15, 30, 60},
		}, []string{"unit"}),
		stopDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "masterd", Subsystem: "unit", Name: "stop_duration_seconds",
			Help:    "Time from the stop request to inactive.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30},
		}, []string{"unit"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "masterd", Subsystem: "unit", Name: "systemd_reconnects_total",
			Help: "Connections to systemd's private socket opened after the first.",
		}),
	}
	for _, c := range []prometheus.Collector{m.active, m.restarts, m.failures, m.startDuration, m.stopDuration, m.reconnects} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
