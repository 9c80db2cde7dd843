package tokensigner

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/pki"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	externaljwtv1 "k8s.io/externaljwt/apis/v1"
)

// serve starts s on a socket in a temporary directory and returns a client
// dialled as kube-apiserver dials it.
func serve(t *testing.T, s *Server) externaljwtv1.ExternalJWTSignerClient {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signer.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, mode %v; want 0600", path, err, fi.Mode().Perm())
	}
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return externaljwtv1.NewExternalJWTSignerClient(conn)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// token asks the signer to sign claims and returns the header fields and
// the verified key id; it fails the test when no fetched key verifies it.
func token(t *testing.T, c externaljwtv1.ExternalJWTSignerClient, claims string) map[string]string {
	t.Helper()
	payload := base64.RawURLEncoding.EncodeToString([]byte(claims))
	resp, err := c.Sign(ctx(t), &externaljwtv1.SignJWTRequest{Claims: payload})
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	hb, err := base64.RawURLEncoding.DecodeString(resp.Header)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]string
	dec := json.NewDecoder(strings.NewReader(string(hb)))
	if err := dec.Decode(&h); err != nil || len(h) != 3 || h["typ"] != "JWT" || h["kid"] == "" {
		t.Fatalf("header %s: want exactly alg, kid and typ JWT (%v)", hb, err)
	}
	keys, err := c.FetchKeys(ctx(t), &externaljwtv1.FetchKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(resp.Signature)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(resp.Header + "." + payload))
	for _, k := range keys.Keys {
		if k.KeyId != h["kid"] {
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(k.Key)
		if err != nil {
			t.Fatal(err)
		}
		switch p := pub.(type) {
		case *ecdsa.PublicKey:
			if h["alg"] != "ES256" || len(sig) != 64 || !ecdsa.Verify(p, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
				t.Fatalf("ES256 token does not verify with key %s (alg %s, %d-byte signature)", k.KeyId, h["alg"], len(sig))
			}
		case *rsa.PublicKey:
			if h["alg"] != "RS256" || rsa.VerifyPKCS1v15(p, crypto.SHA256, sum[:], sig) != nil {
				t.Fatalf("RS256 token does not verify with key %s", k.KeyId)
			}
		}
		return h
	}
	t.Fatalf("no fetched key has the token's kid %s", h["kid"])
	return nil
}

func kids(t *testing.T, c externaljwtv1.ExternalJWTSignerClient) []string {
	t.Helper()
	resp, err := c.FetchKeys(ctx(t), &externaljwtv1.FetchKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.RefreshHintSeconds != 10 {
		t.Errorf("refresh hint %ds, want 10", resp.RefreshHintSeconds)
	}
	var out []string
	for _, k := range resp.Keys {
		out = append(out, k.KeyId)
	}
	return out
}

func kid(t *testing.T, k crypto.Signer) string {
	id, err := pki.KeyID(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Over a real Unix socket: tokens are signed by the current key and named
// by kube-apiserver's key id; a rotation (new signer, old key still
// verifying, then dropped) reaches the next call without a restart.
func TestSignAndRotateOverTheSocket(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := serve(t, s)
	if _, err := c.Sign(ctx(t), &externaljwtv1.SignJWTRequest{Claims: "e30"}); err == nil {
		t.Fatal("Sign without keys succeeded")
	}
	md, err := c.Metadata(ctx(t), &externaljwtv1.MetadataRequest{})
	if err != nil || md.MaxTokenExpirationSeconds != 86400 {
		t.Fatalf("Metadata: %v, %v; want 86400 s", md, err)
	}

	old, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	next, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := s.SetKeys(Keys{Signer: old}); err != nil {
		t.Fatal(err)
	}
	if h := token(t, c, `{"sub":"a"}`); h["kid"] != kid(t, old) {
		t.Fatalf("kid %s, want the old key's %s", h["kid"], kid(t, old))
	}
	// Step 1: the new key verifies, the old one signs.
	if err := s.SetKeys(Keys{Signer: old, Verify: []crypto.PublicKey{old.Public(), next.Public()}}); err != nil {
		t.Fatal(err)
	}
	if got := kids(t, c); len(got) != 2 || got[0] != kid(t, old) || got[1] != kid(t, next) {
		t.Fatalf("keys %v, want the old then the new", got)
	}
	// Step 2: the new key signs.
	if err := s.SetKeys(Keys{Signer: next, Verify: []crypto.PublicKey{old.Public()}}); err != nil {
		t.Fatal(err)
	}
	if h := token(t, c, `{"sub":"b"}`); h["kid"] != kid(t, next) {
		t.Fatalf("kid %s after the switch, want the new key's", h["kid"])
	}
	if got := kids(t, c); len(got) != 2 {
		t.Fatalf("keys %v, want both while the old one verifies", got)
	}
	// Step 3: the old key is gone.
	if err := s.SetKeys(Keys{Signer: next}); err != nil {
		t.Fatal(err)
	}
	if got := kids(t, c); len(got) != 1 || got[0] != kid(t, next) {
		t.Fatalf("keys %v, want only the new one", got)
	}
}

func TestRSAKeysSignRS256(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := New(Config{})
	if err := s.SetKeys(Keys{Signer: k}); err != nil {
		t.Fatal(err)
	}
	if h := token(t, serve(t, s), `{"sub":"r"}`); h["alg"] != "RS256" {
		t.Fatalf("alg %s, want RS256", h["alg"])
	}
}

// Bad keys, configurations and requests get errors naming them.
func TestBadInputIsRefusedByName(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	s, _ := New(Config{})
	for _, tc := range []struct {
		k    Keys
		want string
	}{
		{Keys{}, "no signing key"},
		{Keys{Signer: p384}, "only P-256"},
		{Keys{Signer: small}, "at least 2048"},
	} {
		if err := s.SetKeys(tc.k); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetKeys: %v, want %q", err, tc.want)
		}
	}
	if _, err := New(Config{MaxTokenLifetime: time.Minute}); err == nil || !strings.Contains(err.Error(), "at least 10m0s") {
		t.Errorf("New with a 1m lifetime: %v", err)
	}
	if _, err := Listen("/tmp/" + strings.Repeat("x", 120)); err == nil || !strings.Contains(err.Error(), "Unix sockets allow") {
		t.Errorf("Listen with a long path: %v", err)
	}
	good, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := s.SetKeys(Keys{Signer: good}); err != nil {
		t.Fatal(err)
	}
	c := serve(t, s)
	for _, claims := range []string{"", "not base64!", "e30="} {
		if _, err := c.Sign(ctx(t), &externaljwtv1.SignJWTRequest{Claims: claims}); err == nil || !strings.Contains(err.Error(), "claims") {
			t.Errorf("Sign(%q): %v, want an error naming the claims", claims, err)
		}
	}
}

// A stale socket file left by a killed process is replaced.
func TestListenReplacesAStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln2.Close()
}
