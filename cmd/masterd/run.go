package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/internal/sched"
	"github.com/prometheus/client_golang/prometheus"
)

const defaultConfig = "/etc/masterd/masterd.yaml"

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", "", `Run the masterd daemon for this master. With --check, only load and
validate the configuration: every problem is printed with its key path, and
the exit code is 2 when there is any.`, stdout)
	configPath := fs.String("config", defaultConfig, "configuration `file`")
	check := fs.Bool("check", false, "validate the configuration and exit")
	logFormat := fs.String("log-format", "", "log format, text or json (overrides log.format)")
	logLevel := fs.String("log-level", "", "log level (overrides log.level)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	// SIGHUP reloads (below); caught from here on, so one that arrives while
	// the daemon starts waits for the agent instead of killing the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cfg, err := agent.LoadConfig(*configPath)
	if err != nil {
		return configError{err}
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok (node %s, %d peers)\n", *configPath, cfg.Name, len(cfg.Peers))
		return nil
	}
	// The flags override the file at start and at every reload.
	override := func(cfg *agent.Config) {
		if *logFormat != "" {
			cfg.Log.Format = *logFormat
		}
		if *logLevel != "" {
			cfg.Log.Level = *logLevel
		}
	}
	override(&cfg)
	level := new(slog.LevelVar)
	lv, err := agent.ParseLogLevel(cfg.Log.Level)
	if err != nil {
		return usageError{err.Error()}
	}
	level.Set(lv)
	log, err := agent.NewLeveledLogger(stderr, cfg.Log.Format, level)
	if err != nil {
		return usageError{err.Error()}
	}

	// Before anything else runs: the unit's Nice= only ranks masterd above
	// its neighbours once its autogroup has that priority too (package sched).
	if r, err := sched.MatchAutogroup(); err != nil {
		log.Warn("cpu priority not raised", "err", err)
	} else {
		log.Info("cpu priority", "nice", r.Nice, "autogroup_nice", r.After, "autogroup_changed", r.Skipped == "", "note", r.Skipped)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	reg := prometheus.NewRegistry()
	build := agent.BuildInfo{Version: version, Revision: revision, GoVersion: runtime.Version()}
	node, err := agent.Build(cfg, log, reg)
	if err != nil {
		log.Error("build failed", "err", err)
		return err
	}
	a := agent.New(cfg, agent.Options{
		Logger:     log,
		Registry:   reg,
		Gatherer:   node.Gatherer,
		Components: node.Components,
		Build:      build,
		Liveness:   node.Liveness,
		LoadConfig: func() (agent.Config, error) {
			cfg, err := agent.LoadConfig(*configPath)
			if err != nil {
				return cfg, err
			}
			override(&cfg)
			return cfg, nil
		},
		LogLevel: level,
	})
	// SIGHUP (systemctl reload): re-read the file and apply what can change
	// live; roles, units and the etcd member are untouched.
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.Reload()
			}
		}
	}()
	log.Info("masterd starting", "version", version, "revision", revision, "node", cfg.Name, "pid", os.Getpid())
	if err := a.Run(ctx); err != nil {
		log.Error("masterd failed", "err", err)
		return err
	}
	return nil
}
