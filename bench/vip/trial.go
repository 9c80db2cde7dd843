package vip

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"time"

	"github.com/masterd/masterd/bench/report"
	"github.com/masterd/masterd/election"
	"github.com/masterd/masterd/integration/lab"
)

// bench holds a run's lab and what trials need from it.
type bench struct {
	cfg      Config
	l        *lab.Lab
	masterNS []string
	macs     []string // by master index
	vip      net.IP
	progress func(format string, args ...any)
	// api makes the API probes' requests (nil without kube binaries).
	api *apiClient
	// takeoverReady is set once the takeover workload exists.
	takeoverReady bool
}

// Sampling intervals (the issues' 10 ms; ARP every 20 ms with 10 ms for the
// answers).
const (
	sampleEvery = 10 * time.Millisecond
	pingEvery   = 10 * time.Millisecond
	arpEvery    = 20 * time.Millisecond
	arpWait     = 10 * time.Millisecond
	// served: the client is served again once pings flowed with no gap over
	// servedGap for servedSpan.
	servedSpan = time.Second
	servedGap  = 200 * time.Millisecond
	// apiWait is how long a trial waits for the API probes after the
	// VIP's observation ended.
	apiWait = 20 * time.Second
	// slowFault: a fault injection that took longer is reported.
	slowFault = 200 * time.Millisecond
)

func (b *bench) macIndex(mac string) int {
	for i, m := range b.macs {
		if m == mac {
			return i
		}
	}
	return -1
}

func (b *bench) names(mask uint8) string {
	var out []string
	for i, n := range b.masterNS {
		if mask&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, "+")
}

// holder returns the index of the one master namespace holding the VIP.
func (b *bench) holder() (int, error) {
	hs, err := b.l.VIPHolders()
	if err != nil {
		return -1, err
	}
	if len(hs) != 1 {
		return -1, fmt.Errorf("VIP holders %v, want one", hs)
	}
	for i, n := range b.masterNS {
		if n == hs[0] {
			return i, nil
		}
	}
	return -1, fmt.Errorf("holder %s is no master", hs[0])
}

// window is the longest a fault is observed before the trial gives up
// waiting for the client to be served again.
func window(s System) time.Duration {
	return max(10*time.Second, 4*s.Expect+4*time.Second)
}

// partitionHold is how long a partition lasts: long enough for every
// system's failover twice over.
func partitionHold(s System) time.Duration {
	return max(4*time.Second, 2*s.Expect+time.Second)
}

// healWindow bounds the observation after a heal; a blackout still running
// at its end counts up to it.
const healWindow = 15 * time.Second

// trial runs one fault of scenario sc against the current holder, measures
// it, undoes it and waits for the lab to be stable again.
func (b *bench) trial(ctx context.Context, s System, sc string, n int) report.Trial {
	t := report.Trial{System: s.Name, Scenario: sc, N: n, Moved: -1, API: -1, APIWrite: -1, APIServed: -1, APIWriteServed: -1, PodBound: -1, PodsCreated: -1}
	vi, err := b.holder()
	if err != nil {
		t.Err = "before the fault: " + err.Error()
		return t
	}
	victim := b.l.Masters()[vi]
	vbit := uint8(1) << vi
	t.Victim = victim.Name
	smp, err := startSampler(b.masterNS, b.l.ClientNS(), b.vip, sampleEvery)
	if err != nil {
		t.Err = err.Error()
		return t
	}
	png, err := startPinger(b.l.ClientNS(), b.vip, pingEvery)
	if err != nil {
		smp.halt()
		t.Err = err.Error()
		return t
	}
	arp, err := b.l.MonitorARP(arpEvery, arpWait)
	if err != nil {
		smp.halt()
		png.halt()
		t.Err = err.Error()
		return t
	}
	time.Sleep(500 * time.Millisecond)

	t0 := time.Now()
	apiCtx, apiCancel := context.WithCancel(ctx)
	defer apiCancel()
	var healAt time.Time
	ferr := b.fault(ctx, s, sc, victim)
	if took := time.Since(t0); took > slowFault && b.progress != nil {
		// Every figure counts from t0, before the fault: a slow injection
		// (a loaded host's nft or ip) makes the fault's instant uncertain
		// within this span.
		b.progress("%s %s %d: injecting the fault took %v", s.Name, sc, n, took.Round(time.Millisecond))
	}
	// The probes start once the fault is on the wire: a request sent
	// before it may still be served by the victim and would say nothing.
	type probed struct{ first, servedFrom time.Duration }
	var readyzDone, writeDone chan probed
	if b.api != nil && apiScenario(sc) {
		readyzDone, writeDone = make(chan probed, 1), make(chan probed, 1)
		go func() {
			f, s := b.serveProbe(apiCtx, t0, "readyz", func(ctx context.Context) error { return b.api.readyz(ctx, "") })
			readyzDone <- probed{f, s}
		}()
		go func() {
			f, s := b.serveProbe(apiCtx, t0, "write", b.api.writeConfigMap)
			writeDone <- probed{f, s}
		}()
	}
	if sc == Crash && ferr == nil {
		ferr = b.l.KillPID1(victim) // the link is cut: now the machine dies
	}
	switch {
	case ferr != nil:
	case sc == Partition:
		sleepCtx(ctx, partitionHold(s))
		healAt = time.Now()
		ferr = heal(ctx, victim)
		deadline := healAt.Add(healWindow)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			sleepCtx(ctx, 50*time.Millisecond)
			if png.served(servedSpan, servedGap) && b.clientOnHolder(smp.snapshot(), servedSpan) {
				break
			}
		}
	case sc == Stress:
		done := make(chan error, 1)
		go func() { done <- stress(ctx, victim, b.cfg.StressDuration) }()
		ferr = <-done
		sleepCtx(ctx, time.Second)
	default:
		deadline := t0.Add(window(s))
		for time.Now().Before(deadline) && ctx.Err() == nil {
			sleepCtx(ctx, 50*time.Millisecond)
			// Served again, and the new holder observed for a second (a
			// victim that keeps answering serves the client throughout;
			// the dual holding it leaves must still be seen).
			if mv := movedAt(smp.snapshot(), t0, vbit); mv >= 0 && time.Since(t0.Add(mv)) >= time.Second && png.served(servedSpan, servedGap) {
				break
			}
		}
	}
	tEnd := time.Now()
	rounds, dualARP, _, aerr := arp.Stop()
	replies := png.halt()
	samples, serr := smp.halt()
	if readyzDone != nil {
		// The probes run for apiProbeWindow after t0 and wait for their
		// last attempts; apiWait bounds that (a hung attempt is cancelled).
		wait := time.After(apiWait)
		for _, p := range []struct {
			ch                chan probed
			first, servedFrom *time.Duration
		}{{readyzDone, &t.API, &t.APIServed}, {writeDone, &t.APIWrite, &t.APIWriteServed}} {
			var r probed
			select {
			case r = <-p.ch:
			case <-wait:
				apiCancel()
				r = <-p.ch
			}
			*p.first, *p.servedFrom = r.first, r.servedFrom
		}
	}

	t.ARPRounds, t.DualARP = rounds, dualARP
	t.Outage = longestGap(replies, t0, tEnd)
	t.Moved = movedAt(samples, t0, vbit)
	wire := ^uint8(0)
	if sc == LinkCut || sc == Crash {
		// The cut holder keeps the VIP in its namespace, off the wire.
		wire &^= vbit
	}
	for _, x := range samples {
		t.Samples++
		if popcount(x.holders&wire) >= 2 {
			t.DualSamples++
		}
	}
	if len(samples) > 0 {
		t.NewHolder = b.names(samples[len(samples)-1].holders & wire)
	}
	switch sc {
	case Partition:
		wrong := b.wrongRun(samples, t0, healAt, tEnd, vbit)
		t.Outage = max(t.Outage, wrong)
		t.PostHeal = max(longestGap(replies, healAt, tEnd), b.wrongRun(samples, healAt, healAt, tEnd, vbit))
	case Stress:
		t.FalseFailovers = falseFailovers(samples, t0, vbit)
	}
	var errs []string
	for _, e := range []error{ferr, aerr, serr} {
		if e != nil {
			errs = append(errs, e.Error())
		}
	}
	t.Err = strings.Join(errs, "; ")

	stale, err := b.undo(ctx, s, sc, victim)
	t.StaleNeighbour = stale
	if err != nil {
		if t.Err != "" {
			t.Err += "; "
		}
		t.Err += "undo: " + err.Error()
	}
	return t
}

// fault injects scenario sc into victim.
func (b *bench) fault(ctx context.Context, s System, sc string, victim *lab.Master) error {
	switch sc {
	case LinkCut:
		return b.l.CutLink(ctx, victim)
	case Crash:
		// The first half of lab.Crash; trial kills PID 1 once the probes
		// run.
		return b.l.CutLink(ctx, victim)
	case SIGKILL:
		switch {
		case s.Keepalived:
			return killKeepalived(ctx, victim)
		case s.KubeVIP:
			// systemd restarts it 2 s later, as for masterd.
			if out, err := victim.Exec(ctx, "systemctl", "kill", "-s", "SIGKILL", kubeVIPUnit); err != nil {
				return fmt.Errorf("vip bench: kill kube-vip in %s: %w: %s", victim.Name, err, strings.TrimSpace(string(out)))
			}
			return nil
		}
		return victim.KillMasterd(ctx)
	case SIGTERM:
		if !s.masterdVIP() {
			if out, err := victim.Exec(ctx, "systemctl", "stop", s.daemonUnit()); err != nil {
				return fmt.Errorf("vip bench: stop %s in %s: %w: %s", s.daemonUnit(), victim.Name, err, strings.TrimSpace(string(out)))
			}
			return nil
		}
		return victim.StopMasterd(ctx)
	case Partition:
		return partition(ctx, b.l, victim)
	case Stress:
		return nil // run by trial, it blocks
	}
	return fmt.Errorf("vip bench: unknown scenario %q", sc)
}

// undo reverses the fault and waits until the lab is stable; it reports
// whether the client's neighbour entry had to be flushed.
func (b *bench) undo(ctx context.Context, s System, sc string, victim *lab.Master) (bool, error) {
	var err error
	switch sc {
	case LinkCut:
		err = b.l.RestoreLink(ctx, victim)
	case SIGKILL, SIGTERM:
		switch {
		case s.KubeVIP:
			// After SIGKILL systemd restarts it; after SIGTERM it stays
			// stopped until started again.
			if sc == SIGTERM {
				err = startKubeVIP(ctx, b.l, victim)
			}
		case s.Keepalived:
			if sc == SIGKILL {
				// The dead keepalived left the VIP on eth0; a restarted host
				// would come up without it.
				err = delVIP(ctx, b.l, victim)
			}
			if err == nil {
				err = startKeepalived(ctx, b.l, s, b.index(victim))
			}
		case sc == SIGTERM:
			err = victim.StartMasterd(ctx)
		}
	case Partition:
		err = heal(ctx, victim)
	case Crash:
		err = b.reboot(ctx, s, victim)
	}
	if err != nil {
		return false, err
	}
	restarted := time.Now()
	stale, err := b.waitStable(ctx, s, 3*time.Minute)
	if err == nil && (sc == Crash || s.masterdVIP() && (sc == SIGKILL || sc == SIGTERM)) {
		b.waitQuietOver(ctx, restarted)
	}
	if err == nil && b.api != nil {
		actx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		err = b.waitAPIServers(actx)
		cancel()
	}
	return stale, err
}

// waitQuietOver waits until a masterd started at about since has run for
// the longest role lease and a second more: a master that starts stays
// quiet that long before it votes (docs/design.md), and a fault before
// then would meet two voters out of three instead of the lab's usual three.
func (b *bench) waitQuietOver(ctx context.Context, since time.Time) {
	var longest time.Duration
	for _, t := range election.DefaultRoles() {
		longest = max(longest, t.LeaseDuration)
	}
	sleepCtx(ctx, time.Until(since.Add(longest+time.Second)))
}

// reboot brings a crashed master back with its disk (lab.Reboot) and, for
// the keepalived systems, starts haproxy and keepalived in it again (the
// benchmark runs them as transient units, gone with the host).
func (b *bench) reboot(ctx context.Context, s System, m *lab.Master) error {
	if err := b.l.Reboot(ctx, m); err != nil {
		return err
	}
	if s.masterdVIP() {
		return nil
	}
	// masterd with vip.enabled false arms no fence; one left by an earlier
	// system's run is gone with the host, but removing it is harmless.
	removeFence(ctx, m)
	if err := startHAProxyOn(ctx, b.l, m); err != nil {
		return err
	}
	return b.startDaemon(ctx, s, b.index(m))
}

func (b *bench) index(m *lab.Master) int {
	for i, x := range b.l.Masters() {
		if x == m {
			return i
		}
	}
	return -1
}

// waitStable waits until (masterd) every master is ready and, for every
// system, one namespace has held the VIP for a while and the client reaches
// it. A client neighbour entry stuck on a MAC that does not hold the VIP for
// 3 s is flushed (reported as stale).
func (b *bench) waitStable(ctx context.Context, s System, d time.Duration) (stale bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if s.masterdVIP() {
		if err := b.l.WaitReady(ctx); err != nil {
			return false, err
		}
	}
	hold := max(time.Second, s.Expect)
	last, since := -1, time.Time{}
	for {
		i, herr := b.holder()
		now := time.Now()
		if herr != nil {
			last = -1
		} else if i != last {
			last, since = i, now
		}
		if last >= 0 && now.Sub(since) >= hold {
			if b.clientPing(ctx) {
				return stale, nil
			}
			if mac := b.clientMAC(ctx); mac != "" && mac != b.macs[last] && now.Sub(since) >= hold+3*time.Second {
				_ = exec.CommandContext(ctx, "ip", "-n", b.l.ClientNS(), "neigh", "del", b.vip.String(), "dev", "eth0").Run()
				stale = true
			}
		}
		select {
		case <-ctx.Done():
			hs, _ := b.l.VIPHolders()
			return stale, fmt.Errorf("not stable: VIP holders %v: %w", hs, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// clientPing reports whether two pings from the client to the VIP in a row
// are answered.
func (b *bench) clientPing(ctx context.Context) bool {
	out, _ := exec.CommandContext(ctx, "ip", "netns", "exec", b.l.ClientNS(), "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", b.vip.String()).CombinedOutput()
	return strings.Contains(string(out), " 2 received")
}

// clientMAC returns the MAC of the client's neighbour entry for the VIP.
func (b *bench) clientMAC(ctx context.Context) string {
	out, _ := exec.CommandContext(ctx, "ip", "-n", b.l.ClientNS(), "neigh", "show", b.vip.String(), "dev", "eth0").Output()
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			return f[i+1]
		}
	}
	return ""
}

// clientOnHolder reports whether, over the last span of samples, exactly
// one namespace held the VIP and the client's neighbour entry pointed at it.
func (b *bench) clientOnHolder(samples []sample, span time.Duration) bool {
	if len(samples) == 0 {
		return false
	}
	end := samples[len(samples)-1].at
	for i := len(samples) - 1; i >= 0 && end.Sub(samples[i].at) <= span; i-- {
		x := samples[i]
		mi := b.macIndex(x.mac)
		if popcount(x.holders) != 1 || mi < 0 || x.holders != 1<<mi {
			return false
		}
	}
	return end.Sub(samples[0].at) >= span
}

// wrongRun returns the longest time from `from` to end during which the
// client's neighbour entry pointed at no right holder: a namespace holding
// the VIP that is not the isolated victim while the partition lasts
// (before healAt).
func (b *bench) wrongRun(samples []sample, from, healAt, end time.Time, vbit uint8) time.Duration {
	var best time.Duration
	var badSince time.Time
	for _, x := range samples {
		if x.at.Before(from) {
			continue
		}
		right := x.holders
		if x.at.Before(healAt) {
			right &^= vbit
		}
		mi := b.macIndex(x.mac)
		ok := mi >= 0 && right&(1<<mi) != 0
		switch {
		case !ok && badSince.IsZero():
			badSince = x.at
			if badSince.Before(from) {
				badSince = from
			}
		case ok && !badSince.IsZero():
			best = max(best, x.at.Sub(badSince))
			badSince = time.Time{}
		}
	}
	if !badSince.IsZero() {
		best = max(best, end.Sub(badSince))
	}
	return best
}

// movedAt returns the time from t0 to the first sample in which a namespace
// other than the victim held the VIP, or -1.
func movedAt(samples []sample, t0 time.Time, vbit uint8) time.Duration {
	for _, x := range samples {
		if !x.at.Before(t0) && x.holders&^vbit != 0 {
			return x.at.Sub(t0)
		}
	}
	return -1
}

// falseFailovers counts the times, from t0 on, the VIP went from the victim
// alone to any other namespace.
func falseFailovers(samples []sample, t0 time.Time, vbit uint8) int {
	n := 0
	onVictim := true
	for _, x := range samples {
		if x.at.Before(t0) {
			continue
		}
		switch {
		case x.holders == vbit:
			onVictim = true
		case x.holders&^vbit != 0 && onVictim:
			n++
			onVictim = false
		}
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
