package etcdembed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// notDecided is the cluster version a member reports before its cluster
// has ever formed (it is persisted once decided).
const notDecided = "not_decided"

// formedPeer asks every peer's peer port for its version and returns the
// first peer (with its cluster version) whose cluster has formed before, or
// "" when none answers or none has. A formed cluster that serves no client
// has lost quorum; an unformed one is a first boot in progress.
func (m *Member) formedPeer(ctx context.Context) (string, error) {
	info := transport.TLSInfo{
		CertFile:      m.cfg.TLS.PeerCertFile,
		KeyFile:       m.cfg.TLS.PeerKeyFile,
		TrustedCAFile: m.cfg.TLS.CAFile,
	}
	tc, err := info.ClientConfig()
	if err != nil {
		return "", fmt.Errorf("etcdembed: peer tls: %w", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: probeTimeout}
	defer hc.CloseIdleConnections()
	for _, p := range m.cfg.Members {
		if p.Name == m.cfg.Name {
			continue
		}
		u := m.cfg.peerURL(p)
		v, err := peerClusterVersion(ctx, hc, u.String()+"/version")
		if err != nil {
			m.log.Debug("peer port does not answer", "peer", p.Name, "error", err)
			continue
		}
		if v != notDecided && v != "" {
			return fmt.Sprintf("%s cluster version %s", p.Name, v), nil
		}
	}
	return "", nil
}

// peerClusterVersion reads {"etcdserver": ..., "etcdcluster": ...}.
func peerClusterVersion(ctx context.Context, hc *http.Client, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return decodeVersion(io.LimitReader(resp.Body, 64<<10))
}

func decodeVersion(r io.Reader) (string, error) {
	var v struct {
		Cluster string `json:"etcdcluster"`
	}
	if err := json.NewDecoder(r).Decode(&v); err != nil {
		return "", fmt.Errorf("decode version: %w", err)
	}
	return v.Cluster, nil
}
