package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/fence"
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
With vip.fence, a VIP the fence still lets answer is deleted when the fence
expires (the dead daemon's lease deadline, at most one lease from now).
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
	// The two are independent: the VIP may wait for its fence while the
	// units are stopped.
	var vipErr, unitsErr error
	var wg sync.WaitGroup
	if cfg.VIP.Enabled {
		wg.Go(func() { vipErr = cleanupVIP(ctx, cfg, log, reg) })
	}
	if cfg.Kubernetes.Mode != "none" {
		wg.Go(func() { unitsErr = cleanupUnits(ctx, cfg, log, reg) })
	}
	wg.Wait()
	if err := errors.Join(vipErr, unitsErr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "cleanup: done")
	return nil
}

// cleanupVIP deletes the VIP from every interface. With vip.fence it first
// waits until the kernel fence silences the VIP: until then the dead daemon's
// lease was still valid and the address answered as a live holder's would,
// and no other master can hold the VIP before. Deleting it at that instant,
// not whenever this command gets to run, keeps the address out of two
// masters' `ip addr` at once, as it is off the wire.
func cleanupVIP(ctx context.Context, cfg agent.Config, log *slog.Logger, reg prometheus.Registerer) error {
	vc := vip.DefaultConfig(cfg.VIP.Address)
	vc.Interface = cfg.VIP.Interface
	m, err := vip.New(vc, log, reg)
	if err != nil {
		return err
	}
	defer m.Close()
	if cfg.VIP.Fence {
		awaitFence(ctx, cfg, log)
	}
	return m.Cleanup(ctx)
}

// awaitFence returns when the fence no longer lets the VIP answer, at most
// one vip lease duration (the fence is armed up to the lease deadline) or
// the context from now. An unreadable fence is logged and not waited for:
// deleting the VIP early is always safe.
func awaitFence(ctx context.Context, cfg agent.Config, log *slog.Logger) {
	left, err := fence.LiveFor(fence.DefaultTable, cfg.VIP.Address)
	if err != nil {
		log.Warn("cannot read the vip fence; deleting the vip now", "component", "cleanup", "err", err)
		return
	}
	if left <= 0 {
		return
	}
	left = min(left, time.Duration(cfg.VIPTimings().LeaseDuration))
	log.Info("vip still live behind the fence; deleting it when the fence expires", "component", "cleanup", "seconds", left.Seconds())
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
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
