package fence

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	missing     prometheus.Counter
	repairs     prometheus.Counter
	armDuration prometheus.Histogram
	corrections prometheus.Counter
	// expiredRefreshes: refreshes aborted because the element was gone.
	expiredRefreshes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		missing: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "masterd", Name: "vip_fence_missing_total",
			Help: "Checks that found the VIP fence's tables, chains, rules or VIP sets missing.",
		}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "masterd", Name: "vip_fence_repairs_total",
			Help: "Times the VIP fence was reinstalled after it went missing.",
		}),
		armDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "masterd", Name: "vip_fence_arm_duration_seconds",
			Help:    "Netlink round trip of one fence refresh (Arm).",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05},
		}),
		corrections: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "masterd", Name: "vip_fence_expiry_corrections_total",
			Help: "Arms whose read-back expiry lay past their end (a stall before the kernel got the arm) and were re-armed shorter or disarmed.",
		}),
		expiredRefreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "masterd", Name: "vip_fence_expired_refreshes_total",
			Help: "Refreshes the kernel refused because the VIP's element had already expired (the fence lapsed under a held role; not revived).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.missing, m.repairs, m.armDuration, m.corrections, m.expiredRefreshes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("fence: register metrics: %w", err)
		}
	}
	return m, nil
}
