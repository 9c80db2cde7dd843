package etcdembed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// snapshotPrefix and snapshotSuffix frame automatic snapshot file names:
// etcd-20260102T030405Z.db (UTC, so names sort by time).
const (
	snapshotPrefix = "etcd-"
	snapshotSuffix = ".db"
)

// Snapshot writes a consistent snapshot of the keyspace, streamed from the
// local member, to path: into a temporary file beside it, fsynced, then
// renamed, so path never holds a partial snapshot.
func (m *Member) Snapshot(ctx context.Context, path string) error {
	err := m.snapshot(ctx, path)
	if err != nil {
		m.met.snapshots.WithLabelValues("error").Inc()
		return fmt.Errorf("etcdembed: snapshot to %s: %w", path, err)
	}
	m.met.snapshots.WithLabelValues("ok").Inc()
	return nil
}

func (m *Member) snapshot(ctx context.Context, path string) error {
	cli := m.Client()
	if cli == nil {
		return errors.New("member not running")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		tmp.Close()
		return err
	}
	_, err = io.Copy(tmp, rc)
	rc.Close()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// periodicSnapshot takes an automatic snapshot and prunes old ones.
func (m *Member) periodicSnapshot(ctx context.Context) (string, error) {
	dir := m.cfg.snapshotDir()
	path := filepath.Join(dir, snapshotPrefix+time.Now().UTC().Format("20060102T150405Z")+snapshotSuffix)
	if err := m.Snapshot(ctx, path); err != nil {
		return "", err
	}
	m.log.Info("etcd snapshot saved", "path", path)
	if err := pruneSnapshots(dir, m.cfg.SnapshotRetention); err != nil {
		return path, fmt.Errorf("etcdembed: prune snapshots in %s: %w", dir, err)
	}
	return path, nil
}

// pruneSnapshots keeps the newest keep automatic snapshots in dir.
func pruneSnapshots(dir string, keep int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(n, snapshotPrefix) && strings.HasSuffix(n, snapshotSuffix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var errs []error
	for len(names) > keep {
		if err := os.Remove(filepath.Join(dir, names[0])); err != nil {
			errs = append(errs, err)
		}
		names = names[1:]
	}
	return errors.Join(errs...)
}

// Restore turns the snapshot file at snapshotPath into cfg.DataDir, as the
// data of a new one-member cluster whose only member is cfg.Name (disaster
// recovery). cfg.DataDir must not exist or be empty. Start the member with
// the same cfg afterwards; the other masters then join it with empty data
// dirs, one learner at a time.
func Restore(snapshotPath string, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("etcdembed: restore: invalid config: %w", err)
	}
	if entries, err := os.ReadDir(cfg.DataDir); err == nil {
		if len(entries) > 0 {
			return fmt.Errorf("etcdembed: restore into %s: data dir not empty", cfg.DataDir)
		}
		if err := os.Remove(cfg.DataDir); err != nil {
			return fmt.Errorf("etcdembed: restore into %s: %w", cfg.DataDir, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("etcdembed: restore into %s: %w", cfg.DataDir, err)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(cfg.DataDir)), 0o700); err != nil {
		return fmt.Errorf("etcdembed: restore: %w", err)
	}
	peer := cfg.peerURL(cfg.self())
	lg := zap.NewNop()
	if cfg.Logger != nil {
		lg = newZapLogger(cfg.Logger.With("component", "etcd", "member", cfg.Name), nil)
	}
	err := snapshot.NewV3(lg).Restore(snapshot.RestoreConfig{
		SnapshotPath:        snapshotPath,
		Name:                cfg.Name,
		OutputDataDir:       cfg.DataDir,
		PeerURLs:            []string{peer.String()},
		InitialCluster:      cfg.Name + "=" + peer.String(),
		InitialClusterToken: cfg.ClusterToken,
		// Revisions jump past anything a client may have seen, and older
		// ones read as compacted, so watchers resynchronise instead of
		// silently missing events (what kube-apiserver needs after a restore).
		RevisionBump:  1_000_000_000,
		MarkCompacted: true,
	})
	if err != nil {
		return fmt.Errorf("etcdembed: restore %s into %s: %w", snapshotPath, cfg.DataDir, err)
	}
	return nil
}
