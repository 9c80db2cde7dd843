package backup

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// UploaderConfig configures an Uploader.
type UploaderConfig struct {
	// Store is where the snapshots go.
	Store Config
	// Master is this master's name, the first part of its objects' names.
	Master string
	// Interval is the period of the periodic snapshots. A master that is
	// not the etcd leader uploads only when the store's newest copy was
	// taken more than 1.5 Interval ago.
	Interval time.Duration
	// Timeout bounds one upload with the prune after it; 0 means 30
	// minutes (a few GiB over a slow link).
	Timeout time.Duration
	// Logger receives the uploader's lines; nil discards them.
	Logger *slog.Logger
	// Registerer receives the masterd_backup_* metrics; nil registers none.
	Registerer prometheus.Registerer
}

// warnEvery is the least time between two warnings about failed uploads
// while they go on; the failures between are logged at Debug and counted
// in masterd_backup_upload_failures_total.
const warnEvery = time.Hour

// staleFactor times the interval is the age of the store's newest copy
// beyond which a master that is not the leader uploads its own.
const staleFactor = 1.5

// Uploader uploads the periodic snapshots a member writes, one at a time,
// in the background, and prunes the store after each upload.
type Uploader struct {
	cfg    UploaderConfig
	log    *slog.Logger
	met    *metrics
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	busy     bool      // an upload runs
	closed   bool      // Close was called
	failures int       // consecutive failures
	lastWarn time.Time // when the last failure warning was logged
}

// NewUploader checks cfg and registers the metrics; it does no I/O (the
// credentials are read at each upload).
func NewUploader(cfg UploaderConfig) (*Uploader, error) {
	if err := cfg.Store.Validate(); err != nil {
		return nil, fmt.Errorf("backup: invalid config: %w", err)
	}
	if !masterRE.MatchString(cfg.Master) {
		return nil, fmt.Errorf("backup: master name %q is not a DNS name", cfg.Master)
	}
	if cfg.Interval <= 0 {
		return nil, fmt.Errorf("backup: interval %s: must be positive (periodic snapshots on)", cfg.Interval)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("backup: metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Uploader{cfg: cfg, log: log.With("component", "backup"), met: met, ctx: ctx, cancel: cancel}, nil
}

// Saved hands over a snapshot file just written, taken at taken, by a
// member that led the etcd cluster then or not. It returns at once (the
// contract of etcdembed.Config.OnSnapshot): the upload runs in the
// background. A snapshot that arrives while the previous upload still runs
// is not uploaded.
func (u *Uploader) Saved(path string, taken time.Time, leader bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return
	}
	if u.busy {
		u.log.Debug("etcd snapshot not uploaded: the previous upload still runs", "path", path)
		return
	}
	u.busy = true
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		ctx, cancel := context.WithTimeout(u.ctx, u.cfg.Timeout)
		defer cancel()
		_, _, _ = u.Upload(ctx, path, taken, leader)
		u.mu.Lock()
		u.busy = false
		u.mu.Unlock()
	}()
}

// Upload uploads the snapshot file path unless this master is not the
// leader and the store has a recent enough copy (uploaded false), then
// prunes the store. It logs and counts the outcome; an error after
// uploaded is true is the prune's. Saved calls it in the background.
func (u *Uploader) Upload(ctx context.Context, path string, taken time.Time, leader bool) (Object, bool, error) {
	obj, uploaded, err := u.upload(ctx, path, taken, leader)
	if uploaded {
		u.met.uploads.Inc()
		u.met.lastSuccess.Set(float64(time.Now().Unix()))
		u.mu.Lock()
		failures := u.failures
		u.failures, u.lastWarn = 0, time.Time{}
		u.mu.Unlock()
		if failures > 0 {
			u.log.Info("etcd snapshot upload succeeded again", "object", obj.Key, "bytes", obj.Size, "failed_before", failures)
		} else {
			u.log.Info("etcd snapshot uploaded", "object", obj.Key, "bytes", obj.Size)
		}
	}
	switch {
	case err != nil && u.ctx.Err() != nil:
		// Stopping: not a failure of the store.
		u.log.Info("etcd snapshot upload abandoned: masterd stops", "path", path)
	case err != nil:
		u.failed(err) // after an upload, the prune failed
	}
	return obj, uploaded, err
}

func (u *Uploader) upload(ctx context.Context, path string, taken time.Time, leader bool) (Object, bool, error) {
	s, err := Open(u.cfg.Store)
	if err != nil {
		return Object{}, false, err
	}
	if !leader {
		newest, ok, err := s.Newest(ctx)
		if err != nil {
			return Object{}, false, err
		}
		limit := time.Duration(float64(u.cfg.Interval) * staleFactor)
		if ok && taken.Sub(newest.Taken) < limit {
			u.log.Debug("etcd snapshot not uploaded: not the etcd leader and the store has a recent copy", "newest", newest.Name)
			return Object{}, false, nil
		}
		u.log.Info("uploading as a follower: the store's newest copy is old", "newest", newest.Name, "limit_seconds", limit.Seconds())
	}
	obj, err := s.Upload(ctx, path, u.cfg.Master, taken)
	if err != nil {
		return Object{}, false, err
	}
	removed, err := s.Prune(ctx, u.cfg.Store.Retention)
	for _, r := range removed {
		u.log.Info("old etcd snapshot copy deleted", "object", r.Key)
	}
	return obj, true, err
}

// failed counts a failure and logs it: a warning for the first of a run
// and then at most one an hour, Debug between.
func (u *Uploader) failed(err error) {
	u.met.failures.Inc()
	now := time.Now()
	u.mu.Lock()
	u.failures++
	n := u.failures
	warn := u.lastWarn.IsZero() || now.Sub(u.lastWarn) >= warnEvery
	if warn {
		u.lastWarn = now
	}
	u.mu.Unlock()
	if warn {
		u.log.Warn("etcd snapshot upload failed", "error", err, "failures_in_a_row", n,
			"next_warning_after_seconds", warnEvery.Seconds())
	} else {
		u.log.Debug("etcd snapshot upload failed", "error", err, "failures_in_a_row", n)
	}
}

// Close cancels a running upload and waits for it; Saved does nothing
// afterwards.
func (u *Uploader) Close() {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.cancel()
	u.wg.Wait()
}
