package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/masterd/masterd/internal/cli"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// section is the manual section: masterd is a system administration command
// (a daemon and the tools to run it), so 8, as Debian policy places them.
const section = "8"

// files is the FILES section of masterd(8).
const files = `.SH FILES
.TP
.I /etc/masterd/masterd.yaml
configuration (kept on upgrade)
.TP
.I /etc/masterd/cluster.key
the cluster secret, made by \fBmasterd init\fR
.TP
.I /var/lib/masterd
etcd data, snapshots and generated certificates
.SH EXIT STATUS
0 success; 1 the command failed; 2 bad command line or bad configuration.
`

func main() {
	out := flag.String("out", "", "output `directory` (man8/ and completions/ are made in it)")
	version := flag.String("version", "dev", "masterd `version` named in the pages")
	date := flag.String("date", "", "page `date`, YYYY-MM-DD (default: SOURCE_DATE_EPOCH, else today)")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: gendocs -out DIR [-version V] [-date YYYY-MM-DD]")
		os.Exit(2)
	}
	var when *time.Time
	if *date != "" {
		t, err := time.Parse(time.DateOnly, *date)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gendocs: -date %q: want YYYY-MM-DD\n", *date)
			os.Exit(2)
		}
		when = &t
	}
	if err := generate(*out, cli.Build{Version: *version}, when); err != nil {
		fmt.Fprintf(os.Stderr, "gendocs: %v\n", err)
		os.Exit(1)
	}
}

// generate writes the man pages and the completion scripts under dir.
func generate(dir string, b cli.Build, date *time.Time) error {
	root := cli.NewRoot(b)
	manDir := filepath.Join(dir, "man"+section)
	compDir := filepath.Join(dir, "completions")
	for _, d := range []string{manDir, compDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	header := doc.GenManHeader{Section: section, Date: date, Source: "masterd " + b.Version, Manual: "masterd manual"}
	if err := manPages(root, header, manDir); err != nil {
		return err
	}
	return completions(root, compDir)
}

// manPages writes one gzipped page per available command of the tree.
func manPages(cmd *cobra.Command, header doc.GenManHeader, dir string) error {
	cmd.DisableAutoGenTag = true
	var page bytes.Buffer
	h := header // GenMan fills in the title: each page its own
	if err := doc.GenMan(cmd, &h, &page); err != nil {
		return fmt.Errorf("man page of %s: %w", cmd.CommandPath(), err)
	}
	text := page.Bytes()
	if !cmd.HasParent() {
		text = withFiles(text)
	}
	name := strings.ReplaceAll(cmd.CommandPath(), " ", "-") + "." + section + ".gz"
	if err := writeGzip(filepath.Join(dir, name), text); err != nil {
		return err
	}
	for _, sub := range cmd.Commands() {
		if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
			continue
		}
		if err := manPages(sub, header, dir); err != nil {
			return err
		}
	}
	return nil
}

// withFiles inserts the FILES and EXIT STATUS sections before SEE ALSO (or
// at the end).
func withFiles(page []byte) []byte {
	s := string(page)
	if i := strings.Index(s, ".SH SEE ALSO"); i >= 0 {
		return []byte(s[:i] + files + s[i:])
	}
	return []byte(s + files)
}

// writeGzip writes b gzipped at the best compression (what lintian checks),
// with no name or time in the header.
func writeGzip(path string, b []byte) error {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(b); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// completions writes the bash, zsh and fish scripts under the names each
// shell loads them by.
func completions(root *cobra.Command, dir string) error {
	gens := []struct {
		name string
		gen  func(*bytes.Buffer) error
	}{
		{"masterd", func(w *bytes.Buffer) error { return root.GenBashCompletionV2(w, true) }},
		{"_masterd", func(w *bytes.Buffer) error { return root.GenZshCompletion(w) }},
		{"masterd.fish", func(w *bytes.Buffer) error { return root.GenFishCompletion(w, true) }},
	}
	var errs []error
	for _, g := range gens {
		var buf bytes.Buffer
		if err := g.gen(&buf); err != nil {
			errs = append(errs, fmt.Errorf("completion %s: %w", g.name, err))
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, g.name), buf.Bytes(), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
