package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// SecretVersion is the version of the cluster secret format written by this
// package; DecodeSecret refuses any other.
const SecretVersion = 1

// GossipKeySize is the length of a gossip key: AES-256.
const GossipKeySize = 32

// Names of the CAs' common names in generated secrets.
const (
	EtcdCAName       = "masterd-etcd-ca"
	KubeCAName       = "kubernetes"
	FrontProxyCAName = "masterd-front-proxy-ca"
)

// Secret is the cluster secret: identical on every master, created once by
// `masterd init`.
type Secret struct {
	// Created is when the secret was generated (informational).
	Created time.Time
	// GossipKeys are the memberlist keys; GossipKeys[0] is the primary
	// (encrypts), the others are accepted for decryption during rotation.
	GossipKeys [][]byte
	// EtcdCA signs the etcd server, peer and client certificates.
	EtcdCA CA
	// KubeCA signs the apiserver, kubelet-client and kubeconfig certificates.
	KubeCA CA
	// FrontProxyCA signs the aggregation-layer front-proxy client certificate.
	FrontProxyCA CA
	// ServiceAccountKey signs service-account tokens (ECDSA or RSA).
	ServiceAccountKey crypto.Signer
}

// GenerateSecret creates a new cluster secret: one gossip key, three CAs
// valid 10 years from now and a service-account key. r supplies gossip keys
// and serial numbers (crypto/rand.Reader in production).
func GenerateSecret(r io.Reader, now time.Time) (*Secret, error) {
	gk := make([]byte, GossipKeySize)
	if _, err := io.ReadFull(r, gk); err != nil {
		return nil, fmt.Errorf("pki: generate gossip key: %w", err)
	}
	s := &Secret{Created: now.UTC().Truncate(time.Second), GossipKeys: [][]byte{gk}}
	for _, c := range []struct {
		dst *CA
		cn  string
	}{{&s.EtcdCA, EtcdCAName}, {&s.KubeCA, KubeCAName}, {&s.FrontProxyCA, FrontProxyCAName}} {
		ca, err := newCA(r, c.cn, now)
		if err != nil {
			return nil, fmt.Errorf("pki: generate %s: %w", c.cn, err)
		}
		*c.dst = ca
	}
	sa, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("pki: generate service-account key: %w", err)
	}
	s.ServiceAccountKey = sa
	return s, nil
}

// Block roles listed in the header's "Blocks" field.
const (
	roleGossipKey       = "gossip-key"
	roleServiceAccount  = "service-account-key"
	typeHeader          = "MASTERD CLUSTER SECRET"
	typeGossipKey       = "MASTERD GOSSIP KEY"
	maxSecretBlocks     = 64
	secretFilePreamble  = "# masterd cluster secret: identical on every master, mode 0600, copy it only to the masters.\n"
	headerVersion       = "Version"
	headerCreated       = "Created"
	headerBlocks        = "Blocks"
	suffixCert, suffKey = "-cert", "-key"
)

var caRoles = []string{"etcd-ca", "kube-ca", "front-proxy-ca"}

func (s *Secret) cas() []*CA { return []*CA{&s.EtcdCA, &s.KubeCA, &s.FrontProxyCA} }

// EncodeSecret returns the file form of s (see the package doc).
func EncodeSecret(s *Secret) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("pki: encode secret: %w", err)
	}
	var roles []string
	var blocks []*pem.Block
	for _, k := range s.GossipKeys {
		roles = append(roles, roleGossipKey)
		blocks = append(blocks, &pem.Block{Type: typeGossipKey, Bytes: k})
	}
	for i, ca := range s.cas() {
		der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
		if err != nil {
			return nil, fmt.Errorf("pki: encode secret: %s key: %w", caRoles[i], err)
		}
		roles = append(roles, caRoles[i]+suffixCert, caRoles[i]+suffKey)
		blocks = append(blocks, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	der, err := x509.MarshalPKCS8PrivateKey(s.ServiceAccountKey)
	if err != nil {
		return nil, fmt.Errorf("pki: encode secret: service-account key: %w", err)
	}
	roles = append(roles, roleServiceAccount)
	blocks = append(blocks, &pem.Block{Type: "PRIVATE KEY", Bytes: der})

	var buf bytes.Buffer
	buf.WriteString(secretFilePreamble)
	hdr := &pem.Block{Type: typeHeader, Headers: map[string]string{
		headerVersion: strconv.Itoa(SecretVersion),
		headerCreated: s.Created.UTC().Format(time.RFC3339),
		headerBlocks:  strings.Join(roles, ","),
	}}
	for _, b := range append([]*pem.Block{hdr}, blocks...) {
		if err := pem.Encode(&buf, b); err != nil {
			return nil, fmt.Errorf("pki: encode secret: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// DecodeSecret parses the file form of a cluster secret and checks it is
// complete and consistent. It never panics, whatever data holds.
func DecodeSecret(data []byte) (*Secret, error) {
	s, err := decodeSecret(data)
	if err != nil {
		return nil, fmt.Errorf("pki: decode secret: %w", err)
	}
	return s, nil
}

func decodeSecret(data []byte) (*Secret, error) {
	hdr, rest := pem.Decode(data)
	if hdr == nil {
		return nil, errors.New("no PEM block found (is this a masterd cluster secret?)")
	}
	if hdr.Type != typeHeader {
		return nil, fmt.Errorf("first block is %q, want %q", hdr.Type, typeHeader)
	}
	if v := hdr.Headers[headerVersion]; v != strconv.Itoa(SecretVersion) {
		return nil, fmt.Errorf("version %q not supported, want %d", v, SecretVersion)
	}
	s := &Secret{}
	if c, ok := hdr.Headers[headerCreated]; ok {
		t, err := time.Parse(time.RFC3339, c)
		if err != nil {
			return nil, fmt.Errorf("created %q: not an RFC 3339 time", c)
		}
		s.Created = t
	}
	if hdr.Headers[headerBlocks] == "" {
		return nil, fmt.Errorf("header %q missing: it lists the blocks that follow", headerBlocks)
	}
	roles := strings.Split(hdr.Headers[headerBlocks], ",")
	if len(roles) > maxSecretBlocks {
		return nil, fmt.Errorf("%d blocks listed, at most %d allowed", len(roles), maxSecretBlocks)
	}
	seen := map[string]bool{}
	var sa crypto.Signer
	for i, role := range roles {
		b, r := pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("block %d (%s) missing: header lists %d blocks", i+1, role, len(roles))
		}
		rest = r
		if role != roleGossipKey {
			if seen[role] {
				return nil, fmt.Errorf("block %d: role %s appears twice", i+1, role)
			}
			seen[role] = true
		}
		want := "PRIVATE KEY"
		switch {
		case role == roleGossipKey:
			want = typeGossipKey
		case strings.HasSuffix(role, suffixCert):
			want = "CERTIFICATE"
		}
		if b.Type != want {
			return nil, fmt.Errorf("block %d (%s): type %q, want %q", i+1, role, b.Type, want)
		}
		if len(b.Headers) != 0 {
			return nil, fmt.Errorf("block %d (%s): unexpected PEM headers", i+1, role)
		}
		switch role {
		case roleGossipKey:
			if len(b.Bytes) != GossipKeySize {
				return nil, fmt.Errorf("block %d (gossip key): %d bytes, want %d", i+1, len(b.Bytes), GossipKeySize)
			}
			for _, k := range s.GossipKeys {
				if bytes.Equal(k, b.Bytes) {
					return nil, fmt.Errorf("block %d (gossip key): duplicate key", i+1)
				}
			}
			s.GossipKeys = append(s.GossipKeys, bytes.Clone(b.Bytes))
			continue
		case roleServiceAccount:
			k, err := parseSignerDER(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("block %d (%s): %w", i+1, role, err)
			}
			sa = k
			continue
		}
		idx := -1
		for j, r := range caRoles {
			if role == r+suffixCert || role == r+suffKey {
				idx = j
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("block %d: unknown role %q", i+1, role)
		}
		ca := s.cas()[idx]
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("block %d (%s): %w", i+1, role, err)
			}
			ca.Cert = c
		} else {
			k, err := parseSignerDER(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("block %d (%s): %w", i+1, role, err)
			}
			ca.Key = k
		}
	}
	if b, _ := pem.Decode(rest); b != nil {
		return nil, fmt.Errorf("extra block %q after the %d listed in the header", b.Type, len(roles))
	}
	s.ServiceAccountKey = sa
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

func parseSignerDER(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("key type %T not supported, want ECDSA or RSA", k)
}

// check reports the first way s is incomplete or inconsistent.
func (s *Secret) check() error {
	if s == nil {
		return errors.New("nil secret")
	}
	if len(s.GossipKeys) == 0 {
		return errors.New("no gossip key")
	}
	for i, k := range s.GossipKeys {
		if len(k) != GossipKeySize {
			return fmt.Errorf("gossip key %d: %d bytes, want %d", i, len(k), GossipKeySize)
		}
	}
	for i, ca := range s.cas() {
		name := caRoles[i]
		switch {
		case ca.Cert == nil:
			return fmt.Errorf("%s certificate missing", name)
		case ca.Key == nil:
			return fmt.Errorf("%s key missing", name)
		case !ca.Cert.IsCA || !ca.Cert.BasicConstraintsValid:
			return fmt.Errorf("%s certificate is not a CA", name)
		case !keyMatches(ca.Key, ca.Cert.PublicKey):
			return fmt.Errorf("%s key does not match its certificate", name)
		}
		if err := ca.Cert.CheckSignatureFrom(ca.Cert); err != nil {
			return fmt.Errorf("%s certificate is not self-signed: %w", name, err)
		}
	}
	if s.ServiceAccountKey == nil {
		return errors.New("service-account key missing")
	}
	return nil
}
