package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// CAValidity is the lifetime of the CAs in the cluster secret.
const CAValidity = 10 * 365 * 24 * time.Hour

// clockSkew back-dates NotBefore so a master whose clock is a little behind
// the one that issued a certificate still accepts it.
const clockSkew = 5 * time.Minute

// CA is a certificate authority: its self-signed certificate and private key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func serial(r io.Reader) (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	n, err := rand.Int(r, limit)
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil
}

func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(der)
	return sum[:], nil
}

// newCA creates a self-signed CA named cn.
func newCA(r io.Reader, cn string, now time.Time) (CA, error) {
	key, err := newKey()
	if err != nil {
		return CA{}, err
	}
	sn, err := serial(r)
	if err != nil {
		return CA{}, err
	}
	ski, err := keyID(key.Public())
	if err != nil {
		return CA{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"masterd"}},
		// Back-dated an hour: the other masters' clocks may lag the one
		// that ran `masterd init`.
		NotBefore:             now.Add(-time.Hour).UTC().Truncate(time.Second),
		NotAfter:              now.Add(CAValidity).UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(r, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return CA{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return CA{}, err
	}
	return CA{Cert: cert, Key: key}, nil
}

// leafSpec is what a leaf certificate must say; the same value both issues
// a certificate and judges an existing one.
type leafSpec struct {
	cn    string
	org   []string
	dns   []string
	ips   []netip.Addr
	usage []x509.ExtKeyUsage
}

func (s leafSpec) sorted() leafSpec {
	s.org = sortedUnique(s.org)
	s.dns = sortedUnique(s.dns)
	ips := make([]netip.Addr, len(s.ips))
	for i, ip := range s.ips {
		ips[i] = ip.Unmap()
	}
	slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
	s.ips = slices.Compact(ips)
	u := slices.Clone(s.usage)
	slices.Sort(u)
	s.usage = slices.Compact(u)
	return s
}

func sortedUnique(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// issue signs a new key for spec with ca, valid for validity from now
// (cut at the CA's own expiry).
func issue(ca CA, spec leafSpec, now time.Time, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	spec = spec.sorted()
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: spec.cn, Organization: spec.org},
		NotBefore:             now.Add(-clockSkew).UTC().Truncate(time.Second),
		NotAfter:              notAfter.UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           spec.usage,
		BasicConstraintsValid: true,
		DNSNames:              spec.dns,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	for _, ip := range spec.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// certIPs returns the certificate's IP SANs as netip.Addr, IPv4 unmapped.
func certIPs(c *x509.Certificate) []netip.Addr {
	var out []netip.Addr
	for _, ip := range c.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// mismatch says how cert differs from spec, or "" when it matches exactly.
func mismatch(c *x509.Certificate, spec leafSpec) string {
	spec = spec.sorted()
	got := leafSpec{cn: c.Subject.CommonName, org: c.Subject.Organization, dns: c.DNSNames, ips: certIPs(c), usage: c.ExtKeyUsage}.sorted()
	switch {
	case got.cn != spec.cn:
		return fmt.Sprintf("common name %q, want %q", got.cn, spec.cn)
	case !slices.Equal(got.org, spec.org):
		return fmt.Sprintf("organizations %v, want %v", got.org, spec.org)
	case !slices.Equal(got.dns, spec.dns):
		return fmt.Sprintf("dns names %v, want %v", got.dns, spec.dns)
	case !slices.Equal(got.ips, spec.ips):
		return fmt.Sprintf("ip addresses %v, want %v", got.ips, spec.ips)
	case !slices.Equal(got.usage, spec.usage):
		return fmt.Sprintf("extended key usages %v, want %v", got.usage, spec.usage)
	}
	return ""
}

// missing says which of spec's names, addresses and usages cert lacks, or ""
// when cert covers spec (it may carry more). Used for certificates we did
// not issue ourselves.
func missing(c *x509.Certificate, spec leafSpec) string {
	var out []string
	for _, d := range spec.dns {
		if !slices.Contains(c.DNSNames, d) {
			out = append(out, "dns name "+d)
		}
	}
	ips := certIPs(c)
	for _, ip := range spec.ips {
		if !slices.Contains(ips, ip.Unmap()) {
			out = append(out, "ip address "+ip.String())
		}
	}
	for _, u := range spec.usage {
		if len(c.ExtKeyUsage) > 0 && !slices.Contains(c.ExtKeyUsage, u) && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) {
			out = append(out, "extended key usage "+usageName(u))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, ", ")
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "server auth"
	case x509.ExtKeyUsageClientAuth:
		return "client auth"
	}
	return fmt.Sprintf("%d", u)
}

// keyMatches reports whether key is the private half of pub.
func keyMatches(key crypto.Signer, pub crypto.PublicKey) bool {
	k, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(pub)
}

// encodeCert returns the PEM encoding of a certificate.
func encodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// encodeKey returns the PKCS#8 PEM encoding of a private key.
func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseCertPEM returns the first certificate of a PEM file.
func parseCertPEM(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no CERTIFICATE block")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// parseCertsPEM returns every certificate of a PEM file (a CA bundle).
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE block")
	}
	return out, nil
}

// parseKeyPEM returns the first private key of a PEM file, in PKCS#8,
// SEC 1 (EC PRIVATE KEY) or PKCS#1 (RSA PRIVATE KEY) form.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no private key block")
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return s, nil
	}
}
