package election

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

var (
	simRuns  = flag.Int("sim.runs", 10000, "number of seeded simulation runs")
	simSeed  = flag.Uint64("sim.seed", 0, "run only this seed, with a trace")
	simFirst = flag.Uint64("sim.first", 1, "first seed")
)

// runSeeds runs n seeded simulations in parallel and returns the first
// failing seeds with their reports.
func runSeeds(t *testing.T, first uint64, n int, rs rules, stopAt func(*sim) bool) (failed []*sim, stats simStats, profiles map[string]int) {
	var (
		mu   sync.Mutex
		next atomic.Uint64
		wg   sync.WaitGroup
		stop atomic.Bool
	)
	profiles = map[string]int{}
	next.Store(first)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for !stop.Load() {
				seed := next.Add(1) - 1
				if seed >= first+uint64(n) {
					return
				}
				s := newSim(randomOpts(seed, rs))
				s.run()
				mu.Lock()
				profiles[fmt.Sprintf("%s/%d", s.o.profile, s.o.voters)]++
				stats.msgs += s.stats.msgs
				stats.dropped += s.stats.dropped
				stats.dups += s.stats.dups
				stats.crashes += s.stats.crashes
				stats.stalls += s.stats.stalls
				stats.partitions += s.stats.partitions
				stats.acquisitions += s.stats.acquisitions
				if stopAt(s) {
					failed = append(failed, s)
					if len(failed) >= 3 {
						stop.Store(true)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed, stats, profiles
}

// replay reruns one seed with the trace on.
func replay(seed uint64, rs rules) *sim {
	o := randomOpts(seed, rs)
	o.trace = true
	s := newSim(o)
	s.run()
	return s
}

func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestSimulationKeepsOneHolderAndElectsOne(t *testing.T) {
	if *simSeed != 0 {
		s := replay(*simSeed, rules{})
		t.Log(s.report())
		if len(s.viol) > 0 {
			path := filepath.Join(os.TempDir(), fmt.Sprintf("election-sim-trace-%d.txt", *simSeed))
			os.WriteFile(path, []byte(strings.Join(s.trace, "\n")), 0o644)
			t.Fatalf("seed %d: %d violations; full trace in %s\n%s", *simSeed, len(s.viol), path, tail(s.trace, 80))
		}
		return
	}
	runs := *simRuns
	if testing.Short() {
		runs = min(runs, 1000)
	}
	failed, st, profiles := runSeeds(t, *simFirst, runs, rules{}, func(s *sim) bool { return len(s.viol) > 0 })
	t.Logf("%d runs %v: messages=%d dropped=%d duplicated=%d crashes=%d stalls=%d partitions=%d acquisitions=%d violations=%d",
		runs, profiles, st.msgs, st.dropped, st.dups, st.crashes, st.stalls, st.partitions, st.acquisitions, len(failed))
	for _, s := range failed {
		r := replay(s.o.seed, rules{})
		t.Errorf("%s\nreplay: go test ./election -run TestSimulationKeepsOneHolderAndElectsOne -sim.seed=%d\n%s", s.report(), s.o.seed, tail(r.trace, 60))
	}
}
