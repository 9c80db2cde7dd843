package etcdembed

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/pki"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// The client port of a real embedded etcd serves only its two clients,
// masterd and kube-apiserver: the masters' peer and serving certificates,
// signed by the same etcd CA, are refused in the TLS handshake and write
// nothing, while masterd's and the apiserver's client certificates (of
// either master: the join procedure reaches the other members' client
// ports) read and write.
func TestEtcdClientPortServesOnlyTheClientCertificates(t *testing.T) {
	tc := newTestCluster(t, 2)
	tc.startAll()
	if got, err := tc.cfgs[0].clientAllowedCNs(nil); err != nil || strings.Join(got, ",") != pki.MasterdEtcdClientName+","+pki.APIServerEtcdClientName {
		t.Fatalf("client allowed common names %v (%v), want [%s %s]", got, err, pki.MasterdEtcdClientName, pki.APIServerEtcdClientName)
	}
	files := func(name string) *pki.Files { return pki.FilesIn(filepath.Join(tc.dir, name, "pki")) }
	clientTLS := func(t *testing.T, p pki.Pair) *tls.Config {
		info := transport.TLSInfo{CertFile: p.Cert, KeyFile: p.Key, TrustedCAFile: tc.cfgs[0].TLS.CAFile}
		c, err := info.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct {
		name string
		pair pki.Pair
	}{
		{"masterd's client certificate", files("m0").EtcdClient},
		{"the apiserver's etcd client certificate", files("m0").APIServerEtcdClient},
		{"the other master's masterd client certificate", files("m1").EtcdClient},
		{"the other master's apiserver etcd client certificate", files("m1").APIServerEtcdClient},
	} {
		t.Run(c.name+" reads and writes", func(t *testing.T) {
			cli := tc.clientWithTLS(clientTLS(t, c.pair), 0)
			mustPut(t, cli, "client/"+c.name, "ok")
			if got := mustGet(t, cli, "client/"+c.name); got != "ok" {
				t.Fatalf("get = %q, want ok", got)
			}
		})
	}
	for _, c := range []struct {
		name string
		pair pki.Pair
	}{
		{"this master's peer certificate", files("m0").EtcdPeer},
		{"this master's serving certificate", files("m0").EtcdServer},
		{"the other master's peer certificate", files("m1").EtcdPeer},
	} {
		t.Run(c.name+" is refused", func(t *testing.T) {
			cfg := clientTLS(t, c.pair)
			cfg.ServerName = "127.0.0.1"
			conn, err := tls.Dial("tcp", tc.endpoint(0)[len("https://"):], cfg)
			if err == nil {
				// TLS 1.3: the server's verdict on the client
				// certificate arrives with the first read.
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
			}
			t.Logf("handshake: %v", err)
			if err == nil || errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "tls: ") {
				t.Fatalf("client port handshake with %s: %v, want a TLS refusal", c.name, err)
			}
			cli := tc.clientWithTLS(clientTLS(t, c.pair), 0)
			if _, err := cli.Put(ctxT(t, 3*time.Second), "intruder", c.name); err == nil {
				t.Fatal("put accepted")
			}
		})
	}
	if got := mustGet(t, tc.members[0].Client(), "intruder"); got != "" {
		t.Errorf("intruder = %q, want absent", got)
	}
}

// The allowed common names come from the client certificates on disk (a
// brought-your-own PKI keeps its names), the apiserver's generated name
// stands in when its certificate is not beside masterd's, a certificate
// without a common name is refused, and a member named like a client is
// logged.
func TestClientAllowedCNsFollowTheCertificates(t *testing.T) {
	write := func(t *testing.T, path, cn string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name            string
		masterd, apisrv string // common names; "-" for no file
		members         []string
		want, wantErr   string
		wantWarn        bool
	}{
		{name: "brought-your-own names are kept", masterd: "ops-masterd", apisrv: "ops-apiserver",
			members: []string{"m1"}, want: "ops-masterd,ops-apiserver"},
		{name: "without the apiserver's certificate its generated name is allowed", masterd: "masterd", apisrv: "-",
			want: "masterd," + pki.APIServerEtcdClientName},
		{name: "one certificate for both clients is one name", masterd: "etcd-client", apisrv: "etcd-client",
			want: "etcd-client"},
		{name: "a client certificate without a common name is refused", masterd: "", apisrv: "ops-apiserver",
			wantErr: "has no common name"},
		{name: "a member named like a client is logged", masterd: "masterd", apisrv: pki.APIServerEtcdClientName,
			members: []string{"m1", "masterd"}, want: "masterd," + pki.APIServerEtcdClientName, wantWarn: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := pki.FilesIn(t.TempDir())
			write(t, f.EtcdClient.Cert, c.masterd)
			if c.apisrv != "-" {
				write(t, f.APIServerEtcdClient.Cert, c.apisrv)
			}
			cfg := Config{TLS: TLS{ClientCertFile: f.EtcdClient.Cert}}
			for _, m := range c.members {
				cfg.Members = append(cfg.Members, Peer{Name: m})
			}
			core, logs := observer.New(zap.WarnLevel)
			got, err := cfg.clientAllowedCNs(zap.New(core))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != c.want {
				t.Fatalf("allowed = %v (%v), want %s", got, err, c.want)
			}
			if warned := logs.Len() > 0; warned != c.wantWarn {
				t.Errorf("warned = %v (%v), want %v", warned, logs.All(), c.wantWarn)
			}
		})
	}
	t.Run("an unreadable certificate is named", func(t *testing.T) {
		f := pki.FilesIn(t.TempDir())
		if err := os.WriteFile(f.EtcdClient.Cert, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Config{TLS: TLS{ClientCertFile: f.EtcdClient.Cert}}.clientAllowedCNs(nil)
		if err == nil || !strings.Contains(err.Error(), f.EtcdClient.Cert) {
			t.Fatalf("err = %v, want one naming %s", err, f.EtcdClient.Cert)
		}
	})
}
