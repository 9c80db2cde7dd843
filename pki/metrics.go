package pki

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports certificate expiry times.
type Metrics struct {
	expiry *prometheus.GaugeVec
}

// NewMetrics creates the pki metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "masterd",
			Name:      "cert_expiry_timestamp_seconds",
			Help:      "NotAfter of each certificate masterd uses, in Unix seconds.",
		}, []string{"cert"}),
	}
	if err := reg.Register(m.expiry); err != nil {
		return nil, fmt.Errorf("pki: register metrics: %w", err)
	}
	return m, nil
}

// Observe sets the expiry gauge of every certificate in f.Expiry and drops
// series of certificates no longer present.
func (m *Metrics) Observe(f *Files) {
	m.expiry.Reset()
	for name, t := range f.Expiry {
		m.expiry.WithLabelValues(name).Set(float64(t.Unix()))
	}
}
