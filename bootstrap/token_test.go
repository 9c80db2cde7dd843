package bootstrap

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestGeneratedTokensHaveKubeadmsFormatAndEveryCharacter(t *testing.T) {
	seen := map[rune]int{}
	ids := map[string]bool{}
	for range 2000 {
		tok, err := GenerateToken(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if !tokenRE.MatchString(tok.String()) {
			t.Fatalf("token %q does not match [a-z0-9]{6}.[a-z0-9]{16}", tok)
		}
		if back, err := ParseToken(tok.String()); err != nil || back != tok {
			t.Fatalf("ParseToken(%q) = %v, %v", tok, back, err)
		}
		ids[tok.ID] = true
		for _, c := range tok.ID + tok.Secret {
			seen[c]++
		}
	}
	if len(seen) != 36 {
		t.Errorf("%d distinct characters in 44000 draws, want all 36", len(seen))
	}
	// 44000 draws over 36 characters: about 1222 each; a character off by
	// more than 25% means a biased draw.
	for c, n := range seen {
		if n < 916 || n > 1528 {
			t.Errorf("character %q drawn %d times of 44000, want about 1222", c, n)
		}
	}
	if len(ids) < 1990 {
		t.Errorf("only %d distinct ids in 2000 tokens", len(ids))
	}
}

func TestGenerateTokenRejectsBytesThatWouldBias(t *testing.T) {
	// 252..255 are rejected; 0 is 'a', 35 is '9'.
	src := bytes.NewReader(append(bytes.Repeat([]byte{255, 252, 0, 35}, 16), make([]byte, 64)...))
	tok, err := GenerateToken(src)
	if err != nil {
		t.Fatal(err)
	}
	if tok.ID != "a9a9a9" || tok.Secret != "a9a9a9a9a9a9a9a9" {
		t.Errorf("token %s, want a9a9a9.a9a9a9a9a9a9a9a9", tok)
	}
	if _, err := GenerateToken(bytes.NewReader([]byte{1, 2, 3})); err == nil {
		t.Error("a short random source gave a token")
	}
}

func TestParseTokenRejectsMalformedTokens(t *testing.T) {
	for _, s := range []string{"", "abcdef", "abcdef.", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdef",
		"abcdef.0123456789abcde", "abcdef:0123456789abcdef", "abcdef.0123456789abcdef0", " abcdef.0123456789abcdef"} {
		if _, err := ParseToken(s); err == nil {
			t.Errorf("ParseToken(%q) accepted", s)
		}
	}
}

func TestTokenSecretIsWhatKubeadmWrites(t *testing.T) {
	now := time.Date(2026, 12, 3, 19, 0, 0, 0, time.FixedZone("X", 3600))
	s := TokenSecret(Token{"abcdef", "0123456789abcdef"}, TokenOptions{TTL: 2 * time.Hour, Description: "for w1"}, now)
	if s.Name() != "bootstrap-token-abcdef" || s.Namespace() != "kube-system" || s["type"] != "bootstrap.kubernetes.io/token" {
		t.Errorf("secret %s type %v", s, s["type"])
	}
	want := map[string]string{
		"token-id": "abcdef", "token-secret": "0123456789abcdef", "description": "for w1",
		"expiration":              "2026-12-03T20:00:00Z",
		"usage-bootstrap-signing": "true", "usage-bootstrap-authentication": "true",
		"auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
	}
	data := s["data"].(map[string]any)
	if len(data) != len(want) {
		t.Errorf("data has %d keys, want %d: %v", len(data), len(want), data)
	}
	for k, v := range want {
		got, _ := base64.StdEncoding.DecodeString(data[k].(string))
		if string(got) != v {
			t.Errorf("data[%s] = %q, want %q", k, got, v)
		}
	}
	never := TokenSecret(Token{"abcdef", "0123456789abcdef"}, TokenOptions{}, now)
	if _, ok := never["data"].(map[string]any)["expiration"]; ok {
		t.Error("a token with TTL 0 has an expiration")
	}
}

func TestTokenOptionsValidateNamesEveryProblem(t *testing.T) {
	err := TokenOptions{TTL: -time.Second, Usages: []string{"signing", "other"}, Groups: []string{"system:masters"}}.Validate()
	for _, want := range []string{"ttl: -1s is negative", `usages: "other"`, `groups: "system:masters"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %q", err, want)
		}
	}
	if err := (TokenOptions{TTL: time.Hour}).Validate(); err != nil {
		t.Error(err)
	}
}
