package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/masterd/masterd/fence"
	"github.com/masterd/masterd/units"
	"github.com/masterd/masterd/vip"
	"github.com/prometheus/client_golang/prometheus"
)

// Cleanup removes what a stopped or crashed daemon may still hold: the VIP
// (the kernel keeps answering ARP for it) and the leader-only units (they
// keep running). masterd.service runs it, as `masterd cleanup`, after any
// exit of the daemon (ExecStopPost=), SIGKILL and OOM included. The VIP and
// the units are independent: the VIP may wait for its fence while the units
// are stopped. log may be nil (discard).
func Cleanup(ctx context.Context, cfg Config, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry() // counted nowhere: a one-shot command
	var vipErr, unitsErr error
	var wg sync.WaitGroup
	if cfg.VIP.Enabled {
		wg.Go(func() { vipErr = cleanupVIP(ctx, cfg, log, reg) })
	}
	if names := LeaderOnlyUnits(cfg); len(names) > 0 {
		wg.Go(func() { unitsErr = cleanupUnits(ctx, names, log, reg) })
	}
	wg.Wait()
	return errors.Join(vipErr, unitsErr)
}

// LeaderOnlyUnits names the units only the holder of their role may run
// (kube-scheduler and kube-controller-manager, or the units named for them
// in existing mode); none when masterd manages no Kubernetes.
func LeaderOnlyUnits(cfg Config) []string {
	switch cfg.Kubernetes.Mode {
	case "none":
		return nil
	case "existing":
		return []string{cfg.Kubernetes.Scheduler.Unit, cfg.Kubernetes.ControllerManager.Unit}
	default:
		return []string{units.SchedulerUnit, units.ControllerManagerUnit}
	}
}

// vipConfig is the vip.Manager configuration for cfg's VIP.
func vipConfig(cfg Config) vip.Config {
	vc := vip.DefaultConfig(cfg.VIP.Address)
	vc.Interface = cfg.VIP.Interface
	return vc
}

// cleanupVIP deletes the VIP from every interface. With vip.fence it first
// waits until the kernel fence silences the VIP: until then the dead daemon's
// lease was still valid and the address answered as a live holder's would,
// and no other master can hold the VIP before. Deleting it at that instant,
// not whenever this command gets to run, keeps the address out of two
// masters' `ip addr` at once, as it is off the wire.
func cleanupVIP(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) error {
	m, err := vip.New(vipConfig(cfg), log, reg)
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
func awaitFence(ctx context.Context, cfg Config, log *slog.Logger) {
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

// cleanupUnits stops the named leader-only units.
func cleanupUnits(ctx context.Context, names []string, log *slog.Logger, reg prometheus.Registerer) error {
	sup, err := units.New(unitsConfig(), reg, log)
	if err != nil {
		return err
	}
	defer sup.Close()
	var errs []error
	for _, name := range names {
		if err := sup.Register(units.Unit{Name: name, LeaderOnly: true}); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := sup.Stop(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("cleanup: stop %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
