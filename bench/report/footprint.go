package report

import (
	"fmt"
	"strings"
	"time"
)

// Footprint is the memory and idle CPU of one process group (a systemd unit)
// on one host.
type Footprint struct {
	// Stack is what the process group belongs to: "masterd" or
	// "etcd+keepalived+haproxy".
	Stack     string
	Component string
	Host      string
	// RSS is the summed resident set size of the unit's processes.
	RSS int64
	// CPU is the unit's CPU time per second of wall time while idle.
	CPU time.Duration
	// Window is how long CPU was measured.
	Window time.Duration
	Err    string
}

// FootprintNotePrefix starts the notes (Meta.Notes) that say how the
// footprint was measured: Markdown prints them under the footprint tables
// instead of at the top.
const FootprintNotePrefix = "Footprint: "

// StackTotal is one stack's components summed on one host.
type StackTotal struct {
	Stack, Host string
	RSS         int64
	CPU         time.Duration
	// Components is how many components were measured on the host; Missing
	// how many of the stack's components failed there (the sum is then
	// partial).
	Components, Missing int
}

// StackTotals sums the footprint per stack and host, stacks in their first
// appearance's order, hosts sorted. A component measured on some hosts only
// counts as missing on the others of its stack.
func StackTotals(fs []Footprint) []StackTotal {
	type key struct{ stack, host string }
	var stacks []string
	comps := map[string]map[string]bool{} // stack -> components
	hosts := map[string]map[string]bool{} // stack -> hosts
	sums := map[key]*StackTotal{}
	for _, f := range fs {
		if comps[f.Stack] == nil {
			stacks = append(stacks, f.Stack)
			comps[f.Stack], hosts[f.Stack] = map[string]bool{}, map[string]bool{}
		}
		comps[f.Stack][f.Component], hosts[f.Stack][f.Host] = true, true
		k := key{f.Stack, f.Host}
		if sums[k] == nil {
			sums[k] = &StackTotal{Stack: f.Stack, Host: f.Host}
		}
		if f.Err == "" {
			sums[k].RSS += f.RSS
			sums[k].CPU += f.CPU
			sums[k].Components++
		}
	}
	var out []StackTotal
	for _, s := range stacks {
		var hs []string
		for h := range hosts[s] {
			hs = append(hs, h)
		}
		for _, h := range sortStrings(hs) {
			t := *sums[key{s, h}]
			t.Missing = len(comps[s]) - t.Components
			out = append(out, t)
		}
	}
	return out
}

// writeFootprint renders the footprint section: one row per component and
// host, then each stack summed per host and its mean over the hosts, then
// the footprint notes.
func writeFootprint(b *strings.Builder, fs []Footprint, notes []string) {
	b.WriteString("## Footprint (idle)\n\nRSS summed over the unit's processes; CPU is utime+stime over the window, per second. The kube components are not counted on either side.\n\n")
	b.WriteString("| stack | component | host | RSS (MiB) | idle CPU (ms/s) | window |\n|---|---|---|---:|---:|---:|\n")
	for _, f := range fs {
		if f.Err != "" {
			fmt.Fprintf(b, "| %s | %s | %s | error: %s | | |\n", f.Stack, f.Component, f.Host, f.Err)
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s | %.1f | %.1f | %s |\n", f.Stack, f.Component, f.Host, mib(f.RSS), msOf(f.CPU), f.Window)
	}
	b.WriteString("\nPer master, the stack's components summed:\n\n| stack | host | RSS (MiB) | idle CPU (ms/s) |\n|---|---|---:|---:|\n")
	type mean struct {
		rss, cpu float64
		n        int
		partial  bool
	}
	var order []string
	means := map[string]*mean{}
	for _, t := range StackTotals(fs) {
		partial := ""
		if t.Missing > 0 {
			partial = fmt.Sprintf(" (partial: %d of %d components)", t.Components, t.Components+t.Missing)
		}
		fmt.Fprintf(b, "| %s | %s | %.1f%s | %.1f |\n", t.Stack, t.Host, mib(t.RSS), partial, msOf(t.CPU))
		m := means[t.Stack]
		if m == nil {
			m = &mean{}
			means[t.Stack] = m
			order = append(order, t.Stack)
		}
		if t.Components > 0 {
			m.rss, m.cpu, m.n = m.rss+mib(t.RSS), m.cpu+msOf(t.CPU), m.n+1
		}
		m.partial = m.partial || t.Missing > 0
	}
	b.WriteString("\nPer host (mean over hosts):\n\n| stack | RSS (MiB) | idle CPU (ms/s) |\n|---|---:|---:|\n")
	for _, s := range order {
		m := means[s]
		if m.n == 0 {
			fmt.Fprintf(b, "| %s | – | – |\n", s)
			continue
		}
		p := ""
		if m.partial {
			p = " (partial)"
		}
		fmt.Fprintf(b, "| %s | %.1f%s | %.1f |\n", s, m.rss/float64(m.n), p, m.cpu/float64(m.n))
	}
	b.WriteString("\n")
	for _, n := range notes {
		fmt.Fprintf(b, "%s\n\n", strings.TrimPrefix(n, FootprintNotePrefix))
	}
}

// splitFootprintNotes separates the footprint's notes from the others.
func splitFootprintNotes(notes []string) (general, footprint []string) {
	for _, n := range notes {
		if strings.HasPrefix(n, FootprintNotePrefix) {
			footprint = append(footprint, n)
		} else {
			general = append(general, n)
		}
	}
	return general, footprint
}

func mib(b int64) float64          { return float64(b) / (1 << 20) }
func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
