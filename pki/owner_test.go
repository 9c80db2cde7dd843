package pki

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// otherUID owns the files the tests hand to another user.
const otherUID = 4242

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chowns files to another user")
	}
}

// writeTestSecret writes a secret into a fresh directory and returns its path.
func writeTestSecret(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "etc", "cluster.key")
	if err := WriteSecret(path, testSecret(t), false); err != nil {
		t.Fatal(err)
	}
	return path
}

func wantRefused(t *testing.T, err error, file string, fixes ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s accepted", file)
	}
	for _, w := range append([]string{file + " is "}, fixes...) {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

func TestSecretOwnedByAnotherUserIsRefused(t *testing.T) {
	needRoot(t)
	path := writeTestSecret(t)
	if _, err := LoadSecret(path); err != nil {
		t.Fatalf("a root-owned 0600 secret: %v", err)
	}
	// "scp as a user, then sudo mv": mode 0600, owner the user.
	if err := os.Chown(path, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	_, err := LoadSecret(path)
	wantRefused(t, err, path, "owned by uid 4242", "chown root:root "+path, "chmod 600 "+path)
}

func TestGroupWritableSecretIsRefused(t *testing.T) {
	path := writeTestSecret(t)
	if err := os.Chmod(path, 0o620); err != nil {
		t.Fatal(err)
	}
	_, err := LoadSecret(path)
	wantRefused(t, err, path, "accessible by group or others (mode 0620)", "chmod 600 "+path)
}

func TestSecretInADirectoryAnotherUserControlsIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		root  bool
		spoil func(dir string) error
		want  string
	}{
		{"owned by another user", true, func(dir string) error { return os.Chown(dir, otherUID, otherUID) }, "owned by uid 4242"},
		{"group-writable", false, func(dir string) error { return os.Chmod(dir, 0o770) }, "writable by group or others (mode 0770)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				needRoot(t)
			}
			path := writeTestSecret(t)
			dir := filepath.Dir(path)
			if err := tc.spoil(dir); err != nil {
				t.Fatal(err)
			}
			_, err := LoadSecret(path)
			wantRefused(t, err, dir, tc.want, "chmod go-w "+dir)
		})
	}
}

func TestCheckDirAcceptsWhatEnsureWrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := CheckDir(filepath.Dir(dir)); err != nil {
		t.Fatalf("an empty pki directory: %v", err)
	}
	mustEnsure(t, dir, testSecret(t), testParams(), t0)
	if err := CheckDir(dir); err != nil {
		t.Fatal(err)
	}
}

func TestCheckDirRefusesFilesAnotherUserCanChange(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	f := mustEnsure(t, dir, testSecret(t), testParams(), t0)
	for _, tc := range []struct {
		name  string
		root  bool
		file  string
		spoil func(path string) error
		want  []string
	}{
		{"a key owned by another user", true, f.EtcdPeer.Key, func(p string) error { return os.Chown(p, otherUID, 0) },
			[]string{"owned by uid 4242", "chown root:root " + f.EtcdPeer.Key, "chmod 600 " + f.EtcdPeer.Key}},
		{"a group-writable key", false, f.ServiceAccountKey, func(p string) error { return os.Chmod(p, 0o660) },
			[]string{"accessible by group or others (mode 0660)", "chmod 600 " + f.ServiceAccountKey}},
		{"a CA certificate owned by another user", true, f.EtcdCA, func(p string) error { return os.Chown(p, otherUID, 0) },
			[]string{"owned by uid 4242", "it holds a certificate others trust", "chmod 644 " + f.EtcdCA}},
		{"a group-writable kubeconfig", false, f.AdminConf, func(p string) error { return os.Chmod(p, 0o620) },
			[]string{"accessible by group or others", "chmod 600 " + f.AdminConf}},
		{"the directory owned by another user", true, dir, func(p string) error { return os.Chown(p, otherUID, 0) },
			[]string{"owned by uid 4242", "chown root:root " + dir}},
		{"the directory writable by group", false, dir, func(p string) error { return os.Chmod(p, 0o770) },
			[]string{"writable by group or others (mode 0770)", "chmod go-w " + dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				needRoot(t)
			}
			fi, err := os.Stat(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer os.Chown(tc.file, os.Geteuid(), os.Getegid())
			defer os.Chmod(tc.file, fi.Mode().Perm())
			if err := tc.spoil(tc.file); err != nil {
				t.Fatal(err)
			}
			wantRefused(t, CheckDir(dir), tc.file, tc.want...)
		})
	}
	if err := CheckDir(dir); err != nil {
		t.Fatalf("after undoing every change: %v", err)
	}
}
