package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"os"
	"testing"
)

func TestServiceAccountKeyGenerationsAreStableDistinctAndSecretBound(t *testing.T) {
	s, other := testSecret(t), testSecret(t)
	g0, err := s.ServiceAccountKeyGen(0)
	if err != nil || g0 != s.ServiceAccountKey {
		t.Fatalf("generation 0: %v; want the secret's own key", err)
	}
	seen := map[string]int{}
	for g := 0; g <= 3; g++ {
		a, err := s.ServiceAccountKeyGen(g)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := s.ServiceAccountKeyGen(g)
		ka, kb := a.(*ecdsa.PrivateKey), b.(*ecdsa.PrivateKey)
		if !ka.Equal(kb) || ka.Curve != elliptic.P256() {
			t.Fatalf("generation %d: unstable or not P-256", g)
		}
		id, err := KeyID(a.Public())
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[id]; dup {
			t.Fatalf("generation %d repeats generation %d", g, prev)
		}
		seen[id] = g
		if g > 0 {
			o, _ := other.ServiceAccountKeyGen(g)
			if o.(*ecdsa.PrivateKey).Equal(ka) {
				t.Fatalf("generation %d is the same for two cluster secrets", g)
			}
		}
	}
	for _, g := range []int{-1, MaxServiceAccountKeyGeneration + 1} {
		if _, err := s.ServiceAccountKeyGen(g); err == nil {
			t.Errorf("generation %d accepted", g)
		}
	}
}

// KeyID is kube-apiserver's keyIDFromPublicKey (pkg/serviceaccount/jwt.go):
// base64url, unpadded, of the SHA-256 of the PKIX DER.
func TestKeyIDIsTheAPIServersKeyID(t *testing.T) {
	k := testSecret(t).ServiceAccountKey
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	if got, _ := KeyID(k.Public()); got != base64.RawURLEncoding.EncodeToString(sum[:]) || len(got) != 43 {
		t.Fatalf("KeyID = %q", got)
	}
}

// Params.ServiceAccountSigner selects what sa.key holds; back to 0, the
// secret's key is written again.
func TestEnsureWritesTheSigningGeneration(t *testing.T) {
	s, dir := testSecret(t), t.TempDir()
	p := testParams()
	for _, gen := range []int{0, 2, 0} {
		p.ServiceAccountSigner = gen
		f := mustEnsure(t, dir, s, p, t0)
		data, err := os.ReadFile(f.ServiceAccountKey)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseKeyPEM(data)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := s.ServiceAccountKeyGen(gen)
		if !got.(*ecdsa.PrivateKey).Equal(want) {
			t.Fatalf("sa.key with signer generation %d holds another key", gen)
		}
	}
}

func TestWriteServiceAccountKeyReportsAChange(t *testing.T) {
	s, dir := testSecret(t), t.TempDir()
	mustEnsure(t, dir, s, testParams(), t0)
	for _, tc := range []struct {
		gen  int
		want bool
	}{{0, false}, {1, true}, {1, false}, {0, true}} {
		changed, err := WriteServiceAccountKey(dir, s, tc.gen)
		if err != nil || changed != tc.want {
			t.Fatalf("generation %d: changed %v, %v; want %v", tc.gen, changed, err, tc.want)
		}
	}
}
