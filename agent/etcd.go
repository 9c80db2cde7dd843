package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/masterd/masterd/etcdembed"
	"github.com/masterd/masterd/pki"
)

// etcdComponent runs this node's embedded etcd member.
type etcdComponent struct {
	n *node
	m *etcdembed.Member
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
	m, err := etcdembed.New(etcdConfig(c.n))
	if err != nil {
		return err
	}
	c.m = m
	return m.Start(ctx)
}

func (c *etcdComponent) Stop(ctx context.Context) error {
	if c.m == nil {
		return nil
	}
	return c.m.Stop(ctx)
}

// Check is the member's health: a leader, no alarm, a linearizable read.
func (c *etcdComponent) Check(ctx context.Context) error {
	if c.m == nil {
		return errors.New("not started")
	}
	return c.m.Health(ctx)
}

type etcdStatus struct {
	ID      string   `json:"id"`
	Leader  bool     `json:"leader"`
	Members []string `json:"members"`
	Healthy bool     `json:"healthy"`
	Error   string   `json:"error,omitempty"`
}

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
