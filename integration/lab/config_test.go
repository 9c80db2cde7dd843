package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Kube binaries under /tmp are refused with the reason: every lab host
// mounts a tmpfs of its own there and would not find them (a cache under a
// HOME in /tmp made every kube scenario fail with "special device ... does
// not exist"). The same binaries reached through a symlink elsewhere too.
func TestKubeBinDirUnderTmpIsRefused(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "labcfg")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, b := range kubeBinaries {
		if err := os.WriteFile(filepath.Join(dir, b), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(t.TempDir(), "masterd.deb")
	if err := os.WriteFile(deb, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.Deb, o.KubeBinDir = deb, dir
	err = o.Validate()
	if err == nil || !strings.Contains(err.Error(), "under /tmp or /run") {
		t.Fatalf("Validate with kube binaries in %s: %v, want a refusal naming /tmp", dir, err)
	}
	home, err := os.UserHomeDir()
	if err != nil || hostPrivate(home) {
		t.Skipf("no home directory outside /tmp for the symlink case (%q, %v)", home, err)
	}
	links, err := os.MkdirTemp(home, ".labcfg")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(links)
	for _, b := range kubeBinaries {
		if err := os.Symlink(filepath.Join(dir, b), filepath.Join(links, b)); err != nil {
			t.Fatal(err)
		}
	}
	o.KubeBinDir = links
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "under /tmp or /run") {
		t.Fatalf("Validate with symlinks to /tmp: %v, want a refusal", err)
	}
	for _, p := range []string{"/tmp", "/tmp/x", "/run/a/b"} {
		if !hostPrivate(p) {
			t.Errorf("hostPrivate(%q) = false", p)
		}
	}
	for _, p := range []string{"/tmpfoo/x", "/root/.cache/masterd", "/runner"} {
		if hostPrivate(p) {
			t.Errorf("hostPrivate(%q) = true", p)
		}
	}
}
