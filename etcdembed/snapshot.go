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

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/masterd/masterd/internal/atomicfile"
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
	_, err := SaveSnapshot(ctx, cli, path)
	return err
}

// SaveSnapshot writes a snapshot of the keyspace of the member cli talks to
// (give it one endpoint) to path, and returns its size. It holds every write
// acknowledged before the call: the member first answers a linearizable read,
// which it does only once it has applied everything the leader had committed
// when the read arrived, so a follower that lags cannot drop the last writes.
// The file is written beside path, fsynced, made 0600 and renamed, so path
// never holds a partial snapshot.
func SaveSnapshot(ctx context.Context, cli *clientv3.Client, path string) (int64, error) {
	if _, err := cli.Get(ctx, healthKey); err != nil {
		return 0, fmt.Errorf("catch up with the leader (linearizable read): %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, err
	}
	var n int64
	err := atomicfile.Write(path, 0o600, func(w io.Writer) error {
		rc, err := cli.Snapshot(ctx)
		if err != nil {
			return err
		}
		defer rc.Close()
		n, err = io.Copy(w, rc)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// SavedSnapshot is an automatic snapshot just written (Config.OnSnapshot).
type SavedSnapshot struct {
	// Path is the snapshot file.
	Path string
	// Taken is when the snapshot was started (UTC, second resolution: the
	// time in its name).
	Taken time.Time
	// Leader is whether this member led the etcd cluster then.
	Leader bool
}

// periodicSnapshot takes an automatic snapshot, prunes old ones and calls
// Config.OnSnapshot.
func (m *Member) periodicSnapshot(ctx context.Context) (string, error) {
	dir := m.cfg.snapshotDir()
	taken := time.Now().UTC().Truncate(time.Second)
	path := filepath.Join(dir, snapshotPrefix+taken.Format("20060102T150405Z")+snapshotSuffix)
	leader := m.IsLeader()
	if err := m.Snapshot(ctx, path); err != nil {
		return "", err
	}
	m.log.Info("etcd snapshot saved", "path", path)
	perr := pruneSnapshots(dir, m.cfg.SnapshotRetention)
	if m.cfg.OnSnapshot != nil {
		m.cfg.OnSnapshot(SavedSnapshot{Path: path, Taken: taken, Leader: leader})
	}
	if perr != nil {
		return path, fmt.Errorf("etcdembed: prune snapshots in %s: %w", dir, perr)
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

// RestoreOptions adjust Restore.
type RestoreOptions struct {
	// Force skips the check that no other member of Config.Members runs
	// etcd: for when those members are to be discarded and rejoin the
	// restored member as new ones.
	Force bool
	// MoveAside moves a non-empty data dir to
	// <DataDir>.before-restore-<UTC time> once the restore has succeeded,
	// instead of refusing to restore over it.
	MoveAside bool
}

// Restore turns the snapshot file at snapshotPath into cfg.DataDir, as the
// data of a new one-member cluster whose only member is cfg.Name (disaster
// recovery). It returns where the old data went (MoveAside), or "".
//
// Everything that can refuse or fail happens before the data dir is touched,
// so a failed Restore changes nothing: the configuration is validated; the
// data dir's lock is taken (a running member holds it:
// *DataDirInUseError) and kept until Restore returns, so no member starts
// meanwhile; unless opts.Force, no other member of cfg.Members may run etcd
// (*PeersServingError, see RunningPeers); then the snapshot is verified and restored into a new
// directory beside the data dir, which replaces the data dir only at the end.
//
// Start the member with the same cfg afterwards; the other masters then join
// it with empty data dirs, one learner at a time.
func Restore(ctx context.Context, snapshotPath string, cfg Config, opts RestoreOptions) (aside string, err error) {
	if err := cfg.Validate(); err != nil {
		return "", fmt.Errorf("etcdembed: restore: invalid config: %w", err)
	}
	if fi, err := os.Stat(snapshotPath); err != nil {
		return "", fmt.Errorf("etcdembed: restore: snapshot: %w", err)
	} else if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("etcdembed: restore: snapshot %s is not a regular file", snapshotPath)
	}
	lock, err := lockDataDir(cfg)
	if err != nil {
		return "", fmt.Errorf("etcdembed: restore: %w", err)
	}
	defer lock.unlock()
	if !opts.Force {
		// The data's own members too: masters added since the
		// configuration's peers were written.
		pc, err := cfg.withDataMembers()
		if err != nil {
			return "", fmt.Errorf("etcdembed: restore: %w", err)
		}
		running, err := RunningPeers(ctx, pc)
		if err != nil {
			return "", fmt.Errorf("etcdembed: restore: probe peers: %w", err)
		}
		if running != nil {
			return "", fmt.Errorf("etcdembed: restore: %w", running)
		}
	}
	dataDir := filepath.Clean(cfg.DataDir)
	hasOld := false
	if entries, err := os.ReadDir(dataDir); err == nil {
		hasOld = len(entries) > 0
		if hasOld && !opts.MoveAside {
			return "", fmt.Errorf("etcdembed: restore into %s: data dir not empty", dataDir)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("etcdembed: restore into %s: %w", dataDir, err)
	}
	parent := filepath.Dir(dataDir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("etcdembed: restore: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, filepath.Base(dataDir)+".restoring-")
	if err != nil {
		return "", fmt.Errorf("etcdembed: restore: %w", err)
	}
	defer os.RemoveAll(tmp) // nothing left after the rename into place
	peer := cfg.peerURL(cfg.self())
	lg := zap.NewNop()
	if cfg.Logger != nil {
		lg = newZapLogger(cfg.Logger.With("component", "etcd", "member", cfg.Name), nil)
	}
	err = snapshot.NewV3(lg).Restore(snapshot.RestoreConfig{
		SnapshotPath:        snapshotPath,
		Name:                cfg.Name,
		OutputDataDir:       tmp,
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
		return "", fmt.Errorf("etcdembed: restore %s: %w", snapshotPath, err)
	}
	if hasOld {
		aside = asideName(dataDir, time.Now())
		if err := os.Rename(dataDir, aside); err != nil {
			return "", fmt.Errorf("etcdembed: restore: move old data aside: %w", err)
		}
	} else if err := os.Remove(dataDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("etcdembed: restore into %s: %w", dataDir, err)
	}
	if err := os.Rename(tmp, dataDir); err != nil {
		if aside != "" {
			if rerr := os.Rename(aside, dataDir); rerr != nil {
				return "", fmt.Errorf("etcdembed: restore: put restored data in place: %w (and the old data stays in %s: %w)", err, aside, rerr)
			}
		}
		return "", fmt.Errorf("etcdembed: restore: put restored data in place: %w", err)
	}
	if d, err := os.Open(parent); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return aside, nil
}

// asideName is where Restore moves old data: <dataDir>.before-restore-<UTC
// time>, with a counter when two restores fall into one second.
func asideName(dataDir string, now time.Time) string {
	base := dataDir + ".before-restore-" + now.UTC().Format("20060102T150405Z")
	name := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); err != nil { // free (or unreadable: Rename reports it)
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}
