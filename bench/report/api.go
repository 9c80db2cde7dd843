package report

import (
	"fmt"
	"strings"
	"time"
)

// TakeoverScenario reports whether scenario sc measures the kube
// components' takeover (its trials carry PodBound and PodsCreated, not a
// VIP outage).
func TakeoverScenario(sc string) bool { return strings.HasPrefix(sc, "takeover-") }

// apiTable writes the API availability table: per system and scenario, the
// time from the fault to the first successful readyz and write through the
// VIP, p50 / max over the valid trials that measured them. Scenarios
// without any API figure are left out; "" when none has one.
func apiTable(cells []Cell, systems, scenarios []string) string {
	cell := func(sys, sc string) *Cell { return findCell(cells, sys, sc) }
	readyz := func(t Trial) time.Duration { return t.API }
	write := func(t Trial) time.Duration { return t.APIWrite }
	measured := func(get func(Trial) time.Duration) func(Trial) bool {
		return func(t Trial) bool { return get(t) >= 0 }
	}
	var scs []string
	for _, sc := range scenarios {
		for _, sys := range systems {
			if c := cell(sys, sc); c != nil && len(c.Figure(readyz, measured(readyz))) > 0 {
				scs = append(scs, sc)
				break
			}
		}
	}
	if len(scs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## API availability through the VIP: readyz and write, p50 / max (ms)\n\n")
	b.WriteString("From the fault, through the VIP from the client namespace: `GET /readyz` answered `ok`, and a write (a merge patch of one ConfigMap, through etcd's quorum). A new attempt starts every 100 ms for 6 s after the fault, each on a new TCP connection (no keep-alive) and bounded by 3 s, several in flight at once. *first*: the end of the first successful attempt (some new client is served). *every request*: the end of the first attempt from which on every later one succeeded within 1 s (every new client is served promptly, whichever backend the balancer picks; a SYN lost before the VIP moved costs Linux's 1 s retransmission and counts as slow); \"never\" counts trials where that did not happen within the 6 s. n counts the trials with the figure.\n\n")
	b.WriteString("| system | scenario | readyz first | readyz every request | write first | write every request |\n|---|---|---:|---:|---:|---:|\n")
	served := func(t Trial) time.Duration { return t.APIServed }
	writeServed := func(t Trial) time.Duration { return t.APIWriteServed }
	for _, sys := range systems {
		for _, sc := range scs {
			c := cell(sys, sc)
			if c == nil || !probed(c) {
				continue // not run, or measured by an earlier run's kubectl probe
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", sys, sc, figure(c, readyz), figure(c, served), figure(c, write), figure(c, writeServed))
		}
	}
	b.WriteString("\n")
	return b.String()
}

// probed reports whether a cell's trials ran the in-process probes (they
// measure the write; earlier runs' kubectl probe measured readyz only, and
// its figures stay in the per-scenario tables' API column).
func probed(c *Cell) bool {
	for _, t := range c.Valid() {
		if t.APIWrite >= 0 || t.APIWrite == NotWithin {
			return true
		}
	}
	return false
}

// figure renders "p50 / max (n=N[, M never])" of get over c's valid
// trials: N trials with the figure, M where it did not happen within its
// window (NotWithin); trials that did not measure it are left out.
func figure(c *Cell, get func(Trial) time.Duration) string {
	s := Summarize(c.Figure(get, func(t Trial) bool { return get(t) >= 0 }))
	never := 0
	for _, t := range c.Valid() {
		if get(t) == NotWithin {
			never++
		}
	}
	if s.N == 0 {
		if never > 0 {
			return fmt.Sprintf("never (%d)", never)
		}
		return "–"
	}
	out := fmt.Sprintf("%s / %s (n=%d", fmtMS(s.P50), fmtMS(s.Max), s.N)
	if never > 0 {
		out += fmt.Sprintf(", %d never", never)
	}
	return out + ")"
}

// takeoverTable writes the kube components' takeover: per takeover
// scenario and system, the new Pod bound (trials whose victim held the
// scheduler role) and the scaled Deployment's new pod (trials whose victim
// held the controller-manager role). "" when no takeover trial ran.
func takeoverTable(cells []Cell) string {
	var rows []string
	for i := range cells {
		c := &cells[i]
		if !TakeoverScenario(c.Scenario) || len(c.Trials) == 0 {
			continue
		}
		held := func(role string) *Cell {
			sub := &Cell{System: c.System, Scenario: c.Scenario}
			for _, t := range c.Trials {
				for _, r := range strings.Split(t.VictimRoles, ",") {
					if r == role {
						sub.Trials = append(sub.Trials, t)
					}
				}
			}
			return sub
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %d (%d) | %s | %s |", c.Scenario, c.System, len(c.Valid()), len(c.Trials)-len(c.Valid()),
			figure(held("scheduler"), func(t Trial) time.Duration { return t.PodBound }),
			figure(held("controller-manager"), func(t Trial) time.Duration { return t.PodsCreated })))
	}
	if len(rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## Takeover of kube-scheduler and kube-controller-manager, p50 / max (ms)\n\n")
	b.WriteString("From the fault to the work a user waits for, asked through the VIP right after the fault (retried until the API takes it): a new Pod bound to a node (counted in trials whose victim held the scheduler role) and a Deployment scaled up by one getting its new pod (trials whose victim held the controller-manager role). The request's own wait for the API is included.\n\n")
	b.WriteString("| scenario | system | n (errors) | new Pod bound | Deployment's new pod |\n|---|---|---:|---:|---:|\n")
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	b.WriteString("\n")
	return b.String()
}
