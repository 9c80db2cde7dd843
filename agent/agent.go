package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Component is one part of the daemon the agent starts in order and stops in
// reverse order. Start returns once the component is ready for the next one to
// start (the etcd member has joined, the apiserver answers /readyz); Stop undoes
// Start and must be safe to call after a failed or partial Start.
type Component interface {
	Name() string
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Checker is implemented by components that contribute to /readyz. Check must
// not block for long; the agent bounds it with a timeout.
type Checker interface {
	Check(ctx context.Context) error
}

// StatusReporter is implemented by components that add a section to /status
// (and so to `masterd status`). Status must be safe to call concurrently with
// everything else and return a JSON-encodable value.
type StatusReporter interface {
	Status() any
}

// Options are the agent's collaborators.
type Options struct {
	Logger     *slog.Logger
	Registry   *prometheus.Registry // the process's only registry; nil makes a fresh one
	Gatherer   prometheus.Gatherer  // what /metrics serves; nil serves Registry
	Components []Component          // in start order
	Build      BuildInfo
	Notifier   Notifier // sd_notify; nil uses SystemdNotifier
	// StopTimeout bounds the graceful stop of all components together.
	StopTimeout time.Duration
	// Liveness, when set, gates watchdog pings: a hung election loop stops the
	// pings and systemd restarts the daemon.
	Liveness func() error
	// LoadConfig re-reads the configuration for Reload (SIGHUP): the file
	// with the command line's overrides, decoded and validated as at start.
	// Nil rejects every reload.
	LoadConfig func() (Config, error)
	// LogLevel is the level of Logger, set by Reload when log.level changes;
	// nil leaves the level as it is.
	LogLevel *slog.LevelVar
}

// BuildInfo identifies the binary.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	GoVersion string `json:"goVersion"`
}

// Agent runs masterd's components for one node.
type Agent struct {
	cfg     Config // the running configuration; Reload sets cfg.Log.Level under mu
	opts    Options
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	notify  Notifier

	reloadMu sync.Mutex // serialises Reload

	mu      sync.Mutex
	states  map[string]string // component name -> state, for /status
	started time.Time
	ready   bool
}

// New returns an agent for cfg; it starts nothing.
func New(cfg Config, opts Options) *Agent {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Notifier == nil {
		opts.Notifier = SystemdNotifier{}
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 30 * time.Second
	}
	a := &Agent{
		cfg:    cfg,
		opts:   opts,
		log:    opts.Logger.With("component", "agent"),
		reg:    opts.Registry,
		notify: opts.Notifier,
		states: map[string]string{},
	}
	a.metrics = newMetrics(opts.Registry, opts.Build)
	for _, c := range opts.Components {
		a.states[c.Name()] = "pending"
		// The versions component publishes the build (versions.go).
		if b, ok := c.(interface{ setBuild(BuildInfo) }); ok {
			b.setBuild(opts.Build)
		}
	}
	return a
}

// Run starts every component in order, tells systemd it is ready, and blocks
// until ctx is cancelled (SIGTERM) or a component start fails. Then it stops the
// started components in reverse order within Options.StopTimeout. It returns
// the start error, if any, joined with stop errors.
func (a *Agent) Run(ctx context.Context) error {
	a.started = time.Now()
	srv, err := a.listen()
	if err != nil {
		return err
	}
	a.log.Info("http listening", "addr", srv.Addr)
	defer srv.Close()

	watchdogCtx, stopWatchdog := context.WithCancel(context.Background())
	defer stopWatchdog()
	go a.watchdog(watchdogCtx)

	var started []Component
	startErr := a.startAll(ctx, &started)
	if startErr == nil {
		a.setReady(true)
		a.notifyf("READY=1\nSTATUS=%s", a.summary())
		a.log.Info("started", "components", len(started), "seconds", time.Since(a.started).Seconds())
		<-ctx.Done()
		a.log.Info("stopping", "reason", context.Cause(ctx))
	}

	a.setReady(false)
	a.notifyf("STOPPING=1\nSTATUS=stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), a.opts.StopTimeout)
	defer cancel()
	stopErr := a.stopAll(stopCtx, started)
	if stopErr == nil && startErr == nil {
		a.log.Info("stopped")
	}
	return errors.Join(startErr, stopErr)
}

func (a *Agent) startAll(ctx context.Context, started *[]Component) error {
	for _, c := range a.opts.Components {
		name := c.Name()
		a.setState(name, "starting")
		a.notifyf("STATUS=starting %s", name)
		a.log.Info("starting component", "name", name)
		t := time.Now()
		if err := c.Start(ctx); err != nil {
			a.setState(name, "failed")
			*started = append(*started, c) // Stop undoes a partial Start
			if ctx.Err() != nil {
				return fmt.Errorf("start %s: interrupted: %w", name, err)
			}
			return fmt.Errorf("start %s: %w", name, err)
		}
		*started = append(*started, c)
		a.setState(name, "running")
		a.metrics.startSeconds.WithLabelValues(name).Set(time.Since(t).Seconds())
		a.log.Info("component started", "name", name, "seconds", time.Since(t).Seconds())
		if ctx.Err() != nil {
			return fmt.Errorf("start: interrupted after %s", name)
		}
	}
	return nil
}

func (a *Agent) stopAll(ctx context.Context, started []Component) error {
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		c := started[i]
		name := c.Name()
		a.setState(name, "stopping")
		a.notifyf("STATUS=stopping %s", name)
		t := time.Now()
		if err := c.Stop(ctx); err != nil {
			a.setState(name, "failed")
			a.log.Error("component stop failed", "name", name, "err", err)
			errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
			continue
		}
		a.setState(name, "stopped")
		a.log.Info("component stopped", "name", name, "seconds", time.Since(t).Seconds())
	}
	return errors.Join(errs...)
}

// watchdog pings systemd at half the configured interval while the liveness
// check passes. Without WATCHDOG_USEC it returns at once.
func (a *Agent) watchdog(ctx context.Context) {
	interval := a.notify.WatchdogInterval()
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.opts.Liveness != nil {
			if err := a.opts.Liveness(); err != nil {
				a.log.Warn("watchdog ping withheld", "err", err)
				continue
			}
		}
		a.notifyf("WATCHDOG=1")
	}
}

func (a *Agent) notifyf(format string, args ...any) {
	if err := a.notify.Notify(fmt.Sprintf(format, args...)); err != nil {
		a.log.Warn("sd_notify failed", "err", err)
	}
}

func (a *Agent) setState(name, state string) {
	a.mu.Lock()
	a.states[name] = state
	a.mu.Unlock()
}

func (a *Agent) setReady(ok bool) {
	a.mu.Lock()
	a.ready = ok
	a.mu.Unlock()
}

func (a *Agent) isReady() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ready
}

// summary is the one-line STATUS= text: node name and what each component is doing.
func (a *Agent) summary() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := fmt.Sprintf("%s: %d components", a.cfg.Name, len(a.opts.Components))
	if a.ready {
		s += ", ready"
	}
	return s
}
