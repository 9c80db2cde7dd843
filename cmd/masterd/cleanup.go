package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/units"
	"github.com/masterd/masterd/vip"
	"github.com/prometheus/client_golang/prometheus"
)

// cmdCleanup removes what a dead daemon may have left holding: the VIP (the
// kernel keeps answering ARP for it) and the leader-only units (they keep
// running). masterd.service runs it as ExecStopPost=, after any exit of the
// daemon, SIGKILL and OOM included.
func cmdCleanup(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cleanup", "", `Remove what a stopped or crashed daemon may still hold: delete the VIP
from every interface and stop kube-scheduler and kube-controller-manager.
masterd.service runs it after every exit of the daemon (ExecStopPost=).`, stdout)
	configPath := fs.String("config", defaultConfig, "configuration `file`")
	timeout := fs.Duration("timeout", 20*time.Second, "give up after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	cfg, err := agent.LoadConfig(*configPath)
	if err != nil {
		return configError{err}
	}
	log, err := agent.NewLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		return usageError{err.Error()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	reg := prometheus.NewRegistry() // counted nowhere: a one-shot command
	var errs []error
	if cfg.VIP.Enabled {
		errs = append(errs, cleanupVIP(ctx, cfg, log, reg))
	}
	if cfg.Kubernetes.Mode != "none" {
		errs = append(errs, cleanupUnits(ctx, cfg, log, reg))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "cleanup: done")
	return nil
}

func cleanupVIP(ctx context.Context, cfg agent.Config, log *slog.Logger, reg prometheus.Registerer) error {
	vc := vip.DefaultConfig(cfg.VIP.Address)
	vc.Interface = cfg.VIP.Interface
	m, err := vip.New(vc, log, reg)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Cleanup(ctx)
}

func cleanupUnits(ctx context.Context, cfg agent.Config, log *slog.Logger, reg prometheus.Registerer) error {
	sup, err := units.New(units.DefaultConfig(), reg, log)
	if err != nil {
		return err
	}
	defer sup.Close()
	names := []string{units.SchedulerUnit, units.ControllerManagerUnit}
	if cfg.Kubernetes.Mode == "existing" {
		names = []string{cfg.Kubernetes.Scheduler.Unit, cfg.Kubernetes.ControllerManager.Unit}
	}
	var errs []error
	for _, name := range names {
		if err := sup.Register(units.Unit{Name: name, LeaderOnly: true}); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := sup.Stop(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
