package agent

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the agent's own series:
//
//	masterd_build_info{version,revision,goversion}  1
//	masterd_component_start_seconds{component}      how long each component took to start
//	masterd_ready                                    1 once every component started
//	masterd_kube_version_info{component,version}     1 per kube binary masterd runs (managed mode)
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

// observeKubeVersions exports masterd_kube_version_info: one series per
// managed kube unit whose binary answered --version, labelled with the
// component ("kube-apiserver") and the version ("v1.37.2"), value 1.
func observeKubeVersions(reg prometheus.Registerer, versions map[string]string) error {
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "masterd", Name: "kube_version_info",
		Help: "Version of each kube binary masterd runs, read from its --version at start; always 1.",
	}, []string{"component", "version"})
	if err := reg.Register(info); err != nil {
		// A second start on the same registry (tests) reuses the first's.
		are, ok := err.(prometheus.AlreadyRegisteredError)
		if !ok {
			return fmt.Errorf("kube: register metrics: %w", err)
		}
		if info, ok = are.ExistingCollector.(*prometheus.GaugeVec); !ok {
			return fmt.Errorf("kube: register metrics: %w", err)
		}
		info.Reset()
	}
	for unit, v := range versions {
		info.WithLabelValues(strings.TrimSuffix(unit, ".service"), v).Set(1)
	}
	return nil
}
