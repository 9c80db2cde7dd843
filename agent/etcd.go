package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/masterd/masterd/backup"
	"github.com/masterd/masterd/etcdembed"
	"github.com/masterd/masterd/pki"
)

// etcdComponent runs this node's embedded etcd member.
type etcdComponent struct {
	n *node
	m *etcdembed.Member
	// vipHeld, if set, reports whether this node holds the VIP; etcd's
	// leadership is then moved to another member (see leaderAway).
	vipHeld func() bool

	leader bgLoop // placeLeader
	// backup uploads the automatic snapshots (etcd.backup.s3), or nil.
	backup *backup.Uploader
}

// etcd's leader placement: the VIP holder should not also lead etcd, or one
// crash costs both a VIP failover and an etcd election (measured in the
// issue-26 link cuts: requests then waited > 2 s in an apiserver whose etcd
// was electing). When they coincide for leaderAwayAfter, the holder moves
// etcd's leadership to another healthy member, at most once per
// leaderAwayEvery, so neither a VIP that moves back and forth nor a member
// that cannot keep the leadership makes etcd's leader flap.
const (
	leaderAwayPoll  = time.Second
	leaderAwayAfter = 3 * time.Second
	leaderAwayEvery = time.Minute
	leaderAwayMove  = 10 * time.Second // bound of one move (status probes + transfer)
)

// leaderAway is the hysteresis of the leader placement. Not safe for
// concurrent use.
type leaderAway struct {
	since time.Time // the coincidence began (zero: they do not coincide)
	last  time.Time // the latest move attempt
}

// observe feeds whether the VIP holder leads etcd at now and reports
// whether to move the leadership now.
func (h *leaderAway) observe(now time.Time, coincide bool) bool {
	if !coincide {
		h.since = time.Time{}
		return false
	}
	if h.since.IsZero() {
		h.since = now
	}
	if now.Sub(h.since) < leaderAwayAfter || !h.last.IsZero() && now.Sub(h.last) < leaderAwayEvery {
		return false
	}
	h.last = now
	return true
}

// placeLeader moves etcd's leadership off this node while it holds the VIP,
// until ctx ends.
func (c *etcdComponent) placeLeader(ctx context.Context) {
	t := time.NewTicker(leaderAwayPoll)
	defer t.Stop()
	var h leaderAway
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !h.observe(now, c.vipHeld() && c.m.IsLeader()) {
				continue
			}
			mctx, cancel := context.WithTimeout(ctx, leaderAwayMove)
			to, err := c.m.MoveLeader(mctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				c.n.log.Warn("etcd leadership not moved off the VIP holder", "component", "etcd", "err", err)
			} else if to != "" {
				c.n.log.Info("etcd leadership moved off the VIP holder", "component", "etcd", "to", to)
			}
		}
	}
}

func (c *etcdComponent) Name() string { return "etcd" }

// EtcdMemberConfig is this node's embedded etcd member configuration, built from
// cfg exactly as the daemon builds it (the same function): data and snapshot
// dirs under cfg.DataDir, every peer, the cluster token, and the etcd
// certificate files from files (EtcdFiles(cfg) for a command that runs
// beside, or instead of, the daemon). Logger and Registerer stay nil.
// Commands that act on the member's data (masterd etcd restore) use it so
// they cannot drift from the daemon.
func EtcdMemberConfig(cfg Config, files *pki.Files) etcdembed.Config {
	return etcdConfig(&node{cfg: cfg, files: files})
}

// EtcdFiles are the certificate files the daemon uses: pki.externalDir's,
// or those it keeps under dataDir/pki (pki.Ensure's layout).
func EtcdFiles(cfg Config) *pki.Files {
	n := &node{cfg: cfg}
	if cfg.PKI.ExternalDir != "" {
		return pki.FilesIn(cfg.PKI.ExternalDir)
	}
	return pki.FilesIn(n.pkiDir())
}

func etcdConfig(n *node) etcdembed.Config {
	cfg := n.cfg
	e := etcdembed.DefaultConfig()
	e.Name = cfg.Name
	e.DataDir = n.etcdDir()
	e.Address = cfg.Address
	e.ClientPort = uint16(cfg.Etcd.ClientPort)
	e.PeerPort = uint16(cfg.Etcd.PeerPort)
	for _, p := range cfg.Peers {
		e.Members = append(e.Members, etcdembed.Peer{Name: p.Name, Address: p.Address})
	}
	e.ClusterToken = cfg.Gossip.ClusterName
	e.QuotaBytes = cfg.Etcd.QuotaBytes
	e.SnapshotInterval = cfg.Etcd.SnapshotInterval.D()
	e.SnapshotRetention = cfg.Etcd.SnapshotRetention
	e.SnapshotDir = n.snapshotDir()
	e.Logger = n.log
	e.Registerer = n.reg
	if f := n.files; f != nil {
		e.TLS = etcdembed.TLS{
			CAFile:         f.EtcdCA,
			ServerCertFile: f.EtcdServer.Cert, ServerKeyFile: f.EtcdServer.Key,
			PeerCertFile: f.EtcdPeer.Cert, PeerKeyFile: f.EtcdPeer.Key,
			ClientCertFile: f.EtcdClient.Cert, ClientKeyFile: f.EtcdClient.Key,
		}
	}
	return e
}

func (c *etcdComponent) Start(ctx context.Context) error {
	if c.n.files == nil {
		return errors.New("etcd: no certificates (pki did not start)")
	}
	ec := etcdConfig(c.n)
	up, hook, err := startBackup(c.n)
	if err != nil {
		return err
	}
	ec.OnSnapshot = hook
	m, err := etcdembed.New(ec)
	if err != nil {
		if up != nil {
			up.Close()
		}
		return err
	}
	c.m, c.backup = m, up
	if err := m.Start(ctx); err != nil {
		return err
	}
	if c.vipHeld != nil {
		c.leader.start(c.placeLeader)
	}
	return nil
}

func (c *etcdComponent) Stop(ctx context.Context) error {
	c.leader.stop()
	if c.m == nil {
		return nil
	}
	err := c.m.Stop(ctx)
	if c.backup != nil {
		c.backup.Close() // after the member: no snapshot arrives any more
	}
	return err
}

// Check is the member's health: a leader, no alarm, a linearizable read.
func (c *etcdComponent) Check(ctx context.Context) error {
	if c.m == nil {
		return errors.New("not started")
	}
	return c.m.Health(ctx)
}

// etcdStatus is the etcd section of /status (status.go).
type etcdStatus = EtcdStatus

func (c *etcdComponent) Status() any {
	if c.m == nil {
		return etcdStatus{Error: "not started"}
	}
	st := etcdStatus{ID: fmt.Sprintf("%x", c.m.ID()), Leader: c.m.IsLeader()}
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	if err := c.m.Health(ctx); err != nil {
		st.Error = err.Error()
	} else {
		st.Healthy = true
	}
	if ms, err := c.m.Members(ctx); err == nil {
		for _, mem := range ms {
			name := mem.Name
			if mem.IsLearner {
				name += " (learner)"
			}
			st.Members = append(st.Members, name)
		}
	}
	return st
}
