package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// UseFiles checks an operator-supplied PKI ("bring your own", e.g. made with
// cfssl) for this node and returns f with Expiry filled in; it generates and
// writes nothing. Every problem is reported at once.
//
// Required: EtcdCA, EtcdServer, EtcdPeer, EtcdClient, APIServerEtcdClient,
// KubeCA.Cert, APIServer, ServiceAccountKey and ServiceAccountPub. Checked
// when set: KubeCA.Key, APIServerKubeletClient, FrontProxyCA with
// FrontProxyClient (both or neither), and the three kubeconfigs.
//
// For each certificate: the key parses, matches the certificate and is not
// accessible by group or others; the certificate chains to its CA (a CA file
// may be a bundle; a certificate file may carry intermediates after the leaf)
// for the right usage at now; and it carries the names this node needs:
// etcd server and peer the node address, the server also 127.0.0.1; the
// apiserver the node address, the VIP, the first service IP and the
// kubernetes.default.svc names. Extra names are fine.
func UseFiles(f Files, p Params, now time.Time) (*Files, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	out := f
	out.Dir, out.Changes = "", nil
	out.Expiry = map[string]time.Time{}
	c := &byoChecker{now: now, expiry: out.Expiry}

	etcdCA := c.ca("etcd CA", f.EtcdCA, "etcd-ca")
	kubeCA := c.ca("kubernetes CA", f.KubeCA.Cert, "kube-ca")
	c.leaf("etcd server", "etcd-server", f.EtcdServer, etcdCA, leafSpec{
		ips: []netip.Addr{p.NodeAddress, loopback4}, usage: serverOnly})
	c.leaf("etcd peer", "etcd-peer", f.EtcdPeer, etcdCA, leafSpec{
		ips: []netip.Addr{p.NodeAddress}, usage: serverClient})
	c.leaf("masterd etcd client", "etcd-client", f.EtcdClient, etcdCA, leafSpec{usage: clientOnly})
	c.leaf("apiserver etcd client", "apiserver-etcd-client", f.APIServerEtcdClient, etcdCA, leafSpec{usage: clientOnly})
	api := leafSpec{
		dns: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc." + p.ClusterDomain},
		ips:   []netip.Addr{p.NodeAddress},
		usage: serverOnly,
	}
	for _, a := range []netip.Addr{p.VIP, p.LocalAPIAddress} {
		if a.IsValid() {
			api.ips = append(api.ips, a)
		}
	}
	if ip, ok := firstServiceIP(p.ServiceCIDR); ok {
		api.ips = append(api.ips, ip)
	}
	c.leaf("apiserver", "apiserver", f.APIServer, kubeCA, api)

	if f.KubeCA.Key != "" {
		if k := c.key("kubernetes CA key", f.KubeCA.Key); k != nil && kubeCA != nil && !keyMatches(k, kubeCA[0].PublicKey) {
			c.fail("kubernetes CA key %s does not match the first certificate of %s", f.KubeCA.Key, f.KubeCA.Cert)
		}
	}
	if f.APIServerKubeletClient != (Pair{}) {
		c.leaf("apiserver kubelet client", "apiserver-kubelet-client", f.APIServerKubeletClient, kubeCA, leafSpec{usage: clientOnly})
	}
	switch {
	case f.FrontProxyCA != "" && f.FrontProxyClient != (Pair{}):
		fp := c.ca("front-proxy CA", f.FrontProxyCA, "front-proxy-ca")
		c.leaf("front-proxy client", "front-proxy-client", f.FrontProxyClient, fp, leafSpec{usage: clientOnly})
	case f.FrontProxyCA != "" || f.FrontProxyClient != (Pair{}):
		c.fail("front-proxy CA and front-proxy client: give both or neither")
	}
	c.serviceAccount(f.ServiceAccountKey, f.ServiceAccountPub)
	for _, kc := range []struct{ name, path string }{
		{"admin.conf", f.AdminConf}, {"scheduler.conf", f.SchedulerConf}, {"controller-manager.conf", f.ControllerManagerConf},
	} {
		if kc.path != "" {
			c.kubeconfig(kc.name, kc.path, kubeCA)
		}
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	return &out, nil
}

type byoChecker struct {
	now    time.Time
	expiry map[string]time.Time
	errs   []error
}

func (c *byoChecker) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("pki: "+format, args...))
}

func (c *byoChecker) read(what, path string) []byte {
	if path == "" {
		c.fail("%s: no file given", what)
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		c.fail("%s: %v", what, err)
		return nil
	}
	return data
}

// ca loads a CA bundle; nil when it failed (already reported).
func (c *byoChecker) ca(what, path, name string) []*x509.Certificate {
	data := c.read(what, path)
	if data == nil {
		return nil
	}
	certs, err := parseCertsPEM(data)
	if err != nil {
		c.fail("%s %s: %v", what, path, err)
		return nil
	}
	if !certs[0].IsCA {
		c.fail("%s %s: first certificate %q is not a CA", what, path, certs[0].Subject.CommonName)
		return nil
	}
	if !c.now.Before(certs[0].NotAfter) {
		c.fail("%s %s: expired on %s", what, path, certs[0].NotAfter.Format(time.DateOnly))
	}
	c.expiry[name] = certs[0].NotAfter
	return certs
}

func (c *byoChecker) key(what, path string) crypto.Signer {
	data := c.read(what, path)
	if data == nil {
		return nil
	}
	if err := CheckPermissions(path); err != nil {
		c.errs = append(c.errs, err)
	}
	k, err := parseKeyPEM(data)
	if err != nil {
		c.fail("%s %s: %v", what, path, err)
		return nil
	}
	return k
}

func (c *byoChecker) leaf(what, name string, pair Pair, roots []*x509.Certificate, spec leafSpec) {
	data := c.read(what+" certificate", pair.Cert)
	key := c.key(what+" key", pair.Key)
	if data == nil {
		return
	}
	certs, err := parseCertsPEM(data)
	if err != nil {
		c.fail("%s certificate %s: %v", what, pair.Cert, err)
		return
	}
	cert := certs[0]
	c.expiry[name] = cert.NotAfter
	if key != nil && !keyMatches(key, cert.PublicKey) {
		c.fail("%s: key %s does not match certificate %s", what, pair.Key, pair.Cert)
	}
	if m := missing(cert, spec); m != "" {
		c.fail("%s certificate %s: missing %s", what, pair.Cert, m)
	}
	if roots == nil {
		return
	}
	if err := verifyChain(cert, certs[1:], roots, spec.usage, c.now); err != nil {
		c.fail("%s certificate %s: %v", what, pair.Cert, err)
	}
}

func verifyChain(cert *x509.Certificate, inter, roots []*x509.Certificate, usage []x509.ExtKeyUsage, now time.Time) error {
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		KeyUsages:     usage,
	}
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	for _, i := range inter {
		opts.Intermediates.AddCert(i)
	}
	_, err := cert.Verify(opts)
	return err
}

func (c *byoChecker) serviceAccount(keyPath, pubPath string) {
	key := c.key("service-account key", keyPath)
	data := c.read("service-account public key", pubPath)
	if key == nil || data == nil {
		return
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PUBLIC KEY" {
		c.fail("service-account public key %s: no PUBLIC KEY block", pubPath)
		return
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		c.fail("service-account public key %s: %v", pubPath, err)
		return
	}
	if !keyMatches(key, pub) {
		c.fail("service-account key %s does not match public key %s", keyPath, pubPath)
	}
}

func (c *byoChecker) kubeconfig(name, path string, roots []*x509.Certificate) {
	kc, err := readKubeconfig(path)
	if err != nil {
		c.fail("kubeconfig %s: %v", path, err)
		return
	}
	if err := CheckPermissions(path); err != nil {
		c.errs = append(c.errs, err)
	}
	c.expiry[filepath.Base(name)] = kc.cert.NotAfter
	if !keyMatches(kc.key, kc.cert.PublicKey) {
		c.fail("kubeconfig %s: client key does not match client certificate", path)
	}
	if roots != nil {
		if err := verifyChain(kc.cert, nil, roots, clientOnly, c.now); err != nil {
			c.fail("kubeconfig %s: client certificate: %v", path, err)
		}
	}
}
