package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/internal/cli"
)

// One page per command of the tree, each a gzipped troff page whose .TH names
// the command, section 8 and the version; man renders them without a
// warning; the completion scripts name the program. Twice the same bytes.
func TestGenerateManPagesAndCompletions(t *testing.T) {
	date := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	dirs := []string{t.TempDir(), t.TempDir()}
	for _, d := range dirs {
		if err := generate(d, cli.Build{Version: "1.2.3"}, &date); err != nil {
			t.Fatal(err)
		}
	}
	pages, _ := filepath.Glob(filepath.Join(dirs[0], "man8", "*.8.gz"))
	want := map[string]string{
		"masterd.8.gz":                 `.TH "MASTERD" "8" "Dec 2026" "masterd 1.2.3"`,
		"masterd-run.8.gz":             `.TH "MASTERD-RUN" "8"`,
		"masterd-etcd-restore.8.gz":    `.TH "MASTERD-ETCD-RESTORE" "8"`,
		"masterd-completion-bash.8.gz": `.TH "MASTERD-COMPLETION-BASH" "8"`,
	}
	if len(pages) < 15 {
		t.Errorf("%d pages, want one per command (15 or more): %v", len(pages), pages)
	}
	for _, p := range pages {
		text := gunzip(t, p)
		if w, ok := want[filepath.Base(p)]; ok {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", p, w, text)
			}
			delete(want, filepath.Base(p))
		}
		if !strings.Contains(text, ".SH SYNOPSIS") || !strings.Contains(text, ".SH DESCRIPTION") {
			t.Errorf("%s lacks SYNOPSIS or DESCRIPTION", p)
		}
		other, err := os.ReadFile(filepath.Join(dirs[1], "man8", filepath.Base(p)))
		raw, _ := os.ReadFile(p)
		if err != nil || !bytes.Equal(raw, other) {
			t.Errorf("%s differs between two runs (%v)", filepath.Base(p), err)
		}
		if _, err := exec.LookPath("man"); err == nil {
			cmd := exec.Command("man", "--warnings", "-l", p)
			cmd.Env = append(os.Environ(), "MANWIDTH=80", "LANG=C")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 || !strings.Contains(string(out), "NAME") {
				t.Errorf("man --warnings -l %s: %v\n%s%s", filepath.Base(p), err, stderr.String(), out)
			}
		}
	}
	for name := range want {
		t.Errorf("no %s", name)
	}
	root := gunzip(t, filepath.Join(dirs[0], "man8", "masterd.8.gz"))
	for _, w := range []string{".SH FILES", "/etc/masterd/cluster.key", ".SH EXIT STATUS", ".SH SEE ALSO"} {
		if !strings.Contains(root, w) {
			t.Errorf("masterd.8 lacks %q", w)
		}
	}
	for name, w := range map[string]string{"masterd": "__start_masterd", "_masterd": "#compdef masterd", "masterd.fish": "complete -c masterd"} {
		b, err := os.ReadFile(filepath.Join(dirs[0], "completions", name))
		if err != nil || !strings.Contains(string(b), w) {
			t.Errorf("completion %s: %v, lacks %q", name, err, w)
		}
	}
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(b)
}
