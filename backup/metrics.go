package backup

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the uploader's series (see the package doc).
type metrics struct {
	uploads     prometheus.Counter
	failures    prometheus.Counter
	lastSuccess prometheus.Gauge
}

// newMetrics registers the series on reg (nil: unregistered). A series
// already registered (a second uploader on the same registry, as when the
// etcd component restarts) is reused.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		uploads: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "masterd", Subsystem: "backup", Name: "uploads_total",
			Help: "etcd snapshots uploaded to the S3-compatible store.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "masterd", Subsystem: "backup", Name: "upload_failures_total",
			Help: "Uploads of etcd snapshots (or prunes of old copies) to the S3-compatible store that failed.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "masterd", Subsystem: "backup", Name: "last_success_timestamp_seconds",
			Help: "Unix time of the last etcd snapshot upload that succeeded from this master; 0 before the first.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.uploads, err = register(reg, m.uploads); err != nil {
		return nil, err
	}
	if m.failures, err = register(reg, m.failures); err != nil {
		return nil, err
	}
	if m.lastSuccess, err = register(reg, m.lastSuccess); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if old, ok := are.ExistingCollector.(C); ok {
			return old, nil
		}
	}
	return c, err
}
