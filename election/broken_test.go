package election

import "testing"

// The checker must catch a broken protocol: with one safety rule switched
// off, the random simulation finds two holders at one instant.
func TestSimulationFindsOverlapWhenARuleIsBroken(t *testing.T) {
	cases := []struct {
		name  string
		rules rules
	}{
		{"a restarted voter that answers at once lets two nodes hold", rules{noQuietPeriod: true}},
		{"a voter that ignores its promise lets two nodes hold", rules{noPromise: true}},
		{"a leader that sends Release before its release completes lets two nodes hold", rules{noReleaseOnLapse: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			failed, _, _ := runSeeds(t, 1, 5000, c.rules, func(s *sim) bool {
				for _, v := range s.viol {
					if v.kind == "overlap" {
						return true
					}
				}
				return false
			})
			if len(failed) == 0 {
				t.Fatalf("no overlap found in 5000 runs with %+v", c.rules)
			}
			t.Logf("overlap found, e.g.\n%s", failed[0].report())
		})
	}
}

// The liveness check is not vacuous: a cluster whose nodes never campaign is
// reported.
func TestSimulationReportsAClusterThatNeverElects(t *testing.T) {
	failed, _, _ := runSeeds(t, 1, 20, rules{neverCampaign: true}, func(s *sim) bool {
		for _, v := range s.viol {
			if v.kind == "liveness" {
				return true
			}
		}
		return false
	})
	if len(failed) == 0 {
		t.Fatal("no liveness violation reported for a cluster that never campaigns")
	}
}
