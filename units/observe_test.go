package units

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserveCountsFailuresAndRestartsFromReadings(t *testing.T) {
	type reading struct {
		active, sub string
		nRestarts   uint32
	}
	cases := []struct {
		name               string
		stopping           bool
		readings           []reading
		failures, restarts uint64
		activeMetric       float64
	}{
		{name: "a crash and an automatic restart count once each",
			readings: []reading{{"active", "running", 0}, {"activating", "auto-restart", 0}, {"active", "running", 1}},
			failures: 1, restarts: 1, activeMetric: 1},
		{name: "a restart seen only through NRestarts still counts, with its failure",
			readings: []reading{{"active", "running", 2}, {"active", "running", 3}},
			failures: 1, restarts: 1, activeMetric: 1},
		{name: "a requested stop is not a failure",
			stopping: true,
			readings: []reading{{"active", "running", 0}, {"deactivating", "stop-sigterm", 0}, {"failed", "failed", 0}},
			failures: 0, restarts: 0, activeMetric: 0},
		{name: "NRestarts reset by a manual start adds nothing",
			readings: []reading{{"active", "running", 4}, {"inactive", "dead", 4}, {"active", "running", 0}, {"active", "running", 1}},
			failures: 1, restarts: 1, activeMetric: 1},
		{name: "NRestarts incremented while still in auto-restart counts one failure",
			readings: []reading{{"active", "running", 0}, {"activating", "auto-restart", 0}, {"activating", "auto-restart", 1}, {"active", "running", 1}},
			failures: 1, restarts: 1, activeMetric: 1},
		{name: "two crashes, each seen, count two",
			readings: []reading{{"active", "running", 0}, {"activating", "auto-restart", 0}, {"active", "running", 1}, {"activating", "auto-restart", 1}, {"active", "running", 2}},
			failures: 2, restarts: 2, activeMetric: 1},
		{name: "staying failed counts one failure",
			readings: []reading{{"active", "running", 0}, {"failed", "failed", 0}, {"failed", "failed", 0}},
			failures: 1, restarts: 0, activeMetric: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Socket = "/nonexistent/unitst.sock"
			s, err := New(cfg, prometheus.NewRegistry(), quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const name = "x.service"
			if err := s.Register(Unit{Name: name}); err != nil {
				t.Fatal(err)
			}
			st, _ := s.unit(name)
			s.mu.Lock()
			st.intentional = c.stopping
			s.mu.Unlock()
			for _, r := range c.readings {
				s.observe(name, props{activeState: r.active, subState: r.sub, nRestarts: r.nRestarts, seq: s.readSeq.Add(1)})
			}
			// A stale reading (older seq) is ignored.
			s.observe(name, props{activeState: "failed", subState: "failed", seq: 0})
			got, _ := s.Status(name)
			if got.Failures != c.failures || got.Restarts != c.restarts {
				t.Errorf("failures %d restarts %d, want %d and %d", got.Failures, got.Restarts, c.failures, c.restarts)
			}
			if m := testutil.ToFloat64(s.m.failures.WithLabelValues(name)); m != float64(c.failures) {
				t.Errorf("failures metric %v", m)
			}
			if m := testutil.ToFloat64(s.m.restarts.WithLabelValues(name)); m != float64(c.restarts) {
				t.Errorf("restarts metric %v", m)
			}
			if m := testutil.ToFloat64(s.m.active.WithLabelValues(name)); m != c.activeMetric {
				t.Errorf("active metric %v, want %v", m, c.activeMetric)
			}
		})
	}
}
