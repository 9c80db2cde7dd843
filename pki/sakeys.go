package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// MaxServiceAccountKeyGeneration bounds a service-account key generation.
const MaxServiceAccountKeyGeneration = 1 << 20

// ServiceAccountKeyGen returns the service-account signing key of
// generation gen: generation 0 is the cluster secret's own key (sa.key),
// generation g ≥ 1 an ECDSA P-256 key derived, as the gossip and encryption
// keys are, by HKDF-SHA256 from the Kubernetes CA's private key with g in
// the info string. Every master derives the same key, so a rotation only
// agrees on numbers, and one generation tells nothing about the next.
func (s *Secret) ServiceAccountKeyGen(gen int) (crypto.Signer, error) {
	if gen < 0 || gen > MaxServiceAccountKeyGeneration {
		return nil, fmt.Errorf("pki: service-account key generation %d: must be in [0, %d]", gen, MaxServiceAccountKeyGeneration)
	}
	if s == nil {
		return nil, errors.New("pki: service-account key: no cluster secret")
	}
	if gen == 0 {
		if s.ServiceAccountKey == nil {
			return nil, errors.New("pki: service-account key: the cluster secret has none")
		}
		return s.ServiceAccountKey, nil
	}
	if s.KubeCA.Key == nil {
		return nil, errors.New("pki: service-account key: the cluster secret has no kube-ca key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(s.KubeCA.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: service-account key: %w", err)
	}
	// A P-256 scalar is 32 bytes below the group order: the rare output
	// out of range (about 2^-32) is skipped by a counter in the info.
	for try := 0; try < 16; try++ {
		info := "masterd service-account key generation " + strconv.Itoa(gen) + " try " + strconv.Itoa(try)
		d, err := hkdf.Key(sha256.New, der, nil, info, 32)
		if err != nil {
			return nil, fmt.Errorf("pki: service-account key: %w", err)
		}
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("pki: service-account key generation %d: no valid scalar", gen)
}

// KeyID is the key id kube-apiserver gives a service-account public key
// (base64url of the SHA-256 of its PKIX DER), so tokens signed before and
// after masterd took over signing name the same key.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("pki: key id: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// WriteServiceAccountKey makes sa.key and sa.pub in the pki directory dir
// hold generation gen (what the controller-manager signs legacy token
// Secrets with) and reports whether it changed them.
func WriteServiceAccountKey(dir string, s *Secret, gen int) (bool, error) {
	e := &ensurer{f: FilesIn(dir), s: s}
	if err := e.ensureServiceAccount(gen); err != nil {
		return false, err
	}
	return len(e.f.Changes) > 0, nil
}
