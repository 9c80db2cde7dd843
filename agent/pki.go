package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
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
	bg      bgLoop // renewLoop
	// running, when set (wire.go: kubeComponent.runningCerts), returns the
	// NotAfter of the certificate each running kubeconfig-based unit
	// started with, by certificate name ("scheduler.conf").
	running func() map[string]time.Time
	// servedAPIServer reads the certificate the local kube-apiserver serves
	// (servedCert; nil in modes where masterd runs no apiserver).
	servedAPIServer func(ctx context.Context) (*x509.Certificate, error)
	// restartStale, when set (wire.go: kubeComponent.checkCredentials),
	// restarts the leader-only units whose kubeconfig changed and returns
	// them; waitRestarts waits for those restarts (renew.go).
	restartStale func() []string
	waitRestarts func(ctx context.Context)
	// inUse is, from the last observe, the NotAfter of each certificate
	// known as a running component uses it (runningExpiry).
	inUse map[string]time.Time

	mu    sync.Mutex
	files *pki.Files // the last Ensure's result (n.files is the first's)
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
	p.LeafValidity, p.RenewBefore = cfg.PKI.LeafValidity.D(), cfg.PKI.RenewBefore.D()
	p.ServiceAccountSigner = savedServiceAccountSigner(cfg.DataDir)
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
	c.setFiles(files)
	if n.cfg.Kubernetes.Mode != "none" {
		addr := net.JoinHostPort(n.cfg.Address.String(), strconv.Itoa(n.cfg.Kubernetes.APIServerPort))
		c.servedAPIServer = func(ctx context.Context) (*x509.Certificate, error) { return servedCert(ctx, addr) }
	}
	c.observe(ctx)
	if n.cfg.Kubernetes.Mode == "managed" {
		if err := writeAPIServerFiles(n, s); err != nil {
			return err
		}
	}
	renew := n.cfg.PKI.ExternalDir == ""
	c.bg.start(func(ctx context.Context) { c.renewLoop(ctx, p, renew) })
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

// observeInterval is how often the expiry metric is refreshed from what
// runs: the apiserver's served certificate changes a few seconds after a
// renewal (it reloads the file), a leader-only unit's when it restarts.
const observeInterval = time.Minute

// renewLoop re-runs ensurePKI daily (when masterd writes the pki) and
// refreshes the expiry metric every observeInterval. etcd and
// kube-apiserver load renewed certificates from disk by themselves (the
// apiserver's serving, kubelet client and etcd client ones:
// pki/reload_kube_test.go); kube-scheduler and kube-controller-manager do
// not, and the kube component restarts them when their kubeconfig's
// certificate changed (kube.go, credentialLoop).
func (c *pkiComponent) renewLoop(ctx context.Context, p pki.Params, renew bool) {
	renewT := time.NewTicker(renewCheckInterval(p))
	defer renewT.Stop()
	observeT := time.NewTicker(min(observeInterval, renewCheckInterval(p)))
	defer observeT.Stop()
	requestT := time.NewTicker(renewRequestPoll)
	defer requestT.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-renewT.C:
			if renew {
				if f, err := c.renew(p); err == nil && len(f.Changes) > 0 {
					// At once, not at the kube component's next check;
					// observe (below) then sees what the units run.
					c.loadRenewed(ctx)
				}
			}
		case <-requestT.C:
			if renew {
				c.serveRenewRequest(ctx, p)
			}
			continue
		case <-observeT.C:
		}
		c.observe(ctx)
	}
}

// renew re-runs ensurePKI at c.now and reports what it wrote.
func (c *pkiComponent) renew(p pki.Params) (*pki.Files, error) {
	p.ServiceAccountSigner = savedServiceAccountSigner(c.n.cfg.DataDir) // rotated since the start?
	files, err := ensurePKI(c.n.pkiDir(), c.n.secret, p, c.now())
	if err != nil {
		c.n.log.Error("certificate renewal failed", "component", "pki", "err", err)
		return nil, err
	}
	for _, ch := range files.Changes {
		c.n.log.Info("certificate written", "component", "pki", "file", ch.Name, "reason", ch.Reason)
	}
	c.setFiles(files)
	return files, nil
}

func (c *pkiComponent) setFiles(f *pki.Files) {
	c.mu.Lock()
	c.files = f
	c.mu.Unlock()
}

// runningExpiry is the NotAfter of each certificate as the running
// components use it: the files' (what etcd and masterd itself load at each
// handshake), the apiserver's as served on its port, each running
// leader-only unit's as in its kubeconfig when it started. Where the
// running value is unknown (the apiserver not answering, a unit not running
// here) the file's stands: it is what the component loads next.
func (c *pkiComponent) runningExpiry(ctx context.Context) map[string]time.Time {
	c.mu.Lock()
	f := c.files
	c.mu.Unlock()
	if f == nil {
		return map[string]time.Time{}
	}
	out := maps.Clone(f.Expiry)
	known := map[string]time.Time{}
	if c.servedAPIServer != nil {
		if cert, err := c.servedAPIServer(ctx); err == nil {
			known["apiserver"] = cert.NotAfter
		}
	}
	if c.running != nil {
		maps.Copy(known, c.running())
	}
	maps.Copy(out, known)
	c.mu.Lock()
	c.inUse = known
	c.mu.Unlock()
	return out
}

// observe sets masterd_cert_expiry_timestamp_seconds from runningExpiry.
func (c *pkiComponent) observe(ctx context.Context) {
	c.metrics.Observe(&pki.Files{Expiry: c.runningExpiry(ctx)})
}

// servedCertTimeout bounds the handshake with the local apiserver.
const servedCertTimeout = 5 * time.Second

// servedCert returns the certificate served on addr, read from a TLS
// handshake (not verified: it only reports what is served).
func servedCert(ctx context.Context, addr string) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, servedCertTimeout)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pki: served certificate of %s: %w", addr, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("pki: served certificate of %s: none presented", addr)
	}
	return certs[0], nil
}

func (c *pkiComponent) Stop(ctx context.Context) error {
	c.bg.stop()
	return nil
}

// certStatus is one certificate in /status (status.go).
type certStatus = CertStatus

func (c *pkiComponent) Status() any {
	c.mu.Lock()
	f, inUse := c.files, c.inUse
	c.mu.Unlock()
	if f == nil {
		return []certStatus{}
	}
	out := make([]certStatus, 0, len(f.Expiry))
	for name, t := range f.Expiry {
		st := certStatus{Name: name, NotAfter: t, Days: int(time.Until(t).Hours() / 24)}
		if u, ok := inUse[name]; ok {
			st.InUseNotAfter = &u
		}
		out = append(out, st)
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
