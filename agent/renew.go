package agent

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/masterd/masterd/internal/atomicfile"
	"github.com/masterd/masterd/pki"
)

// Renewal on request (`masterd certs renew`).
//
// The running daemon is the only writer of its pki directory: the command
// does not write certificates beside it (two writers could pair one's key
// with the other's certificate), it asks. The request is a file,
// dataDir/pki/renew-request.json, which the pki component looks for every
// renewRequestPoll on the goroutine that runs the scheduled renewal: the
// pki directory is root's and mode 0700, so only root can ask, no listener
// is added, and no process has to be found and signalled. The daemon
// reissues the named leaves (pki.Renew), restarts the leader-only units
// whose kubeconfig changed (the same restart as after a scheduled renewal:
// same term, kube Lease handed over), waits for those restarts and for the
// local apiserver to serve a renewed serving certificate, then writes
// renew-result.json. etcd and the apiserver load the other files by
// themselves (pki/reload_kube_test.go).
//
// With no daemon running, the command renews on disk itself (RenewOnDisk):
// the components load the files when masterd starts them.

// File names, in the pki directory, of a renewal request and its result.
const (
	RenewRequestFile = "renew-request.json"
	RenewResultFile  = "renew-result.json"
)

// renewRequestPoll is how often the pki component looks for a request: a
// stat of one file.
const renewRequestPoll = 2 * time.Second

// servedWait bounds the wait for the apiserver to serve its renewed
// certificate (it re-reads the file within seconds).
const servedWait = time.Minute

// RenewRequest asks the running daemon to reissue certificates.
type RenewRequest struct {
	// ID is chosen by the requester and returned in the result.
	ID string `json:"id"`
	// Names are pki.LeafNames entries.
	Names []string `json:"names"`
}

// RenewResult is what the daemon did for a RenewRequest.
type RenewResult struct {
	ID string `json:"id"`
	// Renewed are the certificates written, with their new expiry.
	Renewed []RenewedCert `json:"renewed"`
	// Restarted are the leader-only units restarted to load them.
	Restarted []string `json:"restarted,omitempty"`
	// Error is why the renewal (or a unit restart) failed; empty on success.
	Error string `json:"error,omitempty"`
}

// RenewedCert is one certificate of a RenewResult.
type RenewedCert struct {
	Name     string    `json:"name"`
	NotAfter time.Time `json:"notAfter"`
	Serial   string    `json:"serial"`
}

// NewRenewRequest returns a request for names with a random ID.
func NewRenewRequest(names []string) (RenewRequest, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return RenewRequest{}, fmt.Errorf("renew: request id: %w", err)
	}
	return RenewRequest{ID: hex.EncodeToString(b), Names: names}, nil
}

// PKIDir is the directory the daemon keeps its certificates in (empty with
// pki.externalDir: masterd writes none there).
func PKIDir(cfg Config) string {
	if cfg.PKI.ExternalDir != "" {
		return ""
	}
	return (&node{cfg: cfg}).pkiDir()
}

// WriteRenewRequest leaves req for the daemon of cfg, replacing an earlier
// result so a stale one is never read as this request's.
func WriteRenewRequest(cfg Config, req RenewRequest) error {
	dir := PKIDir(cfg)
	if dir == "" {
		return errors.New("renew: pki.externalDir is set: masterd renews none of those certificates")
	}
	if err := os.Remove(filepath.Join(dir, RenewResultFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("renew: %w", err)
	}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, RenewRequestFile), data, 0o600); err != nil {
		return fmt.Errorf("renew: write request: %w", err)
	}
	return nil
}

// ReadRenewResult returns the daemon's result for the request id, or nil
// while there is none yet.
func ReadRenewResult(cfg Config, id string) (*RenewResult, error) {
	data, err := os.ReadFile(filepath.Join(PKIDir(cfg), RenewResultFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("renew: read result: %w", err)
	}
	var r RenewResult
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("renew: result: %w", err)
	}
	if r.ID != id {
		return nil, nil
	}
	return &r, nil
}

// RenewPending reports whether a request is still waiting for the daemon.
func RenewPending(cfg Config) bool {
	_, err := os.Stat(filepath.Join(PKIDir(cfg), RenewRequestFile))
	return err == nil
}

// CancelRenewRequest removes a request the daemon did not take.
func CancelRenewRequest(cfg Config) error {
	if err := os.Remove(filepath.Join(PKIDir(cfg), RenewRequestFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("renew: %w", err)
	}
	return nil
}

// RenewOnDisk reissues names in the pki directory of cfg when no daemon
// runs (the same pki.Renew the daemon calls).
func RenewOnDisk(cfg Config, names []string, now time.Time) (*pki.Files, error) {
	dir := PKIDir(cfg)
	if dir == "" {
		return nil, errors.New("renew: pki.externalDir is set: masterd renews none of those certificates")
	}
	s, err := pki.LoadSecret(cfg.ClusterKeyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster secret (clusterKeyFile): %w", err)
	}
	if err := pki.CheckDir(dir); err != nil {
		return nil, err
	}
	return pki.Renew(dir, s, pkiParams(cfg), now, names)
}

// renewCheckInterval is how often a running daemon re-checks its
// certificates: a tenth of pki.renewBefore, at most daily, so a leaf is
// renewed well inside its renewal window however short (the lab's are
// minutes).
func renewCheckInterval(p pki.Params) time.Duration {
	return min(renewInterval, max(p.RenewBefore/10, time.Second))
}

// takeRenewRequest returns the pending request and removes it, or nil.
func (c *pkiComponent) takeRenewRequest() (*RenewRequest, error) {
	path := filepath.Join(c.n.pkiDir(), RenewRequestFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	os.Remove(path)
	var req RenewRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, fmt.Errorf("renew request: %w", err)
	}
	return &req, nil
}

// serveRenewRequest answers a pending request, if any (renewLoop).
func (c *pkiComponent) serveRenewRequest(ctx context.Context, p pki.Params) {
	req, err := c.takeRenewRequest()
	if req == nil && err == nil {
		return
	}
	res := RenewResult{}
	if req != nil {
		res = c.renewNow(ctx, p, req.Names)
		res.ID = req.ID
	} else {
		res.Error = err.Error()
	}
	data, err := json.Marshal(res)
	if err == nil {
		err = atomicfile.WriteFile(filepath.Join(c.n.pkiDir(), RenewResultFile), data, 0o600)
	}
	if err != nil {
		c.n.log.Error("renew result not written", "component", "pki", "err", err)
	}
}

// renewNow reissues names and makes every running consumer load them.
func (c *pkiComponent) renewNow(ctx context.Context, p pki.Params, names []string) RenewResult {
	var res RenewResult
	if _, err := pki.RenewNames(names); err != nil {
		res.Error = err.Error()
		return res
	}
	if err := pki.CheckDir(c.n.pkiDir()); err != nil {
		res.Error = err.Error()
		return res
	}
	p.ServiceAccountSigner = savedServiceAccountSigner(c.n.cfg.DataDir) // rotated since the start?
	files, err := pki.Renew(c.n.pkiDir(), c.n.secret, p, c.now(), names)
	if err != nil {
		c.n.log.Error("certificate renewal failed", "component", "pki", "err", err)
		res.Error = err.Error()
		return res
	}
	for _, ch := range files.Changes {
		c.n.log.Info("certificate written", "component", "pki", "file", ch.Name, "reason", ch.Reason)
	}
	c.setFiles(files)
	certs, err := files.ReadCerts()
	if err != nil {
		res.Error = err.Error()
	}
	for _, n := range names {
		if cert := certs[n]; cert != nil {
			res.Renewed = append(res.Renewed, RenewedCert{Name: n, NotAfter: cert.NotAfter, Serial: cert.SerialNumber.Text(16)})
		}
	}
	res.Restarted = c.loadRenewed(ctx)
	if slices.Contains(names, "apiserver") && c.servedAPIServer != nil {
		if err := c.waitServed(ctx, certs["apiserver"]); err != nil && res.Error == "" {
			res.Error = err.Error()
		}
	}
	c.observe(ctx)
	return res
}

// loadRenewed restarts the leader-only units whose kubeconfig changed and
// waits for those restarts; it returns the units restarted.
func (c *pkiComponent) loadRenewed(ctx context.Context) []string {
	if c.restartStale == nil {
		return nil
	}
	units := c.restartStale()
	if len(units) > 0 && c.waitRestarts != nil {
		c.waitRestarts(ctx)
	}
	return units
}

// waitServed waits until the local apiserver serves want (it re-reads
// --tls-cert-file by itself), for at most servedWait.
func (c *pkiComponent) waitServed(ctx context.Context, want *x509.Certificate) error {
	if want == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, servedWait)
	defer cancel()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		got, err := c.servedAPIServer(ctx)
		if err == nil && got.Equal(want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("renew: the apiserver does not serve its renewed certificate after %s", servedWait)
		case <-t.C:
		}
	}
}

// waitRestarts waits until every leader-only unit's start or restart under
// way has ended.
func (c *kubeComponent) waitRestarts(ctx context.Context) {
	c.mu.Lock()
	leaders := make([]*leaderUnit, 0, len(c.leaders))
	for _, l := range c.leaders {
		leaders = append(leaders, l)
	}
	c.mu.Unlock()
	for _, l := range leaders {
		l.mu.Lock()
		ch := l.starting
		l.mu.Unlock()
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}
