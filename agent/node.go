package agent

import (
	"log/slog"
	"path/filepath"

	"github.com/masterd/masterd/pki"
	"github.com/prometheus/client_golang/prometheus"
)

// node is the state the components of one masterd share: what an earlier
// component produced at Start (the secret, the certificate files, the etcd
// member) that a later one needs. Components start in order, so a field is set
// before any later component reads it.
type node struct {
	cfg Config
	log *slog.Logger
	reg prometheus.Registerer

	secret *pki.Secret
	files  *pki.Files
}

// Paths under dataDir.
func (n *node) pkiDir() string      { return filepath.Join(n.cfg.DataDir, "pki") }
func (n *node) etcdDir() string     { return filepath.Join(n.cfg.DataDir, "etcd") }
func (n *node) snapshotDir() string { return filepath.Join(n.cfg.DataDir, "snapshots") }
func (n *node) electionDir() string { return filepath.Join(n.cfg.DataDir, "election") }
