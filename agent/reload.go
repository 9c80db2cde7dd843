package agent

import (
	"errors"
	"github.com/masterd/masterd/lb"
	"reflect"
	"strings"

	"golang.org/x/sys/unix"
)

// liveKeys are the configuration keys a reload (SIGHUP) can apply to the
// running daemon, each with what applies it. Every other key that differs
// takes effect at the next restart:
//
//   - log.format: the handler is built once and shared by every component's
//     logger;
//   - priority: the election driver advertises it at start and has no way to
//     change it while it runs;
//   - vip.balancer.enabled and port: the balancer's listener and backends are
//     fixed at start (its caps, maxConnections and maxConnectionsPerSource,
//     are live);
//   - everything else (peers, ports, addresses, timings, the VIP, etcd, the
//     kube units) is identity or wiring that a running member, lease or unit
//     was started with.
//
// A key's func prepares the change from the new, validated configuration and
// returns what commits it; an error leaves the key for a restart.
func (a *Agent) liveKeys() map[string]func(next Config) (commit func(), err error) {
	live := map[string]func(Config) (func(), error){}
	if a.opts.LogLevel != nil {
		live["log.level"] = func(next Config) (func(), error) {
			lv, err := ParseLogLevel(next.Log.Level)
			if err != nil {
				return nil, err
			}
			return func() {
				a.opts.LogLevel.Set(lv)
				a.mu.Lock()
				a.cfg.Log.Level = next.Log.Level
				a.mu.Unlock()
			}, nil
		}
	}
	// The balancer's caps: applied to the running balancer, if this master
	// runs one (without the VIP there is none, and the value only waits in
	// the running configuration).
	caps := func(next Config) (func(), error) {
		b := a.balancer()
		max, per := next.VIP.Balancer.MaxConnections, next.VIP.Balancer.MaxConnectionsPerSource
		return func() {
			if b != nil {
				if err := b.SetLimits(max, per); err != nil {
					a.log.Error("balancer caps not applied", "err", err)
					return
				}
			}
			a.mu.Lock()
			a.cfg.VIP.Balancer.MaxConnections, a.cfg.VIP.Balancer.MaxConnectionsPerSource = max, per
			a.mu.Unlock()
		}, nil
	}
	live["vip.balancer.maxConnections"] = caps
	live["vip.balancer.maxConnectionsPerSource"] = caps
	return live
}

// balancer is the running balancer of this agent's lb component, or nil.
func (a *Agent) balancer() *lb.Balancer {
	for _, c := range a.opts.Components {
		if l, ok := c.(*lbComponent); ok && l.b != nil {
			return l.b
		}
	}
	return nil
}

// ReloadResult is what a reload did: the key paths that differ between the
// running configuration and the file, split into those applied live and
// those that need a restart.
type ReloadResult struct {
	Applied      []string
	NeedsRestart []string
}

// Reload re-reads the configuration through Options.LoadConfig and applies
// what can change live (liveKeys) without touching any component: no role is
// dropped, no unit restarted. A configuration that does not load or validate
// is rejected whole and the running one kept. It logs one line: what was
// applied and which changed keys need a restart, or why the file was
// rejected. Around it, systemd is told RELOADING=1 and READY=1 (only once the
// agent is ready: a reload during start or stop must not announce readiness).
// Reloads are serialised; Reload is safe to call concurrently with Run.
func (a *Agent) Reload() (ReloadResult, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	ready := a.isReady()
	if ready {
		a.notifyf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=reloading", monotonicUsec())
	}
	res, err := a.reload()
	if ready {
		status := a.summary()
		if err != nil {
			status += ", last reload rejected"
		}
		a.notifyf("READY=1\nSTATUS=%s", status)
	}
	return res, err
}

func (a *Agent) reload() (ReloadResult, error) {
	if a.opts.LoadConfig == nil {
		err := errors.New("reload: no configuration loader")
		a.log.Error("config reload rejected", "err", err)
		return ReloadResult{}, err
	}
	next, err := a.opts.LoadConfig()
	if err != nil {
		a.log.Error("config reload rejected", "err", err)
		return ReloadResult{}, err
	}
	a.mu.Lock()
	running := a.cfg
	a.mu.Unlock()
	var res ReloadResult
	var commits []func()
	live := a.liveKeys()
	for _, key := range configDiff(running, next) {
		if prepare, ok := live[key]; ok {
			if commit, err := prepare(next); err == nil {
				res.Applied = append(res.Applied, key)
				commits = append(commits, commit)
				continue
			}
		}
		res.NeedsRestart = append(res.NeedsRestart, key)
	}
	// Logged before the commits, at the level in force when the reload was
	// asked for: raising log.level past info still reports the reload.
	a.log.Info("config reloaded", "applied", strings.Join(res.Applied, ","), "needs_restart", strings.Join(res.NeedsRestart, ","))
	// The running configuration takes only what was applied (field by field:
	// /status reads the rest concurrently), so the next reload still reports
	// what waits for a restart.
	for _, commit := range commits {
		commit()
	}
	return res, nil
}

// configDiff returns the key paths whose values differ between a and b, in
// the order of the Config struct. A list or a map (peers, extraArgs) is one
// key.
func configDiff(a, b Config) []string {
	var keys []string
	diffStruct(reflect.ValueOf(a), reflect.ValueOf(b), "", &keys)
	return keys
}

func diffStruct(a, b reflect.Value, prefix string, keys *[]string) {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := yamlKey(f)
		if key == "" {
			continue
		}
		path := prefix + key
		if f.Type.Kind() == reflect.Struct && f.Type != addrType && f.Type != prefixType {
			diffStruct(a.Field(i), b.Field(i), path+".", keys)
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			*keys = append(*keys, path)
		}
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants with
// RELOADING=1 (sd_notify(3)) to match the reload to its request.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}
