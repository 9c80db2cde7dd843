package etcdembed

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/masterd/masterd/pki"
	"go.uber.org/zap"
)

// clientAllowedCNs is what the client port demands of a certificate besides
// the etcd CA's signature: the common name of one of etcd's two clients,
// masterd (TLS.ClientCertFile, CN pki.MasterdEtcdClientName when generated)
// and kube-apiserver (the apiserver-etcd-client certificate, CN
// pki.APIServerEtcdClientName when generated). The masters' peer and
// serving certificates, signed by the same CA, are named after their node
// and match neither: without the check a stolen peer certificate would read
// and write every key, Secrets included.
//
// The names are read from the certificates, so a brought-your-own PKI keeps
// its own common names. The apiserver's certificate is the one beside
// masterd's in pki.FilesIn's layout (both the generated directory and
// pki.externalDir use it); when there is none, its generated name is
// allowed.
//
// A member named like one of the clients (a master called "masterd") has a
// peer certificate with that common name, which the check cannot tell from
// the client's: it is logged, and that member's certificates stay usable as
// clients.
func (c Config) clientAllowedCNs(lg *zap.Logger) ([]string, error) {
	own, err := readLeaf("masterd etcd client", c.TLS.ClientCertFile)
	if err != nil || own == nil {
		return nil, err // a missing file: etcd's own start names it
	}
	allowed := []string{own.Subject.CommonName}
	apiserver := pki.FilesIn(filepath.Dir(c.TLS.ClientCertFile)).APIServerEtcdClient.Cert
	api, err := readLeaf("apiserver etcd client", apiserver)
	if err != nil {
		return nil, err
	}
	name := pki.APIServerEtcdClientName
	if api != nil {
		name = api.Subject.CommonName
	}
	if !slices.Contains(allowed, name) {
		allowed = append(allowed, name)
	}
	if slices.Contains(allowed, "") {
		return nil, fmt.Errorf("etcdembed: client certificate %s or %s has no common name: etcd's client port tells its clients apart by it", c.TLS.ClientCertFile, apiserver)
	}
	for _, m := range c.Members {
		if slices.Contains(allowed, m.Name) && lg != nil {
			lg.Warn("a member's name is also an etcd client's common name: its peer and server certificates are accepted as client certificates on the client port",
				zap.String("member", m.Name), zap.Strings("client-common-names", allowed))
		}
	}
	return allowed, nil
}

// readLeaf parses the first certificate of the PEM file at path; nil
// without error when there is no such file.
func readLeaf(what, path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("etcdembed: %s certificate: %w", what, err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("etcdembed: %s certificate %s: no PEM CERTIFICATE block", what, path)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("etcdembed: %s certificate %s: %w", what, path, err)
	}
	return cert, nil
}
