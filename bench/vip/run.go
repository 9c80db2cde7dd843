package vip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/masterd/masterd/bench/report"
	"github.com/masterd/masterd/integration/lab"
)

// Result is what a run measured, complete or cut short.
type Result struct {
	Trials    []report.Trial
	Footprint []report.Footprint
	// Notes say what did not go as planned (a system cut short, a failed
	// switch, the footprint not measured).
	Notes []string
	// KubeAPI is true when the kube binaries ran and API times were measured.
	KubeAPI bool
}

// Run boots the lab, runs every system's trials, and tears the lab down (on
// every path). Checkpoint, when not nil, is called after every system with
// the result so far (to write partial results). The error is about the lab
// itself; trials that failed are in the result with Err set.
func Run(ctx context.Context, cfg Config, checkpoint func(*Result)) (*Result, error) {
	return run(ctx, cfg, checkpoint, false)
}

// run is Run; footprintOnly skips the trials (RunFootprint).
func run(ctx context.Context, cfg Config, checkpoint func(*Result), footprintOnly bool) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vip bench: config: %w", err)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	start := time.Now()
	deadline := start.Add(cfg.Budget)
	// A hard stop a little after the budget: trials stop at the budget, the
	// lab's teardown may take a minute.
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(5*time.Minute))
	defer cancel()
	var pmu sync.Mutex
	progress := func(format string, args ...any) {
		pmu.Lock()
		defer pmu.Unlock()
		fmt.Fprintf(cfg.Progress, "[%s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	res := &Result{}

	opts := cfg.Lab
	// masterd's defaults (vip.fence is on by default): the first system of
	// a full run boots without a switch.
	opts.VIPProfile, opts.Fence = "default", true
	opts.Progress = progressWriter{progress}
	progress("lab up: %d masters, prefix %s, kube binaries: %v", opts.Masters, opts.Prefix, opts.KubeBinDir != "")
	l, err := lab.Up(ctx, opts)
	if err != nil {
		return res, err
	}
	defer func() {
		progress("lab down")
		if err := l.Down(); err != nil {
			progress("lab down: %v", err)
		}
	}()
	res.KubeAPI = l.KubeEnabled()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Minute)
	err = l.WaitReady(wctx)
	wcancel()
	if err != nil {
		return res, err
	}
	b := &bench{cfg: cfg, l: l, vip: net.IP(l.VIP().AsSlice()), progress: progress}
	if l.KubeEnabled() {
		kc, err := l.AdminKubeconfig()
		if err == nil {
			b.api, err = newAPIClient(kc, l.ClientNS())
		}
		if err == nil {
			actx, cancel := context.WithTimeout(ctx, time.Minute)
			err = b.api.ensureWriteTarget(actx)
			cancel()
		}
		if err != nil {
			return res, err
		}
	}
	macs, err := l.MACs()
	if err != nil {
		return res, err
	}
	for _, m := range l.Masters() {
		b.masterNS = append(b.masterNS, m.Name)
		b.macs = append(b.macs, macs[m.Name])
	}

	// The standalone etcd for the footprint builds while masterd runs.
	etcdBin := make(chan string, 1)
	if cfg.Footprint {
		go func() {
			if cfg.EtcdBinary != "" {
				etcdBin <- cfg.EtcdBinary
				return
			}
			p, err := buildEtcd(ctx, l.Dir())
			if err != nil {
				progress("footprint: %v", err)
			}
			etcdBin <- p
		}()
	}
	measuredMasterd, measuredClassic := false, false

	for si, name := range cfg.Systems {
		s, _ := systemByName(name)
		// Its share of what is left by estimated cost (a minute kept for
		// the teardown): time a fast system did not use goes to the rest.
		left := time.Until(deadline) - time.Minute
		var rest time.Duration
		for _, n := range cfg.Systems[si:] {
			r, _ := systemByName(n)
			rest += cfg.cost(r)
		}
		sysDeadline := time.Now().Add(time.Duration(float64(left) * float64(cfg.cost(s)) / float64(rest)))
		trials := cfg.trials(s.Name)
		progress("%s: switching (budget until %s)", s.Name, sysDeadline.UTC().Format("15:04:05"))
		if err := b.configure(ctx, s); err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("%s: not measured: switching to it failed: %v", s.Name, err))
			progress("%s: switch failed: %v", s.Name, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if cfg.Footprint && s.masterdVIP() && !measuredMasterd {
			measuredMasterd = true
			b.footprintMasterd(ctx, res)
		}
		if cfg.Footprint && s.Keepalived && !measuredClassic {
			measuredClassic = true
			b.footprintClassic(ctx, s, <-etcdBin, res)
		}
		if footprintOnly {
			trials = 0
		}
		cut := false
	trials:
		for n := 1; n <= trials; n++ {
			for _, sc := range cfg.Scenarios {
				if time.Now().After(sysDeadline) || ctx.Err() != nil {
					cut = true
					break trials
				}
				if takeoverScenario(sc) && (s.Name != takeoverSystem || n > cfg.TakeoverTrials) {
					continue
				}
				var t report.Trial
				if takeoverScenario(sc) {
					t = b.takeoverTrial(ctx, s, sc, n)
				} else {
					t = b.trial(ctx, s, sc, n)
				}
				res.Trials = append(res.Trials, t)
				progress("%s %s %d/%d: %s", s.Name, sc, n, trials, describe(t))
				if strings.Contains(t.Err, "undo:") || strings.HasPrefix(t.Err, "before the fault") {
					progress("%s: recovering the lab", s.Name)
					if err := b.recover(ctx, s); err != nil {
						res.Notes = append(res.Notes, fmt.Sprintf("%s: stopped after trial %d of %s: lab not recovered: %v", s.Name, n, sc, err))
						progress("%s: not recovered: %v", s.Name, err)
						break trials
					}
				}
			}
		}
		if cut {
			res.Notes = append(res.Notes, fmt.Sprintf("%s: cut short by the time budget (-budget) after %d trials", s.Name, countSystem(res.Trials, s.Name)))
		}
		if checkpoint != nil {
			checkpoint(res)
		}
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("vip bench: %w", ctx.Err())
	}
	return res, nil
}

// takeoverSystem is the one system the takeover scenarios run in: the kube
// components' roles are masterd's whoever holds the VIP, and the default
// profile is what users run.
const takeoverSystem = "masterd-default"

func countSystem(ts []report.Trial, sys string) int {
	n := 0
	for _, t := range ts {
		if t.System == sys {
			n++
		}
	}
	return n
}

func describe(t report.Trial) string {
	moved := "never"
	if t.Moved >= 0 {
		moved = fmt.Sprintf("%.3fs", t.Moved.Seconds())
	}
	s := fmt.Sprintf("%s → %s, outage %.3fs, VIP moved %s, dual ip %d/%d wire %d/%d", t.Victim, t.NewHolder,
		t.Outage.Seconds(), moved, t.DualSamples, t.Samples, t.DualARP, t.ARPRounds)
	if t.Scenario == Partition {
		s += fmt.Sprintf(", post-heal %.3fs", t.PostHeal.Seconds())
	}
	if t.Scenario == Stress {
		s += fmt.Sprintf(", false failovers %d", t.FalseFailovers)
	}
	fig := func(d time.Duration) string {
		if d == report.NotWithin {
			return "never"
		}
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
	if t.API >= 0 || t.API == report.NotWithin {
		s += fmt.Sprintf(", readyz %s (every request %s)", fig(t.API), fig(t.APIServed))
	}
	if t.APIWrite >= 0 || t.APIWrite == report.NotWithin {
		s += fmt.Sprintf(", write %s (every request %s)", fig(t.APIWrite), fig(t.APIWriteServed))
	}
	if t.VictimRoles != "" {
		s += ", victim held " + t.VictimRoles
	}
	if t.PodBound >= 0 {
		s += fmt.Sprintf(", pod bound %.3fs", t.PodBound.Seconds())
	}
	if t.PodsCreated >= 0 {
		s += fmt.Sprintf(", deployment's pod %.3fs", t.PodsCreated.Seconds())
	}
	if t.StaleNeighbour {
		s += ", client neighbour stale after undo (flushed)"
	}
	if t.Err != "" {
		s += ", ERROR: " + t.Err
	}
	return s
}

type progressWriter struct{ f func(string, ...any) }

func (w progressWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.f("%s", line)
	}
	return len(p), nil
}

var (
	vipEnabledRE = regexp.MustCompile(`(?m)^vip:\n  enabled: \w+\n`)
	profileRE    = regexp.MustCompile(`(?m)^  profile: \w+\n  fence: \w+\n`)
)

// configure makes s the one system managing the VIP.
func (b *bench) configure(ctx context.Context, s System) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	ms := b.l.Masters()
	profile, fence := s.Profile, s.Fence
	if !s.masterdVIP() {
		profile, fence = "default", false
	}
	// keepalived, kube-vip and their haproxy off everywhere first (no-op
	// for masterd to masterd).
	for _, m := range ms {
		stopUnit(ctx, m, keepalivedUnit)
		stopUnit(ctx, m, kubeVIPUnit)
	}
	stopHAProxy(ctx, b.l)
	changed := false
	for _, m := range ms {
		p := m.Host().Path("/etc/masterd/masterd.yaml")
		old, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !vipEnabledRE.Match(old) || !profileRE.Match(old) {
			return fmt.Errorf("%s: masterd.yaml has no vip.enabled/profile/fence lines the benchmark can switch", m.Name)
		}
		neu := vipEnabledRE.ReplaceAll(old, []byte(fmt.Sprintf("vip:\n  enabled: %v\n", s.masterdVIP())))
		neu = profileRE.ReplaceAll(neu, []byte(fmt.Sprintf("  profile: %s\n  fence: %v\n", profile, fence)))
		if string(neu) != string(old) {
			changed = true
			if err := os.WriteFile(p, neu, 0o644); err != nil {
				return err
			}
		}
	}
	if changed {
		var wg sync.WaitGroup
		errs := make([]error, len(ms))
		for i, m := range ms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = m.Exec(ctx, "systemctl", "restart", "--no-block", "masterd")
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		sleepCtx(ctx, 2*time.Second)
	}
	if s.masterdVIP() {
		_, err := b.waitStable(ctx, s, 5*time.Minute)
		return err
	}
	if err := b.waitMastersReady(ctx); err != nil {
		return err
	}
	for _, m := range ms {
		removeFence(ctx, m)
		if err := delVIP(ctx, b.l, m); err != nil {
			return err
		}
	}
	// masterd's balancer no longer listens on VIP:6443 (vip.enabled
	// false): haproxy does, as in the classic stack.
	if err := startHAProxy(ctx, b.l); err != nil {
		return err
	}
	if s.KubeVIP {
		bin, err := os.ReadFile(b.cfg.KubeVIPBinary)
		if err != nil {
			return fmt.Errorf("vip bench: kube-vip binary: %w", err)
		}
		for _, m := range ms {
			if err := installKubeVIP(m, bin); err != nil {
				return err
			}
		}
	}
	for i := range ms {
		if err := b.startDaemon(ctx, s, i); err != nil {
			return err
		}
	}
	_, err := b.waitStable(ctx, s, 2*time.Minute)
	return err
}

// startDaemon starts the VIP daemon of a system other than masterd on
// master i.
func (b *bench) startDaemon(ctx context.Context, s System, i int) error {
	if s.KubeVIP {
		return startKubeVIP(ctx, b.l, b.l.Masters()[i])
	}
	return startKeepalived(ctx, b.l, s, i)
}

// waitMastersReady waits until every masterd reports ready (used when
// masterd does not hold the VIP, where lab.WaitReady would wait for one).
func (b *bench) waitMastersReady(ctx context.Context) error {
	var last error
	for {
		sts, err := b.l.Statuses(ctx)
		if err == nil {
			var bad []string
			for _, m := range b.l.Masters() {
				if !sts[m.Name].Ready {
					bad = append(bad, m.Name)
				}
			}
			if len(bad) == 0 {
				return nil
			}
			err = fmt.Errorf("not ready: %v", bad)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("masters not ready: %v: %w", last, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// recover brings every master back after a trial that could not be undone:
// links up, partitions healed, keepalived or masterd started, then waits
// for stability.
func (b *bench) recover(ctx context.Context, s System) error {
	for i, m := range b.l.Masters() {
		_ = b.l.RestoreLink(ctx, m)
		_ = heal(ctx, m)
		if !s.masterdVIP() {
			if out, _ := m.Exec(ctx, "systemctl", "is-active", haproxyUnit); strings.TrimSpace(string(out)) != "active" {
				if err := startUnit(ctx, m, haproxyUnit, nil, "/usr/sbin/haproxy", "-Ws", "-f", "/etc/haproxy/bench.cfg"); err != nil {
					return err
				}
			}
			if out, _ := m.Exec(ctx, "systemctl", "is-active", s.daemonUnit()); strings.TrimSpace(string(out)) != "active" {
				_ = delVIP(ctx, b.l, m)
				if err := b.startDaemon(ctx, s, i); err != nil {
					return err
				}
			}
		} else if out, _ := m.Exec(ctx, "systemctl", "is-active", "masterd"); strings.TrimSpace(string(out)) != "active" {
			_, _ = m.Exec(ctx, "systemctl", "reset-failed", "masterd")
			_ = m.StartMasterd(ctx)
		}
	}
	_, err := b.waitStable(ctx, s, 5*time.Minute)
	return err
}
