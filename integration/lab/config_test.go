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

// findBinDir takes the directory the environment names, else the cache's
// directory of the version (the environment's, else the default), and only
// one that holds every binary.
func TestFindBinDir(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("MASTERD_CACHE", cache)
	t.Setenv("LABT_DIR", "")
	t.Setenv("LABT_VERSION", "")
	bins := []string{"a", "b"}
	mk := func(dir string, names ...string) string {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	if got := findBinDir("LABT_DIR", "thing", "LABT_VERSION", "v1", bins); got != "" {
		t.Errorf("nothing built: %q, want \"\"", got)
	}
	mk(filepath.Join(cache, "thing", "v1", "bin"), "a")
	if got := findBinDir("LABT_DIR", "thing", "LABT_VERSION", "v1", bins); got != "" {
		t.Errorf("a binary missing: %q, want \"\"", got)
	}
	v1 := mk(filepath.Join(cache, "thing", "v1", "bin"), "b")
	if got := findBinDir("LABT_DIR", "thing", "LABT_VERSION", "v1", bins); got != v1 {
		t.Errorf("default version: %q, want %q", got, v1)
	}
	v2 := mk(filepath.Join(cache, "thing", "v2", "bin"), "a", "b")
	t.Setenv("LABT_VERSION", "v2")
	if got := findBinDir("LABT_DIR", "thing", "LABT_VERSION", "v1", bins); got != v2 {
		t.Errorf("version from the environment: %q, want %q", got, v2)
	}
	own := mk(filepath.Join(t.TempDir(), "own"), "a", "b")
	t.Setenv("LABT_DIR", own)
	if got := findBinDir("LABT_DIR", "thing", "LABT_VERSION", "v1", bins); got != own {
		t.Errorf("directory from the environment: %q, want %q", got, own)
	}
	if got := CacheDir(); got != cache {
		t.Errorf("CacheDir() = %q, want $MASTERD_CACHE %q", got, cache)
	}
}
