package pki

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// MaxGossipKeyGeneration bounds a gossip key generation number.
const MaxGossipKeyGeneration = 1 << 20

// GossipKeyGen returns the memberlist keys of generation gen: generation 0
// is the cluster secret's own GossipKeys (the first the primary), and
// generation g ≥ 1 is one key derived, as the Secrets encryption keys are,
// by HKDF-SHA256 from the Kubernetes CA's private key with g in the info
// string. Every master derives the same keys, so a rotation only has to
// agree on generation numbers (no key material in etcd, the cluster secret
// file unchanged), and a key that leaked tells nothing about the next
// generation.
func (s *Secret) GossipKeyGen(gen int) ([][]byte, error) {
	if gen < 0 || gen > MaxGossipKeyGeneration {
		return nil, fmt.Errorf("pki: gossip key generation %d: must be in [0, %d]", gen, MaxGossipKeyGeneration)
	}
	if s == nil {
		return nil, errors.New("pki: gossip key: no cluster secret")
	}
	if gen == 0 {
		if len(s.GossipKeys) == 0 {
			return nil, errors.New("pki: gossip key: the cluster secret has no gossip key")
		}
		return slices.Clone(s.GossipKeys), nil
	}
	if s.KubeCA.Key == nil {
		return nil, errors.New("pki: gossip key: the cluster secret has no kube-ca key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(s.KubeCA.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: gossip key: %w", err)
	}
	k, err := hkdf.Key(sha256.New, der, nil, "masterd gossip key generation "+strconv.Itoa(gen), GossipKeySize)
	if err != nil {
		return nil, fmt.Errorf("pki: gossip key: %w", err)
	}
	return [][]byte{k}, nil
}

// GossipKeyring returns the keys of the generations gens, primary's first
// (memberlist encrypts with the first and accepts all). primary must be
// one of gens.
func (s *Secret) GossipKeyring(gens []int, primary int) ([][]byte, error) {
	if !slices.Contains(gens, primary) {
		return nil, fmt.Errorf("pki: gossip keyring: primary generation %d not among %v", primary, gens)
	}
	out, err := s.GossipKeyGen(primary)
	if err != nil {
		return nil, err
	}
	for _, g := range gens {
		if g == primary {
			continue
		}
		ks, err := s.GossipKeyGen(g)
		if err != nil {
			return nil, err
		}
		out = append(out, ks...)
	}
	return out, nil
}
