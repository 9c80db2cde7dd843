package report

import (
	"math"
	"sort"
	"time"
)

// Summary is the distribution of one figure over the valid trials of a cell.
type Summary struct {
	N             int
	P50, P95, Max time.Duration
}

// Summarize returns the nearest-rank p50, p95 and max of ds (zero Summary
// when ds is empty). ds is not modified.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return Summary{N: len(s), P50: Percentile(s, 50), P95: Percentile(s, 95), Max: s[len(s)-1]}
}

// Percentile returns the nearest-rank p-th percentile of sorted (ascending):
// the smallest value with at least p% of the values at or below it.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

// Cell groups the trials of one system in one scenario.
type Cell struct {
	System, Scenario string
	Trials           []Trial
}

// Valid returns the trials without an error.
func (c Cell) Valid() []Trial {
	var out []Trial
	for _, t := range c.Trials {
		if t.Err == "" {
			out = append(out, t)
		}
	}
	return out
}

// Figure returns f of every valid trial for which ok holds.
func (c Cell) Figure(f func(Trial) time.Duration, ok func(Trial) bool) []time.Duration {
	var out []time.Duration
	for _, t := range c.Valid() {
		if ok == nil || ok(t) {
			out = append(out, f(t))
		}
	}
	return out
}

// Cells groups trials by (system, scenario), systems and scenarios in the
// order given (names not listed come after, in order of appearance).
func Cells(trials []Trial, systems, scenarios []string) []Cell {
	idx := map[[2]string]int{}
	var cells []Cell
	add := func(sys, sc string) {
		k := [2]string{sys, sc}
		if _, ok := idx[k]; !ok {
			idx[k] = len(cells)
			cells = append(cells, Cell{System: sys, Scenario: sc})
		}
	}
	present := map[[2]string]bool{}
	for _, t := range trials {
		present[[2]string{t.System, t.Scenario}] = true
	}
	for _, sc := range scenarios {
		for _, sys := range systems {
			if present[[2]string{sys, sc}] {
				add(sys, sc)
			}
		}
	}
	for _, t := range trials {
		add(t.System, t.Scenario)
		c := &cells[idx[[2]string{t.System, t.Scenario}]]
		c.Trials = append(c.Trials, t)
	}
	return cells
}

// findCell returns the cell of system sys in scenario sc, or nil.
func findCell(cells []Cell, sys, sc string) *Cell {
	for i := range cells {
		if cells[i].System == sys && cells[i].Scenario == sc {
			return &cells[i]
		}
	}
	return nil
}
