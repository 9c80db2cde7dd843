package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/masterd/masterd/pki"
	"github.com/masterd/masterd/units"
)

// pkiComponent loads the cluster secret and makes sure this node's
// certificates and kubeconfigs exist and match the configuration.
type pkiComponent struct {
	n       *node
	metrics *pki.Metrics
	now     func() time.Time
	cancel  context.CancelFunc
	done    chan struct{}
}

func newPKIComponent(n *node) (*pkiComponent, error) {
	m, err := pki.NewMetrics(n.reg)
	if err != nil {
		return nil, err
	}
	return &pkiComponent{n: n, metrics: m, now: time.Now}, nil
}

func (c *pkiComponent) Name() string { return "pki" }

// pkiParams are the facts certificates depend on.
func pkiParams(cfg Config) pki.Params {
	p := pki.DefaultParams()
	p.NodeName = cfg.Name
	p.NodeAddress = cfg.Address
	for _, peer := range cfg.Peers {
		p.Peers = append(p.Peers, pki.Peer{Name: peer.Name, Address: peer.Address})
	}
	if cfg.VIP.Enabled {
		p.VIP = cfg.VIP.Address
	}
	p.APIServerPort = uint16(cfg.Kubernetes.APIServerPort)
	p.ServiceCIDR = cfg.Kubernetes.ServiceCIDR
	p.ClusterDomain = cfg.Kubernetes.ClusterDomain
	p.ExtraAPIServerSANs = cfg.Kubernetes.APIServerCertSANs
	return p
}

func (c *pkiComponent) Start(ctx context.Context) error {
	n := c.n
	s, err := pki.LoadSecret(n.cfg.ClusterKeyFile)
	if err != nil {
		return fmt.Errorf("cluster secret (clusterKeyFile): %w", err)
	}
	n.secret = s
	p := pkiParams(n.cfg)
	var files *pki.Files
	if n.cfg.PKI.ExternalDir != "" {
		files, err = pki.UseFiles(*pki.FilesIn(n.cfg.PKI.ExternalDir), p, c.now())
	} else {
		if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
		files, err = ensurePKI(n.pkiDir(), s, p, c.now())
	}
	if err != nil {
		return err
	}
	for _, ch := range files.Changes {
		n.log.Info("certificate written", "component", "pki", "file", ch.Name, "reason", ch.Reason)
	}
	n.files = files
	c.metrics.Observe(files)
	if n.cfg.Kubernetes.Mode == "managed" {
		if err := writeAPIServerFiles(n, s); err != nil {
			return err
		}
	}
	if n.cfg.PKI.ExternalDir == "" {
		runCtx, cancel := context.WithCancel(context.Background())
		c.cancel = cancel
		c.done = make(chan struct{})
		go c.renewLoop(runCtx, p)
	}
	return nil
}

// ensurePKI runs pki.Ensure on dir after pki.CheckDir refused nothing in it,
// when it exists. Ensure quietly tightens the directory to 0700 and its files
// to their modes, which would hide that another user could change them (and
// may have replaced a key or a CA certificate); CheckDir's error names each
// file and the chown/chmod that fixes it.
func ensurePKI(dir string, s *pki.Secret, p pki.Params, now time.Time) (*pki.Files, error) {
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		if err := pki.CheckDir(dir); err != nil {
			return nil, err
		}
	}
	return pki.Ensure(dir, s, p, now)
}

// renewInterval is how often a running daemon re-checks its certificates: a
// master that runs for most of a year without a restart must not let its
// leaves (1 year, renewed 30 days before expiry) run out.
const renewInterval = 24 * time.Hour

// renewLoop re-runs ensurePKI daily. etcd and kube-apiserver reload their
// certificates from disk; nothing else needs to happen.
func (c *pkiComponent) renewLoop(ctx context.Context, p pki.Params) {
	defer close(c.done)
	t := time.NewTicker(renewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		files, err := ensurePKI(c.n.pkiDir(), c.n.secret, p, c.now())
		if err != nil {
			c.n.log.Error("certificate renewal failed", "component", "pki", "err", err)
			continue
		}
		for _, ch := range files.Changes {
			c.n.log.Info("certificate written", "component", "pki", "file", ch.Name, "reason", ch.Reason)
		}
		c.metrics.Observe(files)
	}
}

func (c *pkiComponent) Stop(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	return nil
}

// certStatus is one certificate in /status (status.go).
type certStatus = CertStatus

func (c *pkiComponent) Status() any {
	f := c.n.files
	if f == nil {
		return []certStatus{}
	}
	out := make([]certStatus, 0, len(f.Expiry))
	for name, t := range f.Expiry {
		out = append(out, certStatus{Name: name, NotAfter: t, Days: int(time.Until(t).Hours() / 24)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// encryptionConfigPath and auditPolicyPath are where writeAPIServerFiles
// puts kube-apiserver's EncryptionConfiguration and audit policy: in the
// pki directory, whose owner and modes pki.CheckDir checks at every start.
func (n *node) encryptionConfigPath() string {
	return filepath.Join(n.pkiDir(), pki.EncryptionConfigName)
}

func (n *node) auditPolicyPath() string { return filepath.Join(n.pkiDir(), pki.AuditPolicyName) }

// writeAPIServerFiles writes the EncryptionConfiguration (0600: it holds the
// keys derived from the cluster secret for kubernetes.encryption.keys) and
// the audit policy (0644), each only when its content changed. The
// EncryptionConfiguration is written even with encryption off (identity
// first, the keys after): Secrets encrypted earlier must still read.
func writeAPIServerFiles(n *node, s *pki.Secret) error {
	if err := os.MkdirAll(n.pkiDir(), 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	enc := n.cfg.Kubernetes.Encryption
	data, err := pki.EncryptionConfig(s, enc.Keys, enc.Enabled)
	if err != nil {
		return fmt.Errorf("kubernetes.encryption.keys %v: %w", enc.Keys, err)
	}
	for _, f := range []struct {
		path string
		data []byte
		perm fs.FileMode
	}{
		{n.encryptionConfigPath(), data, 0o600},
		{n.auditPolicyPath(), []byte(units.AuditPolicy), 0o644},
	} {
		changed, err := pki.WriteFile(f.path, f.data, f.perm)
		if err != nil {
			return err
		}
		if changed {
			n.log.Info("apiserver file written", "component", "pki", "file", filepath.Base(f.path))
		}
	}
	return nil
}
