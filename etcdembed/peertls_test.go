package etcdembed

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/pki"
	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// The peer port of a real embedded etcd accepts only the masters' peer
// certificates: the apiserver's and masterd's etcd client certificates,
// signed by the same etcd CA, are refused in the TLS handshake, while the
// two members (which check each other's certificates both ways) form a
// cluster and another member's peer certificate is served.
func TestEtcdPeerPortRefusesClientCertificatesOfTheSameCA(t *testing.T) {
	tc := newTestCluster(t, 2)
	tc.startAll()
	if got, err := tc.cfgs[0].peerAllowedHostnames(); err != nil || strings.Join(got, ",") != pki.EtcdPeerName+",m0,m1" {
		t.Fatalf("peer allowed hostnames %v (%v), want [%s m0 m1]", got, err, pki.EtcdPeerName)
	}
	m1 := tc.tls["m1"]
	files := pki.FilesIn(filepath.Join(tc.dir, "m1", "pki"))
	url := fmt.Sprintf("https://127.0.0.1:%d/members", tc.peers[0].PeerPort)
	get := func(cert, key string) (int, error) {
		info := transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: m1.CAFile}
		cfg, err := info.ClientConfig()
		if err != nil {
			return 0, err
		}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(url)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(m1.PeerCertFile, m1.PeerKeyFile); err != nil || code != http.StatusOK {
		t.Fatalf("GET %s with m1's peer certificate: %d %v, want 200", url, code, err)
	}
	for _, c := range []struct {
		name string
		pair pki.Pair
	}{
		{"apiserver etcd client", files.APIServerEtcdClient},
		{"masterd etcd client", files.EtcdClient},
	} {
		code, err := get(c.pair.Cert, c.pair.Key)
		t.Logf("%s certificate on the peer port: %d %v", c.name, code, err)
		if err == nil {
			t.Errorf("the peer port answered %d to the %s certificate, want the handshake refused", code, c.name)
			continue
		}
		if !strings.Contains(err.Error(), "tls: ") {
			t.Errorf("%s certificate: %v, want a TLS refusal", c.name, err)
		}
	}
}
