package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileReplacesWithModeAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "new secret" {
		t.Fatalf("content %q, %v", got, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v, want only cluster.key", names)
	}
}

// The mode is not subject to the umask (0666 asked, 0666 given).
func TestWriteFileModeIgnoresTheUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "unit.service")
	if err := WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v; want 0644", fi.Mode(), err)
	}
}

func TestOwnerAndMkdirAll(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chowns to nobody")
	}
	path := filepath.Join(t.TempDir(), "a", "b", "state.json")
	if err := WriteFile(path, []byte("{}"), 0o600, MkdirAll(0o700), Owner(65534, 65534)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("owner %d:%d, want 65534:65534", st.Uid, st.Gid)
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, %v; want 0700", di.Mode(), err)
	}
}

func TestWithoutMkdirAllAMissingDirectoryIsAnError(t *testing.T) {
	if err := WriteFile(filepath.Join(t.TempDir(), "missing", "f"), nil, 0o600); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want not exist", err)
	}
}

// A failing writer, a failing fsync of the file: the target keeps its old
// content and no temporary is left. A failing fsync of the directory comes
// after the rename and is reported.
func TestFailuresLeaveTheTargetAsItWas(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name     string
		write    func(io.Writer) error
		failSync string // "file" or "dir"
		replaced bool
	}{
		{name: "the writer fails", write: func(w io.Writer) error { w.Write([]byte("half")); return boom }},
		{name: "fsync of the file fails", failSync: "file"},
		{name: "fsync of the directory fails", failSync: "dir", replaced: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			synced := map[string]int{}
			sync = func(f *os.File) error {
				kind := "file"
				if fi, err := f.Stat(); err == nil && fi.IsDir() {
					kind = "dir"
				}
				synced[kind]++
				if kind == tc.failSync {
					return boom
				}
				return f.Sync()
			}
			defer func() { sync = (*os.File).Sync }()
			write := tc.write
			if write == nil {
				write = func(w io.Writer) error { _, err := w.Write([]byte("new")); return err }
			}
			err := Write(path, 0o600, write)
			if !errors.Is(err, boom) {
				t.Fatalf("got %v, want the failure", err)
			}
			got, _ := os.ReadFile(path)
			if want := map[bool]string{false: "old", true: "new"}[tc.replaced]; string(got) != want {
				t.Errorf("content %q, want %q", got, want)
			}
			if names := entries(t, dir); len(names) != 1 {
				t.Errorf("directory holds %v, want only f", names)
			}
		})
	}
}

// Both the file and its directory are fsynced on a successful write.
func TestASuccessfulWriteSyncsTheFileAndTheDirectory(t *testing.T) {
	var kinds []string
	sync = func(f *os.File) error {
		fi, err := f.Stat()
		if err == nil && fi.IsDir() {
			kinds = append(kinds, "dir")
		} else {
			kinds = append(kinds, "file")
		}
		return f.Sync()
	}
	defer func() { sync = (*os.File).Sync }()
	if err := WriteFile(filepath.Join(t.TempDir(), "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if len(kinds) != 2 || kinds[0] != "file" || kinds[1] != "dir" {
		t.Errorf("synced %v, want [file dir]", kinds)
	}
}
