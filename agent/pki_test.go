package agent

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/pki"
)

// The pki directory is checked before Ensure touches it: Ensure would
// tighten a group-writable directory to 0700 without a word, hiding that
// another user could have replaced a key or a CA certificate in it.
func TestEnsurePKIRefusesADirectoryOthersCanChange(t *testing.T) {
	cfg, err := load(t, validYAML)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s, err := pki.GenerateSecret(rand.Reader, now)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "pki")

	// A first start: the directory does not exist, Ensure creates it.
	if _, err := ensurePKI(dir, s, pkiParams(cfg), now); err != nil {
		t.Fatalf("first start: %v", err)
	}

	if err := os.Chmod(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	_, err = ensurePKI(dir, s, pkiParams(cfg), now)
	if err == nil {
		t.Fatal("a group-writable pki directory was accepted")
	}
	for _, want := range []string{dir, "writable by group or others (mode 0770)", "chmod go-w " + dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if fi, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o770 {
		t.Errorf("the refused directory was changed to %04o", fi.Mode().Perm())
	}

	// After the fix the error names, the node starts again.
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := ensurePKI(dir, s, pkiParams(cfg), now); err != nil {
		t.Fatalf("after chmod go-w: %v", err)
	}
}
