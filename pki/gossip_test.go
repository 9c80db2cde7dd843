package pki

import (
	"bytes"
	"testing"
)

func TestGossipKeyGenerationsAreStableDistinctAndSecretBound(t *testing.T) {
	s, other := testSecret(t), testSecret(t)
	g0, err := s.GossipKeyGen(0)
	if err != nil || len(g0) != 1 || !bytes.Equal(g0[0], s.GossipKeys[0]) {
		t.Fatalf("generation 0 = %x, %v; want the secret's gossip key", g0, err)
	}
	seen := map[string]int{string(g0[0]): 0}
	for g := 1; g <= 3; g++ {
		a, err := s.GossipKeyGen(g)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := s.GossipKeyGen(g)
		if len(a) != 1 || len(a[0]) != GossipKeySize || !bytes.Equal(a[0], b[0]) {
			t.Fatalf("generation %d: %d keys, unstable or wrong size", g, len(a))
		}
		if prev, dup := seen[string(a[0])]; dup {
			t.Fatalf("generation %d repeats generation %d", g, prev)
		}
		seen[string(a[0])] = g
		o, _ := other.GossipKeyGen(g)
		if bytes.Equal(o[0], a[0]) {
			t.Fatalf("generation %d is the same for two cluster secrets", g)
		}
	}
	for _, bad := range []int{-1, MaxGossipKeyGeneration + 1} {
		if _, err := s.GossipKeyGen(bad); err == nil {
			t.Errorf("generation %d accepted", bad)
		}
	}
	ring, err := s.GossipKeyring([]int{0, 1}, 1)
	g1, _ := s.GossipKeyGen(1)
	if err != nil || len(ring) != 2 || !bytes.Equal(ring[0], g1[0]) || !bytes.Equal(ring[1], g0[0]) {
		t.Errorf("keyring [0 1] primary 1: %d keys, %v; want generation 1 first", len(ring), err)
	}
	if _, err := s.GossipKeyring([]int{0}, 1); err == nil {
		t.Error("a primary outside the generations was accepted")
	}
}
