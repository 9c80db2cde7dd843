// Command bench runs masterd's benchmarks that need the lab and writes
// bench/results/latest.md (with latest.csv, latest-footprint.csv and one
// latest-<scenario>.svg outage CDF per scenario):
//
//	go run ./bench/cmd/bench             # VIP failover + footprint (make bench)
//	go run ./bench/cmd/bench -only vip   # VIP failover only (make bench-vip)
//	go run ./bench/cmd/bench -only footprint -append   # both stacks' footprint only
//	go run ./bench/cmd/bench -render     # re-render the note from latest.csv
//
// The note also copies bench/results/etcd.md and lb.md (make bench-etcd,
// make bench-lb) so one page holds every figure. It needs root, the masterd
// .deb under dist/ (make package), keepalived and stress-ng (make deps), and
// optionally the kube binaries (make kube) for API-through-the-VIP times and
// kube-vip (integration/kubevip/build.sh, -kube-vip) for the kube-vip
// system; without it the note says kube-vip was not measured and why.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/masterd/masterd/bench/report"
	"github.com/masterd/masterd/bench/vip"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := vip.DefaultConfig()
	only := flag.String("only", "", "run only this benchmark: vip (failover, no footprint) or footprint (both stacks' footprint, no trials)")
	flag.IntVar(&cfg.Trials, "trials", cfg.Trials, "trials per system and scenario (the issues ask 20-30)")
	flag.Func("trials-for", "system=N: trials per scenario for one system instead of -trials (repeatable)", func(v string) error {
		name, num, ok := strings.Cut(v, "=")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			return fmt.Errorf("%q: want system=N", v)
		}
		if cfg.TrialsFor == nil {
			cfg.TrialsFor = map[string]int{}
		}
		cfg.TrialsFor[name] = n
		return nil
	})
	flag.DurationVar(&cfg.Budget, "budget", cfg.Budget, "time bound of the whole run; split evenly over the systems")
	systems := flag.String("systems", strings.Join(cfg.Systems, ","), "systems to compare, in order")
	scenarios := flag.String("scenarios", strings.Join(cfg.Scenarios, ","), "scenarios to run")
	flag.DurationVar(&cfg.StressDuration, "stress", cfg.StressDuration, "stress-ng duration per stress trial")
	flag.DurationVar(&cfg.FootprintWindow, "footprint-window", cfg.FootprintWindow, "idle CPU measuring window")
	out := flag.String("out", "bench/results", "results directory")
	deb := flag.String("deb", cfg.Lab.Deb, "masterd .deb to install in the lab")
	kube := flag.String("kube", cfg.Lab.KubeBinDir, "directory of the kube binaries (empty: none, no API times)")
	prefix := flag.String("prefix", cfg.Lab.Prefix, "lab name prefix")
	flag.StringVar(&cfg.KubeVIPBinary, "kube-vip", cfg.KubeVIPBinary, "kube-vip binary for the kube-vip system (integration/kubevip/build.sh builds it; empty: the system is left out)")
	render := flag.Bool("render", false, "do not run: re-render latest.md and the plots from latest.csv")
	appendPrev := flag.Bool("append", false, "keep the trials of latest.csv in -out for the cells (system and scenario) this run does not measure, and latest-footprint.csv's rows when this run measures no footprint")
	var extraNotes []string
	flag.Func("note", "a line for the note (repeatable)", func(v string) error { extraNotes = append(extraNotes, v); return nil })
	plotsOnly := flag.Bool("plots", false, "with -render: re-render only the plots (latest.md keeps its footprint and notes)")
	flag.Parse()
	cfg.Systems = split(*systems)
	cfg.Scenarios = split(*scenarios)
	cfg.Lab.Deb, cfg.Lab.KubeBinDir, cfg.Lab.Prefix = *deb, *kube, *prefix
	runBench := vip.Run
	switch *only {
	case "":
	case "vip":
		cfg.Footprint = false
	case "footprint":
		runBench = vip.RunFootprint
	default:
		return fmt.Errorf("-only %q: want vip or footprint", *only)
	}
	command := "go run ./bench/cmd/bench " + strings.Join(os.Args[1:], " ")
	if *render {
		return rerender(*out, cfg, *plotsOnly)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (it boots systemd in network namespaces)")
	}
	for _, bin := range []string{"keepalived", "stress-ng", "haproxy", "nft", "ping"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not installed: run `make deps`", bin)
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	meta := report.Meta{
		Title:       "VIP failover: masterd vs keepalived, side by side",
		Command:     strings.TrimSpace(command),
		Start:       time.Now(),
		Machine:     machine(),
		LoadBefore:  loadavg(),
		Versions:    versions(cfg.Lab.Deb, cfg.KubeVIPBinary),
		TrialsAsked: cfg.Trials,
	}
	var prevTrials []report.Trial
	var prevFoot []report.Footprint
	if *appendPrev {
		var err error
		measured, scs := cfg.Systems, cfg.Scenarios
		if *only == "footprint" {
			measured, scs = nil, nil // no trials: every earlier cell stays
		}
		prevTrials, prevFoot, err = readPrevious(*out, measured, scs)
		if err != nil {
			return fmt.Errorf("-append: %w", err)
		}
	}
	write := func(res *vip.Result, final bool) {
		meta.End = time.Now()
		meta.LoadAfter = loadavg()
		if !final {
			meta.LoadAfter += " (partial: run in progress)"
		}
		meta.Notes = append(append([]string(nil), extraNotes...), notes(cfg, res)...)
		meta.Footprint = res.Footprint
		if len(meta.Footprint) == 0 {
			meta.Footprint = prevFoot
		}
		trials := append(append([]report.Trial(nil), prevTrials...), res.Trials...)
		if err := writeAll(*out, meta, cfg, trials); err != nil {
			fmt.Fprintln(os.Stderr, "bench: write results:", err)
		}
	}
	fmt.Printf("bench: %d trials per cell, systems %v, scenarios %v, budget %v, results in %s\n",
		cfg.Trials, cfg.Systems, cfg.Scenarios, cfg.Budget, *out)
	res, err := runBench(ctx, cfg, func(r *vip.Result) { write(r, false) })
	if res != nil {
		write(res, true)
		fmt.Printf("bench: wrote %s\n", filepath.Join(*out, "latest.md"))
	}
	return err
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func notes(cfg vip.Config, res *vip.Result) []string {
	n := []string{
		"Outage is client-visible: the longest gap between replies of a 10 ms ping from the client namespace, from the fault until the client is served again (1 s of replies without a gap over 200 ms) or the observation window ends (10 s, or 4 × the system's expected failover + 4 s; an outage still running then counts up to the window). It includes up to one ping interval.",
		"Dual holders are counted two ways: `ip addr` of every master namespace on the wire every 10 ms (a link-cut holder is off the wire and not counted), and ARP who-has for the VIP from the client every 20 ms (two or more MACs answering).",
	}
	if !res.KubeAPI {
		n = append(n, "No kube binaries in this run (`make kube` builds them): masters ran with kubernetes.mode none, so the time to a successful Kubernetes API call through the VIP is n/a.")
	}
	if cfg.Trials > 0 && cfg.Trials < 30 {
		n = append(n, fmt.Sprintf("Issue 11 asks for at least 30 trials per cell (issues 5 and 13: 20); this run used -trials %d. Percentiles over few trials are rough: with 20, p95 is the second-largest value.", cfg.Trials))
	}
	return append(n, res.Notes...)
}

func writeAll(dir string, meta report.Meta, cfg vip.Config, trials []report.Trial) error {
	var errs []error
	var csvBuf bytes.Buffer
	errs = append(errs, report.WriteCSV(&csvBuf, trials))
	errs = append(errs, os.WriteFile(filepath.Join(dir, "latest.csv"), csvBuf.Bytes(), 0o644))
	if len(meta.Footprint) > 0 {
		var fb strings.Builder
		fb.WriteString("stack,component,host,rss_bytes,cpu_ms_per_s,window_s,error\n")
		for _, f := range meta.Footprint {
			fmt.Fprintf(&fb, "%s,%q,%s,%d,%.2f,%.1f,%q\n", f.Stack, f.Component, f.Host, f.RSS,
				float64(f.CPU)/float64(time.Millisecond), f.Window.Seconds(), f.Err)
		}
		errs = append(errs, os.WriteFile(filepath.Join(dir, "latest-footprint.csv"), []byte(fb.String()), 0o644))
	}
	meta.Systems = nil
	for _, s := range vip.Systems() {
		d := s.Description
		if s.KubeVIP && !slices.ContainsFunc(trials, func(t report.Trial) bool { return t.System == s.Name }) {
			d = "not measured in this run: " + kubeVIPMissing(cfg)
		}
		meta.Systems = append(meta.Systems, report.Named{Name: s.Name, Description: d})
	}
	desc := vip.ScenarioDescriptions()
	meta.Scenarios = nil
	for _, sc := range vip.AllScenarios() {
		meta.Scenarios = append(meta.Scenarios, report.Named{Name: sc, Description: desc[sc]})
	}
	plots, err := writePlots(dir, trials)
	errs = append(errs, err)
	meta.Plots = plots
	for _, f := range []string{"etcd.md", "lb.md"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			meta.Appendix = append(meta.Appendix, "# Appendix: "+f+" (copied from bench/results/"+f+")\n\n"+string(b))
		}
	}
	var md bytes.Buffer
	errs = append(errs, report.Markdown(&md, meta, trials))
	errs = append(errs, os.WriteFile(filepath.Join(dir, "latest.md"), md.Bytes(), 0o644))
	return errors.Join(errs...)
}

// readPrevious reads the trials and the footprint rows of an earlier run
// from dir, leaving out the trials of the cells this run measures (a
// system of systems in a scenario of scenarios).
func readPrevious(dir string, systems, scenarios []string) ([]report.Trial, []report.Footprint, error) {
	f, err := os.Open(filepath.Join(dir, "latest.csv"))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	all, err := report.ReadCSV(f)
	if err != nil {
		return nil, nil, err
	}
	var trials []report.Trial
	for _, t := range all {
		if !slices.Contains(systems, t.System) || !slices.Contains(scenarios, t.Scenario) {
			trials = append(trials, t)
		}
	}
	var foot []report.Footprint
	fb, err := os.Open(filepath.Join(dir, "latest-footprint.csv"))
	if err != nil {
		return trials, nil, nil
	}
	defer fb.Close()
	recs, err := csv.NewReader(fb).ReadAll()
	if err != nil {
		return nil, nil, err
	}
	for _, r := range recs[min(1, len(recs)):] {
		if len(r) != 7 {
			continue
		}
		rss, _ := strconv.ParseInt(r[3], 10, 64)
		cpu, _ := strconv.ParseFloat(r[4], 64)
		win, _ := strconv.ParseFloat(r[5], 64)
		foot = append(foot, report.Footprint{Stack: r[0], Component: r[1], Host: r[2], RSS: rss,
			CPU: time.Duration(cpu * float64(time.Millisecond)), Window: time.Duration(win * float64(time.Second)), Err: r[6]})
	}
	return trials, foot, nil
}

// writePlots writes latest-<scenario>.svg for every scenario with trials
// and returns their names by scenario.
func writePlots(dir string, trials []report.Trial) (map[string]string, error) {
	var errs []error
	plots := map[string]string{}
	cells := report.Cells(trials, vip.AllSystems(), vip.AllScenarios())
	for _, sc := range vip.AllScenarios() {
		if report.TakeoverScenario(sc) {
			continue // no VIP outage to plot
		}
		var series []report.Series
		found := false
		for _, sys := range vip.AllSystems() {
			s := report.Series{Name: sys}
			for _, c := range cells {
				if c.System == sys && c.Scenario == sc {
					s.Values = c.Figure(func(t report.Trial) time.Duration { return t.Outage }, nil)
					found = true
				}
			}
			series = append(series, s)
		}
		if !found {
			continue
		}
		name := "latest-" + sc + ".svg"
		var sb bytes.Buffer
		errs = append(errs, report.CDFSVG(&sb, "client-visible outage, "+sc+" (CDF)", series))
		errs = append(errs, os.WriteFile(filepath.Join(dir, name), sb.Bytes(), 0o644))
		plots[sc] = name
	}
	return plots, errors.Join(errs...)
}

// rerender rebuilds the note from latest.csv, keeping the header facts of
// the existing note where it can (they are not in the CSV).
func rerender(dir string, cfg vip.Config, plotsOnly bool) error {
	f, err := os.Open(filepath.Join(dir, "latest.csv"))
	if err != nil {
		return err
	}
	defer f.Close()
	trials, err := report.ReadCSV(f)
	if err != nil {
		return err
	}
	if plotsOnly {
		_, err := writePlots(dir, trials)
		return err
	}
	meta := report.Meta{Title: "VIP failover: masterd vs keepalived, side by side (re-rendered from latest.csv)",
		Command: "go run ./bench/cmd/bench -render", Start: time.Now(), End: time.Now(), Machine: machine(),
		LoadBefore: loadavg(), LoadAfter: loadavg(), Versions: versions(cfg.Lab.Deb, cfg.KubeVIPBinary), TrialsAsked: cfg.Trials,
		Notes: []string{"Re-rendered from latest.csv: the footprint and the run's notes are not in the CSV."}}
	return writeAll(dir, meta, cfg, trials)
}

// kubeVIPMissing says why a run has no kube-vip trials.
func kubeVIPMissing(cfg vip.Config) string {
	switch {
	case cfg.KubeVIPBinary == "":
		return "kube-vip " + vip.KubeVIPVersion + " is not built (integration/kubevip/build.sh builds it from the Go module proxy into ~/.cache/masterd/kube-vip/; `make bench` runs it)."
	case cfg.Lab.KubeBinDir == "":
		return "no kube binaries (`make kube`): kube-vip elects its leader through the Kubernetes API."
	case !slices.Contains(cfg.Systems, "kube-vip"):
		return "not selected (-systems)."
	}
	return "its trials did not run (see the notes)."
}

func machine() string {
	var model string
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s", runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), runtime.Version())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func versions(deb, kubeVIP string) []string {
	first := func(argv ...string) string {
		out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if line == "" {
			return argv[0] + " (not found)"
		}
		return line
	}
	kv := "kube-vip (not built)"
	if kubeVIP != "" {
		kv = "kube-vip " + vip.KubeVIPVersion + " (built from the Go module proxy: " + kubeVIP + ")"
	}
	return []string{
		"masterd " + strings.TrimSuffix(strings.TrimPrefix(filepath.Base(deb), "masterd_"), "_amd64.deb"),
		first("keepalived", "--version"),
		first("haproxy", "-v"),
		first("stress-ng", "--version"),
		"etcd v3.7.3 (embedded in masterd; standalone bench/etcd/etcdserver for the footprint)",
		"systemd " + strings.TrimPrefix(first("systemctl", "--version"), "systemd "),
		kv,
	}
}
