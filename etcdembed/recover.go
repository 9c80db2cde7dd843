package etcdembed

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// RecoverOptions tune Recover.
type RecoverOptions struct {
	// Force recovers although other members still serve etcd (they must
	// then be stopped for good and rejoin as fresh members).
	Force bool
	// After, when set, runs while the recovered one-member cluster serves,
	// with a client to it, before Recover stops it (masterd publishes the
	// one-voter membership there). Its error fails Recover; the data is
	// recovered all the same.
	After func(ctx context.Context, cli *clientv3.Client) error
}

// Recover turns this member's own live data into a one-member cluster:
// etcd's force-new-cluster, keeping every write this member had applied,
// for when a quorum of the other members is lost for good. The member must
// not run (the data-dir lock), and, unless opts.Force, no other member may
// still serve etcd. It starts the member once with ForceNewCluster, waits
// until it serves, runs opts.After, and stops it: the next Start restarts
// it from its data as the only member. The other masters then rejoin as
// fresh members (empty data dirs) through a membership change.
func Recover(ctx context.Context, cfg Config, opts RecoverOptions) error {
	m, err := New(cfg)
	if err != nil {
		return fmt.Errorf("etcdembed: recover: %w", err)
	}
	lock, err := lockDataDir(cfg)
	if err != nil {
		return fmt.Errorf("etcdembed: recover: %w", err)
	}
	defer lock.unlock()
	if !m.hasData() {
		return fmt.Errorf("etcdembed: recover: %s holds no etcd data (no WAL): nothing to recover from; restore a snapshot instead", cfg.DataDir)
	}
	if !opts.Force {
		// The data's own members too: masters added since the
		// configuration's peers were written.
		pc, err := cfg.withDataMembers()
		if err != nil {
			return fmt.Errorf("etcdembed: recover: %w", err)
		}
		running, err := RunningPeers(ctx, pc)
		if err != nil {
			return fmt.Errorf("etcdembed: recover: probe peers: %w", err)
		}
		if running != nil {
			return fmt.Errorf("etcdembed: recover: %w", running)
		}
	}
	self := cfg.self()
	ec, err := cfg.embedConfig("existing", self.Name+"="+cfg.PeerURL(self), m.zl)
	if err != nil {
		return err
	}
	ec.ForceNewCluster = true
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return m.startError(err)
	}
	if err := m.waitReady(ctx, e); err != nil {
		closeUnready(e)
		return fmt.Errorf("etcdembed: recover: %w", err)
	}
	defer e.Close()
	m.log.Warn("etcd member recovered as a one-member cluster from its own data (force-new-cluster)",
		"id", e.Server.MemberID().String())
	if opts.After == nil {
		return nil
	}
	cli, err := m.newClient([]string{cfg.localEndpoint()})
	if err != nil {
		return err
	}
	defer cli.Close()
	if err := opts.After(ctx, cli); err != nil {
		return errors.Join(errors.New("etcdembed: recover: data recovered, but the step after it failed"), err)
	}
	return nil
}
