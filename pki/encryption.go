package pki

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/masterd/masterd/internal/atomicfile"
)

// File names, in the pki directory, of the kube-apiserver files the agent
// writes beside the certificates.
const (
	// EncryptionConfigName is the EncryptionConfiguration
	// (--encryption-provider-config); it holds keys: mode 0600.
	EncryptionConfigName = "encryption-config.yaml"
	// AuditPolicyName is the audit policy (--audit-policy-file).
	AuditPolicyName = "audit-policy.yaml"
)

// EncryptionKeySize is the length of a Secrets encryption key: secretbox
// (XSalsa20-Poly1305) takes 32 bytes.
const EncryptionKeySize = 32

// MaxEncryptionKeyGeneration bounds a key generation number.
const MaxEncryptionKeyGeneration = 1 << 20

// EncryptionKey derives generation gen (1, 2, ...) of the key that encrypts
// Secrets at rest: HKDF-SHA256 of the Kubernetes CA's private key (which
// every master holds and which lives as long as the cluster) with the
// generation in the info string. Every master derives the same key; a key
// (which sits in encryption-config.yaml) tells nothing about the CA key or
// the other generations.
func (s *Secret) EncryptionKey(gen int) ([]byte, error) {
	if gen < 1 || gen > MaxEncryptionKeyGeneration {
		return nil, fmt.Errorf("pki: encryption key generation %d: must be in [1, %d]", gen, MaxEncryptionKeyGeneration)
	}
	if s == nil || s.KubeCA.Key == nil {
		return nil, errors.New("pki: encryption key: the cluster secret has no kube-ca key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(s.KubeCA.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: encryption key: %w", err)
	}
	k, err := hkdf.Key(sha256.New, der, nil, "masterd secrets encryption key generation "+strconv.Itoa(gen), EncryptionKeySize)
	if err != nil {
		return nil, fmt.Errorf("pki: encryption key: %w", err)
	}
	return k, nil
}

// EncryptionKeyName is the name of generation gen in the
// EncryptionConfiguration; kube-apiserver stores it in every value's
// prefix, "k8s:enc:secretbox:v1:gen1:".
func EncryptionKeyName(gen int) string { return "gen" + strconv.Itoa(gen) }

// EncryptionConfig returns kube-apiserver's EncryptionConfiguration for
// Secrets: a secretbox provider with the key generations gens (the first
// encrypts, the others only decrypt) and the identity provider, which reads
// Secrets written before encryption was on. With encrypt false the identity
// provider comes first: new writes are plain text, and Secrets encrypted
// earlier still read.
func EncryptionConfig(s *Secret, gens []int, encrypt bool) ([]byte, error) {
	if len(gens) == 0 {
		return nil, errors.New("pki: encryption config: at least one key generation required")
	}
	seen := map[int]bool{}
	var keys bytes.Buffer
	for _, g := range gens {
		if seen[g] {
			return nil, fmt.Errorf("pki: encryption config: key generation %d listed twice", g)
		}
		seen[g] = true
		k, err := s.EncryptionKey(g)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&keys, "              - name: %s\n                secret: %s\n", EncryptionKeyName(g), base64.StdEncoding.EncodeToString(k))
	}
	secretbox := "          - secretbox:\n              keys:\n" + keys.String()
	identity := "          - identity: {}\n"
	providers := secretbox + identity
	if !encrypt {
		providers = identity + secretbox
	}
	return []byte("# Written by masterd from the cluster secret and kubernetes.encryption; do not edit.\n" +
		"apiVersion: apiserver.config.k8s.io/v1\n" +
		"kind: EncryptionConfiguration\n" +
		"resources:\n" +
		"  - resources:\n" +
		"      - secrets\n" +
		"    providers:\n" + providers), nil
}

// WriteFile makes path hold exactly data with mode perm, writing atomically
// only when the content or mode differs, and says whether it wrote.
func WriteFile(path string, data []byte, perm fs.FileMode) (bool, error) {
	got, err := os.ReadFile(path)
	if err == nil && bytes.Equal(got, data) {
		fi, err := os.Stat(path)
		if err == nil && fi.Mode().Perm() == perm {
			return false, nil
		}
	}
	if err := atomicfile.WriteFile(path, data, perm); err != nil {
		return false, fmt.Errorf("pki: write %s: %w", path, err)
	}
	return true, nil
}
