package pki

import (
	"bytes"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretRoundTripsThroughItsFileForm(t *testing.T) {
	s := testSecret(t)
	extra := bytes.Repeat([]byte{7}, GossipKeySize)
	s.GossipKeys = append(s.GossipKeys, extra)
	data, err := EncodeSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSecret(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GossipKeys) != 2 || !bytes.Equal(got.GossipKeys[0], s.GossipKeys[0]) || !bytes.Equal(got.GossipKeys[1], extra) {
		t.Errorf("gossip keys not preserved in order")
	}
	for i, ca := range s.cas() {
		g := got.cas()[i]
		if !g.Cert.Equal(ca.Cert) || !keyMatches(g.Key, ca.Cert.PublicKey) {
			t.Errorf("%s not preserved", caRoles[i])
		}
	}
	if !keyMatches(got.ServiceAccountKey, s.ServiceAccountKey.Public()) {
		t.Errorf("service-account key not preserved")
	}
	if !got.Created.Equal(s.Created) {
		t.Errorf("created %v, want %v", got.Created, s.Created)
	}
	again, err := EncodeSecret(got)
	if err != nil || !bytes.Equal(again, data) {
		t.Errorf("re-encoding differs (err %v)", err)
	}
}

func TestGeneratedCAsLastTenYearsAndAreDistinct(t *testing.T) {
	s := testSecret(t)
	seen := map[string]bool{}
	for i, ca := range s.cas() {
		if got := ca.Cert.NotAfter.Sub(t0); got < CAValidity-1e9 || got > CAValidity {
			t.Errorf("%s lives %v, want %v", caRoles[i], got, CAValidity)
		}
		if !ca.Cert.IsCA {
			t.Errorf("%s is not a CA", caRoles[i])
		}
		seen[string(ca.Cert.RawSubjectPublicKeyInfo)] = true
	}
	if len(seen) != 3 {
		t.Errorf("CAs share keys")
	}
	if len(s.GossipKeys) != 1 || len(s.GossipKeys[0]) != 32 {
		t.Errorf("gossip keys %d", len(s.GossipKeys))
	}
}

func TestEncodeSecretRefusesIncompleteSecrets(t *testing.T) {
	s := testSecret(t)
	s.ServiceAccountKey = nil
	if _, err := EncodeSecret(s); err == nil || err.Error() != "pki: encode secret: service-account key missing" {
		t.Errorf("error %v", err)
	}
	if _, err := EncodeSecret(nil); err == nil {
		t.Error("nil secret encoded")
	}
}

func TestGenerateSecretFailsWhenRandomnessRunsOut(t *testing.T) {
	if _, err := GenerateSecret(bytes.NewReader(make([]byte, 10)), t0); err == nil {
		t.Fatal("want error from a short random source")
	}
}

func TestDecodeSecretExplainsWhatIsWrong(t *testing.T) {
	s := testSecret(t)
	good, err := EncodeSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	other := testSecret(t)
	otherData, _ := EncodeSecret(other)
	shortKey := strings.Replace(string(good), "-----BEGIN MASTERD GOSSIP KEY-----\n", "-----BEGIN MASTERD GOSSIP KEY-----\nAAAA\n", 1)
	shortKey = strings.Replace(shortKey, "AAAA\n"+strings.Split(strings.Split(string(good), "-----BEGIN MASTERD GOSSIP KEY-----\n")[1], "-----END")[0], "AAAA\n", 1)
	tests := []struct {
		name string
		data string
		want string
	}{
		{"empty input", "", "no PEM block"},
		{"a certificate instead of a secret", string(encodeCert(s.EtcdCA.Cert)), `first block is "CERTIFICATE"`},
		{"a future version", strings.Replace(string(good), "Version: 1", "Version: 2", 1), `version "2" not supported`},
		{"a bad creation time", strings.Replace(string(good), "Created: ", "Created: x", 1), "not an RFC 3339 time"},
		{"a truncated file", string(good[:len(good)/2]), "missing"},
		{"an unknown role", strings.Replace(string(good), "service-account-key", "sa-key", 1), `unknown role "sa-key"`},
		{"a role listed twice", strings.Replace(string(good), "kube-ca-cert,kube-ca-key", "etcd-ca-cert,etcd-ca-key", 1), "appears twice"},
		{"swapped roles", strings.Replace(string(good), "etcd-ca-cert,etcd-ca-key", "etcd-ca-key,etcd-ca-cert", 1), `type "CERTIFICATE", want "PRIVATE KEY"`},
		{"an extra block", string(good) + string(encodeCert(s.EtcdCA.Cert)), "extra block"},
		{"a short gossip key", shortKey, "gossip key): 3 bytes, want 32"},
		{"a header listing fewer blocks", strings.Replace(string(good), ",service-account-key", "", 1), "extra block"},
		{"a duplicate gossip key", dupGossip(good), "duplicate key"},
		{"a CA key of another secret", mixKey(t, good, otherData), "etcd-ca key does not match its certificate"},
		{"no block list", strings.Replace(string(good), "Blocks: ", "Blockz: ", 1), `header "Blocks" missing`},
		{"no gossip key", strings.Replace(string(good), "gossip-key,", "", 1), `type "MASTERD GOSSIP KEY", want "CERTIFICATE"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeSecret([]byte(tt.data))
			if err == nil {
				t.Fatal("decoded without error")
			}
			if !strings.HasPrefix(err.Error(), "pki: decode secret: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// dupGossip lists the gossip key twice and repeats its block.
func dupGossip(good []byte) string {
	s := string(good)
	start := strings.Index(s, "-----BEGIN MASTERD GOSSIP KEY-----")
	end := strings.Index(s, "-----END MASTERD GOSSIP KEY-----\n") + len("-----END MASTERD GOSSIP KEY-----\n")
	s = s[:end] + s[start:end] + s[end:]
	return strings.Replace(s, "gossip-key,", "gossip-key,gossip-key,", 1)
}

// mixKey replaces the etcd CA key block of good by the one of other.
func mixKey(t *testing.T, good, other []byte) string {
	t.Helper()
	split := func(d []byte) []string { return strings.SplitAfter(string(d), "-----END PRIVATE KEY-----\n") }
	g, o := split(good), split(other)
	// g[0] ends with the etcd CA key (first PRIVATE KEY block).
	gi := strings.LastIndex(g[0], "-----BEGIN PRIVATE KEY-----")
	oi := strings.LastIndex(o[0], "-----BEGIN PRIVATE KEY-----")
	return g[0][:gi] + o[0][oi:] + strings.Join(g[1:], "")
}

func TestWriteSecretIsPrivateAndRefusesToOverwrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "masterd")
	path := filepath.Join(dir, "cluster.key")
	s := testSecret(t)
	if err := WriteSecret(path, s, false); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("secret mode %04o, want 0600", m)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("created directory mode %04o, want 0700", m)
	}
	before, _ := os.ReadFile(path)
	err := WriteSecret(path, testSecret(t), false)
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("overwrite without force: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("refused overwrite changed the file")
	}
	s2 := testSecret(t)
	if err := WriteSecret(path, s2, true); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.KubeCA.Cert.Equal(s2.KubeCA.Cert) {
		t.Error("forced overwrite did not replace the secret")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestLoadSecretRefusesFilesOthersCanRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.key")
	if err := WriteSecret(path, testSecret(t), false); err != nil {
		t.Fatal(err)
	}
	for _, m := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(path, m); err != nil {
			t.Fatal(err)
		}
		_, err := LoadSecret(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: error %v, want one telling to chmod 600", m, err)
		}
	}
	os.Chmod(path, 0o400)
	if _, err := LoadSecret(path); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
	if _, err := LoadSecret(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if err := CheckPermissions(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

func TestLoadSecretNamesTheFileOnDecodeErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.key")
	os.WriteFile(path, []byte("hello"), 0o600)
	_, err := LoadSecret(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v should name %s", err, path)
	}
}

func TestInitTextTellsTheNextSteps(t *testing.T) {
	txt := InitText("/etc/masterd/cluster.key")
	for _, want := range []string{"/etc/masterd/cluster.key", "0600", "masterd.yaml", "systemctl enable --now masterd"} {
		if !strings.Contains(txt, want) {
			t.Errorf("init text lacks %q:\n%s", want, txt)
		}
	}
}

// FuzzDecodeSecret feeds DecodeSecret mutations of real secret files (as
// `masterd init` writes them, under testdata/: test keys, nothing else uses
// them) and of small hand-made ones. The seeds are files, not a secret
// generated per run, so the cached corpus stays valid from run to run.
//
// Inputs are KB long and the Go fuzzer minimizes every new input with
// O(len²) attempts for up to -fuzzminimizetime (60 s by default), reporting
// no executions meanwhile: with the default, the workers spent nearly all
// their time minimizing (8 executions in 30 s). TestMain lowers the
// default for this package; see fuzzMinimizeTime.
func FuzzDecodeSecret(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.key")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed secrets in testdata/: %v", err)
	}
	for _, path := range seeds {
		good, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := DecodeSecret(good); err != nil {
			f.Fatalf("seed %s: %v", path, err)
		}
		f.Add(good)
		f.Add(good[:len(good)/2])
		// The header with only its first block (a gossip key): small, and
		// past the header checks.
		hdr, rest := pem.Decode(good)
		first, _ := pem.Decode(rest)
		hdr.Headers[headerBlocks] = roleGossipKey
		f.Add(append(pem.EncodeToMemory(hdr), pem.EncodeToMemory(first)...))
	}
	f.Add([]byte("-----BEGIN MASTERD CLUSTER SECRET-----\nVersion: 1\nBlocks: gossip-key\n\n-----END MASTERD CLUSTER SECRET-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSecret(data)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same secret.
		again, err := EncodeSecret(s)
		if err != nil {
			t.Fatalf("decoded secret does not encode: %v", err)
		}
		s2, err := DecodeSecret(again)
		if err != nil {
			t.Fatalf("re-encoded secret does not decode: %v", err)
		}
		if !s2.EtcdCA.Cert.Equal(s.EtcdCA.Cert) || len(s2.GossipKeys) != len(s.GossipKeys) {
			t.Fatal("round trip changed the secret")
		}
	})
}
