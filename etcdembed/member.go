package etcdembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Member is one embedded etcd member. Its methods are safe for concurrent use.
type Member struct {
	cfg  Config
	log  *slog.Logger
	zl   *zap.Logger
	last *lastProblem
	met  *metrics

	// lifecycle serialises Start and Stop; mu guards the fields below and
	// is never held while waiting, so Health, Client and IsLeader answer
	// at once even during a long Start.
	lifecycle sync.Mutex
	mu        sync.Mutex
	etcd      *embed.Etcd
	lock      *dataDirLock // held from Start until the member is closed
	client    *clientv3.Client
	bgStop    context.CancelFunc
	bgDone    chan struct{}
	applied   uint64 // applied index seen by the previous Health call
	stuck     int    // consecutive Health calls with applied index stuck behind commit
}

// New validates cfg and returns a stopped Member.
func New(cfg Config) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("etcdembed: invalid config: %w", err)
	}
	cfg.Members = append([]Peer(nil), cfg.Members...)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("etcdembed: register metrics: %w", err)
	}
	last := &lastProblem{}
	return &Member{
		cfg:  cfg,
		log:  log.With("component", "etcdembed", "member", cfg.Name),
		zl:   newZapLogger(log.With("component", "etcd", "member", cfg.Name), last),
		last: last,
		met:  met,
	}, nil
}

// hasData reports whether the data dir holds a member (a WAL).
func (m *Member) hasData() bool {
	entries, err := os.ReadDir(filepath.Join(m.cfg.DataDir, "member", "wal"))
	return err == nil && len(entries) > 0
}

// Start starts the member and returns once it serves clients as a voting
// member, or an error. It decides how to enter the cluster (see the package
// documentation) and logs progress every Config.ProgressInterval while it
// waits. ctx bounds the whole start; without a deadline, Config.ReadyTimeout
// does. On error nothing is left running.
func (m *Member) Start(ctx context.Context) error {
	m.lifecycle.Lock()
	defer m.lifecycle.Unlock()
	if m.running() {
		return errors.New("etcdembed: start: already running")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.cfg.ReadyTimeout)
		defer cancel()
	}
	m.last.set("")
	lock, err := lockDataDir(m.cfg)
	if err != nil {
		return fmt.Errorf("etcdembed: start member %s: %w", m.cfg.Name, err)
	}
	started := false
	defer func() {
		if !started {
			lock.unlock()
		}
	}()

	state, cluster := "new", m.cfg.initialClusterFromConfig()
	if m.hasData() {
		m.log.Info("restarting etcd member from its data dir", "data_dir", m.cfg.DataDir)
	} else {
		p, err := m.plan(ctx)
		if err != nil {
			return err
		}
		state, cluster = p.state, p.initialCluster
	}
	if err := os.MkdirAll(m.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("etcdembed: create data dir: %w", err)
	}
	ec, err := m.cfg.embedConfig(state, cluster, m.zl)
	if err != nil {
		return err
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return m.startError(err)
	}
	if err := m.waitReady(ctx, e); err != nil {
		closeUnready(e)
		return err
	}
	if e.Server.IsLearner() {
		if err := m.promote(ctx, uint64(e.Server.MemberID())); err != nil {
			e.Close()
			return err
		}
		// The promotion is committed; wait until this member has applied
		// it, or it would still refuse requests as a learner.
		if err := m.retry(ctx, "apply own promotion", func(context.Context) (bool, error) {
			if e.Server.IsLearner() {
				return false, errors.New("member still a learner locally")
			}
			return true, nil
		}); err != nil {
			e.Close()
			return err
		}
	}
	cli, err := m.newClient([]string{m.cfg.localEndpoint()})
	if err != nil {
		e.Close()
		return err
	}
	bg, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.mu.Lock()
	m.etcd, m.client, m.bgStop, m.bgDone, m.lock = e, cli, cancel, done, lock
	m.mu.Unlock()
	started = true
	go m.background(bg, done)
	u := m.cfg.clientURL(m.cfg.self())
	m.log.Info("etcd member ready", "id", e.Server.MemberID().String(), "client_url", u.String())
	return nil
}

// closeUnready closes a member that never became ready. embed.Etcd.Close
// alone hangs then: it waits for the client servers, which wait for the
// server to be ready or stopping, and stops the server only afterwards.
func closeUnready(e *embed.Etcd) {
	e.Server.HardStop()
	e.Close()
}

// startError turns etcd's start failure into a clear error.
func (m *Member) startError(err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("etcdembed: start member %s: port taken (client %d or peer %d): %w",
			m.cfg.Name, m.cfg.ClientPort, m.cfg.PeerPort, err)
	}
	return fmt.Errorf("etcdembed: start member %s: %w", m.cfg.Name, err)
}

// waitReady waits for e to serve, logging progress; it explains a failure
// with etcd's last warning.
func (m *Member) waitReady(ctx context.Context, e *embed.Etcd) error {
	tick := time.NewTicker(m.cfg.ProgressInterval)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-e.Server.ReadyNotify():
			return nil
		case err := <-e.Err():
			return fmt.Errorf("etcdembed: member %s failed while starting: %w", m.cfg.Name, err)
		case <-e.Server.StopNotify():
			return fmt.Errorf("etcdembed: member %s stopped while starting: %s", m.cfg.Name, m.explain())
		case <-tick.C:
			m.log.Warn("etcd member not ready yet, waiting for quorum",
				"waited_seconds", time.Since(start).Seconds(), "last_etcd_problem", m.last.get())
		case <-ctx.Done():
			return fmt.Errorf("etcdembed: member %s not ready after %.0fs: %s: %w",
				m.cfg.Name, time.Since(start).Seconds(), m.explain(), ctx.Err())
		}
	}
}

// explain classifies etcd's last warning for an operator.
func (m *Member) explain() string {
	last := m.last.get()
	switch {
	case strings.Contains(last, "cluster ID mismatch"):
		return "data dir belongs to another cluster (cluster ID mismatch with peers): " + last
	case last == "":
		return "quorum unreachable (no peer answered)"
	default:
		return "quorum unreachable: last etcd problem: " + last
	}
}

// newClient connects to endpoints with masterd's client certificate.
func (m *Member) newClient(endpoints []string) (*clientv3.Client, error) {
	return m.cfg.newClient(endpoints)
}

// newClient connects to endpoints with masterd's client certificate.
func (c Config) newClient(endpoints []string) (*clientv3.Client, error) {
	tc, err := c.clientTLS()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         tc,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcdembed: client for %v: %w", endpoints, err)
	}
	return cli, nil
}

func (m *Member) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcd != nil
}

// Client returns a client of the local member (loopback client URL, masterd's
// client certificate), or nil while the member is stopped. The Member owns
// it: do not close it.
func (m *Member) Client() *clientv3.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.client
}

// ID returns the local member's etcd ID, 0 while stopped.
func (m *Member) ID() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.etcd == nil {
		return 0
	}
	return uint64(m.etcd.Server.MemberID())
}

// IsLeader reports whether the local member is etcd's raft leader.
func (m *Member) IsLeader() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcd != nil && m.etcd.Server.Leader() == m.etcd.Server.MemberID()
}

// Stop closes the member; a leader first transfers leadership to another
// voter. It returns ctx's error if closing outlasts ctx (etcd then keeps
// closing in the background). Stopping a stopped member does nothing. A Stop
// during a Start waits for it: cancel Start's context first.
func (m *Member) Stop(ctx context.Context) error {
	m.lifecycle.Lock()
	defer m.lifecycle.Unlock()
	m.mu.Lock()
	e, cli, lock := m.etcd, m.client, m.lock
	bgStop, bgDone := m.bgStop, m.bgDone
	m.etcd, m.client, m.bgStop, m.bgDone, m.lock = nil, nil, nil, nil, nil
	m.mu.Unlock()
	if e == nil {
		return nil
	}
	bgStop()
	<-bgDone
	m.met.leader.Set(0)
	m.met.healthy.Set(0)
	if e.Server.Leader() == e.Server.MemberID() {
		m.log.Info("etcd member is leader, transferring leadership before stop")
	}
	_ = cli.Close()
	done := make(chan struct{})
	go func() {
		e.Close()
		lock.unlock() // only once etcd has let go of the data dir
		close(done)
	}()
	select {
	case <-done:
		m.log.Info("etcd member stopped")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("etcdembed: stop member %s: %w", m.cfg.Name, ctx.Err())
	}
}

// halt stops the member abruptly, as a crash would look to its peers: no
// leadership transfer, no goodbye; the data dir keeps what was fsynced.
// Tests use it as a fault.
func (m *Member) halt() {
	m.lifecycle.Lock()
	defer m.lifecycle.Unlock()
	m.mu.Lock()
	e, cli, lock := m.etcd, m.client, m.lock
	bgStop, bgDone := m.bgStop, m.bgDone
	m.etcd, m.client, m.bgStop, m.bgDone, m.lock = nil, nil, nil, nil, nil
	m.mu.Unlock()
	if e == nil {
		return
	}
	bgStop()
	<-bgDone
	_ = cli.Close()
	closeUnready(e)
	lock.unlock()
}

// background runs periodic snapshots and the leader gauge until ctx ends.
func (m *Member) background(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	leader := time.NewTicker(time.Second)
	defer leader.Stop()
	var snap <-chan time.Time
	if m.cfg.SnapshotInterval > 0 {
		t := time.NewTicker(m.cfg.SnapshotInterval)
		defer t.Stop()
		snap = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-leader.C:
			if m.IsLeader() {
				m.met.leader.Set(1)
			} else {
				m.met.leader.Set(0)
			}
		case <-snap:
			if _, err := m.periodicSnapshot(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("periodic etcd snapshot failed", "error", err)
			}
		}
	}
}
