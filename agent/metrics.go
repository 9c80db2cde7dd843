package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the agent's own series:
//
//	masterd_build_info{version,revision,goversion}  1
//	masterd_component_start_seconds{component}      how long each component took to start
//	masterd_ready                                    1 once every component started
//
// plus the Go runtime and process collectors.
type metrics struct {
	startSeconds *prometheus.GaugeVec
	ready        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, b BuildInfo) *metrics {
	m := &metrics{
		startSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "masterd", Name: "component_start_seconds",
			Help: "Seconds the component took to start, by component.",
		}, []string{"component"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "masterd", Name: "ready",
			Help: "1 when every component has started and the readiness checks pass.",
		}),
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "masterd", Name: "build_info",
		Help: "Build of the running masterd; always 1.",
	}, []string{"version", "revision", "goversion"})
	info.WithLabelValues(b.Version, b.Revision, b.GoVersion).Set(1)
	reg.MustRegister(m.startSeconds, m.ready, info,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
