package pki

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports certificate expiry times.
type Metrics struct {
	expiry *prometheus.GaugeVec
	mu     sync.Mutex
	names  map[string]bool
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
// Safe for concurrent use.
func (m *Metrics) Observe(f *Files) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.names {
		if _, ok := f.Expiry[name]; !ok {
			m.expiry.DeleteLabelValues(name)
		}
	}
	m.names = map[string]bool{}
	for name, t := range f.Expiry {
		m.expiry.WithLabelValues(name).Set(float64(t.Unix()))
		m.names[name] = true
	}
}
