package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/masterd/masterd/internal/atomicfile"
)

// Pair is the paths of a certificate and its private key.
type Pair struct {
	Cert string
	Key  string
}

// Files names every file of a node's PKI, and what Ensure changed.
type Files struct {
	// Dir is the pki directory (empty for UseFiles).
	Dir string

	// EtcdCA is the etcd CA certificate (--trusted-ca-file, --peer-trusted-ca-file,
	// kube-apiserver --etcd-cafile).
	EtcdCA string
	// EtcdServer is etcd's client-port serving certificate (--cert-file/--key-file).
	EtcdServer Pair
	// EtcdPeer is etcd's peer certificate (--peer-cert-file/--peer-key-file).
	EtcdPeer Pair
	// EtcdClient is masterd's own client certificate towards its etcd (CN masterd).
	EtcdClient Pair
	// APIServerEtcdClient is kube-apiserver's client certificate towards etcd
	// (--etcd-certfile/--etcd-keyfile).
	APIServerEtcdClient Pair

	// KubeCA is the Kubernetes CA (--client-ca-file, --root-ca-file). Its key
	// is for kube-controller-manager --cluster-signing-key-file; empty when
	// the operator brings a PKI without it.
	KubeCA Pair
	// APIServer is the apiserver serving certificate (--tls-cert-file/--tls-private-key-file).
	APIServer Pair
	// APIServerKubeletClient authenticates the apiserver to kubelets
	// (--kubelet-client-certificate/--kubelet-client-key; group system:masters).
	APIServerKubeletClient Pair
	// FrontProxyCA is the aggregation-layer CA (--requestheader-client-ca-file).
	FrontProxyCA string
	// FrontProxyClient is --proxy-client-cert-file/--proxy-client-key-file.
	FrontProxyClient Pair

	// ServiceAccountKey signs tokens (apiserver --service-account-signing-key-file,
	// controller-manager --service-account-private-key-file).
	ServiceAccountKey string
	// ServiceAccountPub verifies them (apiserver --service-account-key-file).
	ServiceAccountPub string

	// AdminConf reaches the API via the VIP as kubernetes-admin (system:masters).
	AdminConf string
	// SchedulerConf and ControllerManagerConf reach the local apiserver.
	SchedulerConf         string
	ControllerManagerConf string

	// Expiry is each certificate's NotAfter, by name: "etcd-ca",
	// "etcd-server", "etcd-peer", "etcd-client", "apiserver-etcd-client",
	// "kube-ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca",
	// "front-proxy-client", "admin.conf", "scheduler.conf",
	// "controller-manager.conf" (only those present).
	Expiry map[string]time.Time
	// Changes lists what Ensure wrote and why, in order; empty when every
	// file was already good.
	Changes []Change
}

// Change is one file Ensure (re)wrote.
type Change struct {
	// Name is the file's base name (etcd-server.crt, admin.conf, ...).
	Name string
	// Reason says why: "missing", "expires 2027-01-02 (within 720h0m0s)",
	// "ip addresses [...], want [...]", ...
	Reason string
}

// FilesIn returns the standard layout of a pki directory, the one Ensure writes.
func FilesIn(dir string) *Files {
	pair := func(name string) Pair {
		return Pair{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	}
	return &Files{
		Dir:                    dir,
		EtcdCA:                 filepath.Join(dir, "etcd-ca.crt"),
		EtcdServer:             pair("etcd-server"),
		EtcdPeer:               pair("etcd-peer"),
		EtcdClient:             pair("etcd-client"),
		APIServerEtcdClient:    pair("apiserver-etcd-client"),
		KubeCA:                 pair("ca"),
		APIServer:              pair("apiserver"),
		APIServerKubeletClient: pair("apiserver-kubelet-client"),
		FrontProxyCA:           filepath.Join(dir, "front-proxy-ca.crt"),
		FrontProxyClient:       pair("front-proxy-client"),
		ServiceAccountKey:      filepath.Join(dir, "sa.key"),
		ServiceAccountPub:      filepath.Join(dir, "sa.pub"),
		AdminConf:              filepath.Join(dir, "admin.conf"),
		SchedulerConf:          filepath.Join(dir, "scheduler.conf"),
		ControllerManagerConf:  filepath.Join(dir, "controller-manager.conf"),
		Expiry:                 map[string]time.Time{},
	}
}

// Ensure makes dir hold this node's certificates, keys and kubeconfigs
// derived from s for p, judged at now, and returns their paths. It rewrites
// only files that are missing, unparsable, signed by another CA, not matching
// p, or within p.RenewBefore of expiry; Files.Changes says which and why.
// Ensure refuses to work with a CA that has expired at now.
func Ensure(dir string, s *Secret, p Params, now time.Time) (*Files, error) {
	return ensure(dir, s, p, now, nil)
}

// ensure is Ensure that also reissues the leaves named in force (Renew).
func ensure(dir string, s *Secret, p Params, now time.Time, force map[string]bool) (*Files, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("pki: secret: %w", err)
	}
	var errs []error
	for i, ca := range s.cas() {
		if !now.Before(ca.Cert.NotAfter) {
			errs = append(errs, fmt.Errorf("pki: %s expired on %s: generate a new cluster secret", caRoles[i], ca.Cert.NotAfter.Format(time.DateOnly)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: chmod %s: %w", dir, err)
	}
	// A crash inside atomicfile.WriteFile leaves a temporary file (maybe with
	// key material) behind; clear them before writing new ones.
	if tmps, err := filepath.Glob(filepath.Join(dir, ".*.tmp*")); err == nil {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	e := &ensurer{f: FilesIn(dir), s: s, p: p, now: now, force: force}
	if err := e.run(); err != nil {
		return nil, err
	}
	return e.f, nil
}

type ensurer struct {
	f     *Files
	s     *Secret
	p     Params
	now   time.Time
	force map[string]bool // leaf names to reissue even when good (Renew)
}

func (e *ensurer) changed(path, reason string) {
	e.f.Changes = append(e.f.Changes, Change{Name: filepath.Base(path), Reason: reason})
}

func (e *ensurer) run() error {
	f, s, p := e.f, e.s, e.p
	cas := []struct {
		name, path string
		ca         CA
	}{
		{"etcd-ca", f.EtcdCA, s.EtcdCA},
		{"kube-ca", f.KubeCA.Cert, s.KubeCA},
		{"front-proxy-ca", f.FrontProxyCA, s.FrontProxyCA},
	}
	for _, c := range cas {
		if err := e.ensureBytes(c.path, encodeCert(c.ca.Cert), 0o644); err != nil {
			return err
		}
		f.Expiry[c.name] = c.ca.Cert.NotAfter
	}
	if err := e.ensureKey(f.KubeCA.Key, s.KubeCA.Key); err != nil {
		return err
	}
	if err := e.ensureServiceAccount(p.ServiceAccountSigner); err != nil {
		return err
	}

	leaves := []struct {
		name string
		pair Pair
		ca   CA
		spec leafSpec
	}{
		{"etcd-server", f.EtcdServer, s.EtcdCA, etcdNodeSpec(p)},
		{"etcd-peer", f.EtcdPeer, s.EtcdCA, etcdPeerSpec(p)},
		{"etcd-client", f.EtcdClient, s.EtcdCA, clientSpec(MasterdEtcdClientName)},
		{"apiserver-etcd-client", f.APIServerEtcdClient, s.EtcdCA, clientSpec(APIServerEtcdClientName)},
		{"apiserver", f.APIServer, s.KubeCA, apiServerSpec(p)},
		{"apiserver-kubelet-client", f.APIServerKubeletClient, s.KubeCA, clientSpec(KubeletClientName, MastersGroup)},
		{"front-proxy-client", f.FrontProxyClient, s.FrontProxyCA, clientSpec(FrontProxyClientName)},
	}
	for _, l := range leaves {
		cert, err := e.ensureLeaf(l.pair, l.ca, l.spec)
		if err != nil {
			return err
		}
		f.Expiry[l.name] = cert.NotAfter
	}

	kubePEM := encodeCert(s.KubeCA.Cert)
	confs := []struct {
		path   string
		server netip.Addr
		spec   leafSpec
	}{
		{f.AdminConf, p.adminAPIAddress(), clientSpec(AdminName, MastersGroup)},
		{f.SchedulerConf, p.localAPIAddress(), clientSpec(SchedulerName)},
		{f.ControllerManagerConf, p.localAPIAddress(), clientSpec(ControllerManagerName)},
	}
	for _, c := range confs {
		server := "https://" + net.JoinHostPort(c.server.String(), strconv.Itoa(int(p.APIServerPort)))
		cert, err := e.ensureKubeconfig(c.path, server, kubePEM, c.spec)
		if err != nil {
			return err
		}
		f.Expiry[filepath.Base(c.path)] = cert.NotAfter
	}
	return nil
}

// ensureBytes makes path hold exactly want with mode perm.
func (e *ensurer) ensureBytes(path string, want []byte, perm fs.FileMode) error {
	got, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(got, want):
		return e.ensureMode(path, perm)
	case err == nil:
		e.changed(path, "differs from the cluster secret")
	case errors.Is(err, fs.ErrNotExist):
		e.changed(path, "missing")
	default:
		e.changed(path, "unreadable: "+err.Error())
	}
	if err := atomicfile.WriteFile(path, want, perm); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return nil
}

// ensureKey makes path hold the private key want (0600). An existing file
// holding the same key in another encoding is kept.
// ensureServiceAccount writes generation gen's key pair to sa.key and
// sa.pub unless they hold it.
func (e *ensurer) ensureServiceAccount(gen int) error {
	sa, err := e.s.ServiceAccountKeyGen(gen)
	if err != nil {
		return err
	}
	if err := e.ensureKey(e.f.ServiceAccountKey, sa); err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(sa.Public())
	if err != nil {
		return fmt.Errorf("pki: encode service-account public key: %w", err)
	}
	return e.ensureBytes(e.f.ServiceAccountPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
}

func (e *ensurer) ensureKey(path string, want crypto.Signer) error {
	k, reason := readKey(path)
	if k != nil {
		if eq, ok := k.(interface{ Equal(crypto.PrivateKey) bool }); !ok || !eq.Equal(want) {
			reason = "differs from the cluster secret"
		}
	}
	if reason == "" {
		return e.ensureMode(path, 0o600)
	}
	e.changed(path, reason)
	data, err := encodeKey(want)
	if err != nil {
		return fmt.Errorf("pki: encode %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return nil
}

// readKey returns the private key at path, or nil and why not.
func readKey(path string) (crypto.Signer, string) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "missing"
	}
	if err != nil {
		return nil, "unreadable: " + err.Error()
	}
	k, err := parseKeyPEM(data)
	if err != nil {
		return nil, "unparsable: " + err.Error()
	}
	return k, ""
}

// ensureMode tightens (never loosens) the permissions of an existing file.
func (e *ensurer) ensureMode(path string, perm fs.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if fi.Mode().Perm()&^perm == 0 {
		return nil
	}
	e.changed(path, fmt.Sprintf("mode %04o, want %04o", fi.Mode().Perm(), perm))
	if err := os.Chmod(path, perm); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// judgeLeaf says why cert (with key) is not acceptable as spec issued by ca
// at now, or "" when it is.
func (e *ensurer) judgeLeaf(cert *x509.Certificate, key crypto.Signer, ca CA, spec leafSpec) string {
	if !keyMatches(key, cert.PublicKey) {
		return "key does not match certificate"
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		return "not signed by the current " + ca.Cert.Subject.CommonName
	}
	if m := mismatch(cert, spec); m != "" {
		return m
	}
	if e.now.Before(cert.NotBefore) {
		return "not valid before " + cert.NotBefore.Format(time.RFC3339)
	}
	// Renewing helps only if the new certificate would live longer; near the
	// CA's own end, leaves are cut at the CA's expiry anyway.
	if cert.NotAfter.Sub(e.now) < e.p.RenewBefore && cert.NotAfter.Before(ca.Cert.NotAfter) {
		return fmt.Sprintf("expires %s (within %s)", cert.NotAfter.Format(time.RFC3339), e.p.RenewBefore)
	}
	return ""
}

// ensureLeaf keeps or reissues the certificate and key at pair.
func (e *ensurer) ensureLeaf(pair Pair, ca CA, spec leafSpec) (*x509.Certificate, error) {
	reason, cert := e.leafState(pair, ca, spec)
	if reason == "" && e.force[strings.TrimSuffix(filepath.Base(pair.Cert), ".crt")] {
		reason = renewRequested
	}
	if reason == "" {
		if err := e.ensureMode(pair.Key, 0o600); err != nil {
			return nil, err
		}
		return cert, e.ensureMode(pair.Cert, 0o644)
	}
	cert, key, err := issue(ca, spec, e.now, e.p.LeafValidity)
	if err != nil {
		return nil, fmt.Errorf("pki: issue %s: %w", filepath.Base(pair.Cert), err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode %s: %w", pair.Key, err)
	}
	e.changed(pair.Cert, reason)
	// Key first: a crash between the two leaves a mismatched pair, which
	// the next start regenerates.
	if err := atomicfile.WriteFile(pair.Key, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("pki: write %s: %w", pair.Key, err)
	}
	if err := atomicfile.WriteFile(pair.Cert, encodeCert(cert), 0o644); err != nil {
		return nil, fmt.Errorf("pki: write %s: %w", pair.Cert, err)
	}
	return cert, nil
}

func (e *ensurer) leafState(pair Pair, ca CA, spec leafSpec) (string, *x509.Certificate) {
	data, err := os.ReadFile(pair.Cert)
	if errors.Is(err, fs.ErrNotExist) {
		return "missing", nil
	}
	if err != nil {
		return "unreadable: " + err.Error(), nil
	}
	cert, err := parseCertPEM(data)
	if err != nil {
		return "unparsable: " + err.Error(), nil
	}
	key, reason := readKey(pair.Key)
	if key == nil {
		return "key " + reason, nil
	}
	return e.judgeLeaf(cert, key, ca, spec), cert
}

// ensureKubeconfig keeps or rewrites the kubeconfig at path.
func (e *ensurer) ensureKubeconfig(path, server string, caPEM []byte, spec leafSpec) (*x509.Certificate, error) {
	reason := ""
	var cert *x509.Certificate
	kc, err := readKubeconfig(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		reason = "missing"
	case err != nil:
		reason = "unparsable: " + err.Error()
	case kc.server != server:
		reason = fmt.Sprintf("server %s, want %s", kc.server, server)
	case len(kc.cas) != 1 || !kc.cas[0].Equal(e.s.KubeCA.Cert):
		reason = "certificate authority differs from the cluster secret"
	default:
		reason = e.judgeLeaf(kc.cert, kc.key, e.s.KubeCA, spec)
		cert = kc.cert
		if reason == "" && e.force[filepath.Base(path)] {
			reason = renewRequested
		}
	}
	if reason == "" {
		return cert, e.ensureMode(path, 0o600)
	}
	cert, key, err := issue(e.s.KubeCA, spec, e.now, e.p.LeafValidity)
	if err != nil {
		return nil, fmt.Errorf("pki: issue %s: %w", filepath.Base(path), err)
	}
	data, err := encodeKubeconfig(server, caPEM, spec.cn, cert, key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode %s: %w", path, err)
	}
	e.changed(path, reason)
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("pki: write %s: %w", path, err)
	}
	return cert, nil
}
