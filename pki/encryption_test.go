package pki

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Every master derives the same keys from the same secret; generations
// differ from each other and from another cluster's.
func TestEncryptionKeysAreDerivedPerGenerationAndCluster(t *testing.T) {
	s := testSecret(t)
	copyOf, err := DecodeSecret(mustEncode(t, s))
	if err != nil {
		t.Fatal(err)
	}
	k1, err := s.EncryptionKey(1)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := copyOf.EncryptionKey(1)
	k2, _ := s.EncryptionKey(2)
	other, _ := testSecret(t).EncryptionKey(1)
	if len(k1) != EncryptionKeySize || !bytes.Equal(k1, again) {
		t.Fatalf("generation 1: %d bytes, equal on a decoded copy %v", len(k1), bytes.Equal(k1, again))
	}
	if bytes.Equal(k1, k2) || bytes.Equal(k1, other) {
		t.Fatal("generation 2 or another cluster's generation 1 equals generation 1")
	}
	for _, g := range []int{0, -1, MaxEncryptionKeyGeneration + 1} {
		if _, err := s.EncryptionKey(g); err == nil || !strings.Contains(err.Error(), "must be in [1,") {
			t.Errorf("generation %d: %v, want a range error", g, err)
		}
	}
}

func mustEncode(t *testing.T, s *Secret) []byte {
	t.Helper()
	b, err := EncodeSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncryptionConfigListsKeysInOrderAndIdentityByTheSwitch(t *testing.T) {
	s := testSecret(t)
	k2, _ := s.EncryptionKey(2)
	k1, _ := s.EncryptionKey(1)
	on, err := EncryptionConfig(s, []int{2, 1}, true)
	if err != nil {
		t.Fatal(err)
	}
	text := string(on)
	i2 := strings.Index(text, "secret: "+base64.StdEncoding.EncodeToString(k2))
	i1 := strings.Index(text, "secret: "+base64.StdEncoding.EncodeToString(k1))
	iBox, iID := strings.Index(text, "- secretbox:"), strings.Index(text, "- identity: {}")
	if i2 < 0 || i1 < 0 || i2 > i1 || iBox < 0 || iID < iBox || !strings.Contains(text, "name: gen2") {
		t.Fatalf("want secretbox gen2 then gen1, then identity:\n%s", text)
	}
	off, err := EncryptionConfig(s, []int{1}, false)
	if err != nil {
		t.Fatal(err)
	}
	if iID, iBox := strings.Index(string(off), "- identity: {}"), strings.Index(string(off), "- secretbox:"); iID < 0 || iBox < iID {
		t.Fatalf("encryption off: want identity first and secretbox after (to read old Secrets):\n%s", off)
	}
	for _, bad := range [][]int{nil, {1, 1}, {0}} {
		if _, err := EncryptionConfig(s, bad, true); err == nil {
			t.Errorf("generations %v accepted", bad)
		}
	}
}

// WriteFile writes only on a change and keeps the mode; CheckDir refuses an
// encryption config others can read.
func TestWriteFileAndCheckDirCoverTheEncryptionConfig(t *testing.T) {
	s := testSecret(t)
	dir := t.TempDir()
	mustEnsure(t, dir, s, testParams(), time.Now())
	path := filepath.Join(dir, EncryptionConfigName)
	data, err := EncryptionConfig(s, []int{1}, true)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		changed, err := WriteFile(path, data, 0o600)
		if err != nil || changed != want {
			t.Fatalf("write %d: changed %v (%v), want %v", i+1, changed, err, want)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", fi.Mode().Perm())
	}
	if err := CheckDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(dir); err == nil || !strings.Contains(err.Error(), EncryptionConfigName) {
		t.Fatalf("CheckDir with a world-readable %s: %v", EncryptionConfigName, err)
	}
}
