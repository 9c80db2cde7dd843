package report

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Named is a system or scenario with a one-line description for the note.
type Named struct {
	Name, Description string
}

// Meta describes a run for the note.
type Meta struct {
	Title       string
	Command     string
	Start, End  time.Time
	Machine     string
	LoadBefore  string
	LoadAfter   string
	Versions    []string
	TrialsAsked int
	Systems     []Named
	Scenarios   []Named
	// Notes are printed at the top, except those starting with
	// FootprintNotePrefix, which go under the footprint tables.
	Notes     []string
	Footprint []Footprint
	// Plots maps a scenario to its SVG file name (relative to the note).
	Plots map[string]string
	// Appendix holds other notes (Markdown) copied in at the end, headings
	// pushed down one level.
	Appendix []string
}

func fmtMS(d time.Duration) string {
	return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond))
}

// Markdown writes the note: the run's description, the main table (outage
// p50/max per system and scenario), one table per scenario, the footprint,
// plot links and the appendix.
func Markdown(w io.Writer, meta Meta, trials []Trial) error {
	var b strings.Builder
	sysNames := names(meta.Systems)
	allSc := names(meta.Scenarios)
	cells := Cells(trials, sysNames, allSc)
	// The VIP tables leave the takeover scenarios out (no VIP outage).
	var scNames []string
	for _, sc := range allSc {
		if !TakeoverScenario(sc) {
			scNames = append(scNames, sc)
		}
	}
	cell := func(sys, sc string) *Cell { return findCell(cells, sys, sc) }
	fmt.Fprintf(&b, "# %s\n\n", meta.Title)
	fmt.Fprintf(&b, "`%s`, %s – %s UTC (%s).\n\n", meta.Command, meta.Start.UTC().Format("2006-01-02 15:04"),
		meta.End.UTC().Format("15:04"), meta.End.Sub(meta.Start).Round(time.Second))
	fmt.Fprintf(&b, "Machine: %s. Load average (1/5/15 min) %s before, %s after.\n\n", meta.Machine, meta.LoadBefore, meta.LoadAfter)
	if len(meta.Versions) > 0 {
		fmt.Fprintf(&b, "Versions: %s.\n\n", strings.Join(meta.Versions, "; "))
	}
	ran := map[int]bool{}
	for _, c := range cells {
		ran[len(c.Trials)] = true
	}
	var counts []string
	for n := range ran {
		counts = append(counts, fmt.Sprint(n))
	}
	fmt.Fprintf(&b, "Trials: %d per cell asked (-trials); cells ran %s (see each table's n). ", meta.TrialsAsked, strings.Join(sortStrings(counts), ", "))
	b.WriteString("The systems this run measured ran on one lab (three masters with real systemd in network namespaces on one bridge) and one client namespace; cells kept from earlier runs (-append) are named in the notes below.\n\n")
	notes, footNotes := splitFootprintNotes(meta.Notes)
	if len(meta.Footprint) == 0 {
		notes = meta.Notes
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "%s\n\n", n)
	}

	// Main table.
	b.WriteString("## Main table: client-visible outage, p50 / max (ms), and trials with two holders\n\n")
	b.WriteString("| system |")
	for _, sc := range scNames {
		fmt.Fprintf(&b, " %s |", sc)
	}
	b.WriteString("\n|---|")
	for range scNames {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, sys := range sysNames {
		fmt.Fprintf(&b, "| %s |", sys)
		for _, sc := range scNames {
			c := cell(sys, sc)
			if c == nil || len(c.Valid()) == 0 {
				b.WriteString(" – |")
				continue
			}
			s := Summarize(c.Figure(func(t Trial) time.Duration { return t.Outage }, nil))
			dual := 0
			for _, t := range c.Valid() {
				if t.DualSamples > 0 || t.DualARP > 0 {
					dual++
				}
			}
			extra := ""
			if sc == "stress" {
				ff := 0
				for _, t := range c.Valid() {
					ff += t.FalseFailovers
				}
				extra = fmt.Sprintf(", %d false failovers", ff)
			}
			fmt.Fprintf(&b, " %s / %s (n=%d, dual %d%s) |", fmtMS(s.P50), fmtMS(s.Max), s.N, dual, extra)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n\"dual N\": the number of trials in which two holders were seen at least once, in `ip addr` of the master namespaces on the wire (sampled every 10 ms) or as two MACs answering ARP for the VIP at the client (every 20 ms).\n\n")
	b.WriteString(apiTable(cells, sysNames, scNames))
	b.WriteString(takeoverTable(cells))

	// Per scenario.
	for _, sc := range meta.Scenarios {
		if TakeoverScenario(sc.Name) {
			continue
		}
		fmt.Fprintf(&b, "## %s\n\n%s\n\n", sc.Name, sc.Description)
		if p, ok := meta.Plots[sc.Name]; ok {
			fmt.Fprintf(&b, "![outage CDF, %s](%s)\n\n", sc.Name, p)
		}
		b.WriteString("| system | n (errors) | outage p50 | p95 | max | VIP moved p50 | dual trials (ip addr) | dual samples | dual trials (wire) | post-heal max | false failovers | API p50 | stale neighbour |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, sys := range sysNames {
			c := cell(sys, sc.Name)
			if c == nil {
				fmt.Fprintf(&b, "| %s | not run | | | | | | | | | | | |\n", sys)
				continue
			}
			v := c.Valid()
			out := Summarize(c.Figure(func(t Trial) time.Duration { return t.Outage }, nil))
			moved := Summarize(c.Figure(func(t Trial) time.Duration { return t.Moved }, func(t Trial) bool { return t.Moved >= 0 }))
			api := Summarize(c.Figure(func(t Trial) time.Duration { return t.API }, func(t Trial) bool { return t.API >= 0 }))
			heal := Summarize(c.Figure(func(t Trial) time.Duration { return t.PostHeal }, nil))
			var dualIP, dualWire, dualSamples, samples, ff, stale, notMoved int
			for _, t := range v {
				if t.DualSamples > 0 {
					dualIP++
				}
				if t.DualARP > 0 {
					dualWire++
				}
				dualSamples += t.DualSamples
				samples += t.Samples
				ff += t.FalseFailovers
				if t.StaleNeighbour {
					stale++
				}
				if t.Moved < 0 {
					notMoved++
				}
			}
			movedS := "–"
			if moved.N > 0 {
				movedS = fmtMS(moved.P50)
				if notMoved > 0 {
					movedS += fmt.Sprintf(" (%d never)", notMoved)
				}
			} else if notMoved > 0 {
				movedS = "never"
			}
			apiS := "n/a"
			if api.N > 0 {
				apiS = fmtMS(api.P50)
			}
			healS := "–"
			if sc.Name == "partition" && heal.N > 0 {
				healS = fmtMS(heal.Max)
			}
			ffS := "–"
			if sc.Name == "stress" {
				ffS = fmt.Sprint(ff)
			}
			if len(v) == 0 {
				fmt.Fprintf(&b, "| %s | 0 (%d) | | | | | | | | | | | |\n", sys, len(c.Trials))
				continue
			}
			fmt.Fprintf(&b, "| %s | %d (%d) | %s | %s | %s | %s | %d/%d | %d of %d | %d/%d | %s | %s | %s | %d |\n",
				sys, len(v), len(c.Trials)-len(v), fmtMS(out.P50), fmtMS(out.P95), fmtMS(out.Max), movedS,
				dualIP, len(v), dualSamples, samples, dualWire, len(v), healS, ffS, apiS, stale)
		}
		var errs []string
		for _, sys := range sysNames {
			if c := cell(sys, sc.Name); c != nil {
				for _, t := range c.Trials {
					if t.Err != "" {
						errs = append(errs, fmt.Sprintf("%s trial %d: %s", sys, t.N, t.Err))
					}
				}
			}
		}
		if len(errs) > 0 {
			b.WriteString("\nTrials left out (errors):\n")
			for _, e := range errs {
				fmt.Fprintf(&b, "- %s\n", e)
			}
		}
		b.WriteString("\n")
	}

	if len(meta.Footprint) > 0 {
		writeFootprint(&b, meta.Footprint, footNotes)
	}

	b.WriteString("## Systems\n\n")
	for _, s := range meta.Systems {
		fmt.Fprintf(&b, "- **%s**: %s\n", s.Name, s.Description)
	}
	b.WriteString("\nRaw data: [latest.csv](latest.csv) (one row per trial, durations in ms, -1 = not measured).\n\n")
	for _, a := range meta.Appendix {
		b.WriteString(pushHeadings(a))
		b.WriteString("\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: write markdown: %w", err)
	}
	return nil
}

func names(ns []Named) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

func sortStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// pushHeadings turns every Markdown heading of s one level deeper.
func pushHeadings(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "#") {
			lines[i] = "#" + l
		}
	}
	return strings.Join(lines, "\n")
}
