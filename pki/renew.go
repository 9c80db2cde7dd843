package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// renewRequested is the Change.Reason of a leaf reissued because Renew
// named it.
const renewRequested = "renewal requested"

// LeafNames are the certificates Renew can reissue, as named in
// Files.Expiry, in the order Ensure writes them. The CAs are not among
// them: they come from the cluster secret (docs/design.md, CA rotation).
var LeafNames = []string{
	"etcd-server", "etcd-peer", "etcd-client", "apiserver-etcd-client",
	"apiserver", "apiserver-kubelet-client", "front-proxy-client",
	"admin.conf", "scheduler.conf", "controller-manager.conf",
}

// CANames are the CA certificates of Files.Expiry.
var CANames = []string{"etcd-ca", "kube-ca", "front-proxy-ca"}

// IssuerOf names the CA that signs the certificate name (one of LeafNames
// or CANames; a CA is its own issuer).
func IssuerOf(name string) string {
	switch name {
	case "etcd-server", "etcd-peer", "etcd-client", "apiserver-etcd-client", "etcd-ca":
		return "etcd-ca"
	case "front-proxy-client", "front-proxy-ca":
		return "front-proxy-ca"
	}
	return "kube-ca"
}

// RenewNames checks the arguments of a renewal: leaf names, or "all" alone
// for every leaf. It returns the leaves, or an error naming what is wrong.
func RenewNames(args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("pki: renew: name a certificate or all (one of %s)", strings.Join(LeafNames, ", "))
	}
	if slices.Contains(args, "all") {
		if len(args) > 1 {
			return nil, fmt.Errorf("pki: renew: all renews every certificate; do not name others with it")
		}
		return slices.Clone(LeafNames), nil
	}
	var out []string
	for _, a := range args {
		switch {
		case slices.Contains(CANames, a):
			return nil, fmt.Errorf("pki: renew: %s is a CA, kept in the cluster secret: it is not renewed with the leaves (docs/design.md, CA rotation)", a)
		case !slices.Contains(LeafNames, a):
			return nil, fmt.Errorf("pki: renew: unknown certificate %q (one of %s, or all)", a, strings.Join(LeafNames, ", "))
		case slices.Contains(out, a):
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

// Renew is Ensure that also reissues the leaves named (see RenewNames)
// whatever their remaining lifetime: each gets a new key and a certificate
// valid p.LeafValidity from now. Files.Changes lists them with the reason
// "renewal requested", beside whatever Ensure would have rewritten anyway.
func Renew(dir string, s *Secret, p Params, now time.Time, names []string) (*Files, error) {
	force := map[string]bool{}
	for _, n := range names {
		if !slices.Contains(LeafNames, n) {
			return nil, fmt.Errorf("pki: renew: unknown certificate %q", n)
		}
		force[n] = true
	}
	return ensure(dir, s, p, now, force)
}

// ReadCerts reads the certificate of every name in f's layout (CANames and
// LeafNames; a kubeconfig's is its client certificate) from disk, without
// judging them. A file that is missing or unreadable is left out and named
// in the error; the others are returned.
func (f *Files) ReadCerts() (map[string]*x509.Certificate, error) {
	paths := map[string]string{
		"etcd-ca": f.EtcdCA, "kube-ca": f.KubeCA.Cert, "front-proxy-ca": f.FrontProxyCA,
		"etcd-server": f.EtcdServer.Cert, "etcd-peer": f.EtcdPeer.Cert, "etcd-client": f.EtcdClient.Cert,
		"apiserver-etcd-client": f.APIServerEtcdClient.Cert, "apiserver": f.APIServer.Cert,
		"apiserver-kubelet-client": f.APIServerKubeletClient.Cert, "front-proxy-client": f.FrontProxyClient.Cert,
		"admin.conf": f.AdminConf, "scheduler.conf": f.SchedulerConf, "controller-manager.conf": f.ControllerManagerConf,
	}
	out := map[string]*x509.Certificate{}
	var errs []error
	for name, path := range paths {
		if path == "" {
			continue
		}
		if strings.HasSuffix(name, ".conf") {
			kc, err := readKubeconfig(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("pki: %s: %w", name, err))
				continue
			}
			out[name] = kc.cert
			continue
		}
		data, err := os.ReadFile(path)
		if err == nil {
			var c *x509.Certificate
			if c, err = parseCertPEM(data); err == nil {
				out[name] = c
				continue
			}
		}
		errs = append(errs, fmt.Errorf("pki: %s: %w", name, err))
	}
	return out, errors.Join(errs...)
}
