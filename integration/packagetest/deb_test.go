package packagetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// debArch is the Debian name of the architecture package.sh builds for.
func debArch() string {
	if runtime.GOARCH == "amd64" {
		return "amd64"
	}
	return runtime.GOARCH
}

// expectedFiles is what both packages install, besides the unit file (whose
// directory differs), with the mode each must have.
var expectedFiles = map[string]os.FileMode{
	"/usr/bin/masterd":                                  0o755,
	"/etc/masterd":                                      os.ModeDir | 0o755,
	"/etc/masterd/masterd.yaml":                         0o644,
	"/var/lib/masterd":                                  os.ModeDir | 0o700,
	"/usr/share/doc/masterd/README.md":                  0o644,
	"/usr/share/doc/masterd/masterd-help.txt":           0o644,
	"/usr/share/man/man8/masterd.8.gz":                  0o644,
	"/usr/share/masterd/prometheus/masterd-alerts.yaml": 0o644,
	"/usr/share/masterd/grafana/masterd.json":           0o644,
}

func TestDebControlFields(t *testing.T) {
	need(t, "dpkg-deb")
	b := buildPackages(t, testVersion)
	want := map[string]string{
		"Package":      "masterd",
		"Version":      testVersion + "-1",
		"Architecture": debArch(),
		"Section":      "admin",
		"Priority":     "optional",
		"Homepage":     "https://github.com/masterd/masterd",
	}
	for field, w := range want {
		if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", b.Deb, field)); got != w {
			t.Errorf("control field %s = %q, want %q", field, got, w)
		}
	}
	for _, field := range []string{"Maintainer", "Description"} {
		if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", b.Deb, field)); got == "" {
			t.Errorf("control field %s is empty", field)
		}
	}
	// A static Go binary: no shared library dependencies to declare.
	if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", b.Deb, "Depends")); got != "" {
		t.Errorf("Depends = %q, want none (static binary)", got)
	}
	info := run(t, "dpkg-deb", "-I", b.Deb)
	for _, script := range []string{"postinst", "prerm", "postrm", "conffiles"} {
		if !strings.Contains(info, " "+script+" ") {
			t.Errorf("dpkg-deb -I lists no %s:\n%s", script, info)
		}
	}
}

// debListing parses `dpkg-deb -c`: path (without the leading '.') to mode.
func debListing(t *testing.T, deb string) map[string]os.FileMode {
	t.Helper()
	files := map[string]os.FileMode{}
	for _, line := range strings.Split(run(t, "dpkg-deb", "-c", deb), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		p := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
		if p == "" {
			continue
		}
		files[p] = parsePerms(t, f[0])
	}
	return files
}

// parsePerms turns "drwxr-xr-x" into an os.FileMode (type dir or regular).
func parsePerms(t *testing.T, s string) os.FileMode {
	t.Helper()
	if len(s) != 10 {
		t.Fatalf("bad permission string %q", s)
	}
	var m os.FileMode
	for i, c := range s[1:] {
		if c != '-' {
			m |= 1 << (8 - i)
		}
	}
	if s[0] == 'd' {
		m |= os.ModeDir
	}
	return m
}

func TestDebContents(t *testing.T) {
	need(t, "dpkg-deb")
	b := buildPackages(t, testVersion)
	files := debListing(t, b.Deb)
	want := map[string]os.FileMode{
		"/lib/systemd/system/masterd.service":        0o644,
		"/usr/share/doc/masterd/copyright":           0o644,
		"/usr/share/doc/masterd/changelog.Debian.gz": 0o644,
		"/usr/share/lintian/overrides/masterd":       0o644,
	}
	for p, m := range expectedFiles {
		want[p] = m
	}
	for p, m := range want {
		got, ok := files[p]
		if !ok {
			t.Errorf("deb lacks %s", p)
			continue
		}
		if got != m {
			t.Errorf("deb %s mode %v, want %v", p, got, m)
		}
	}
	if _, ok := files["/usr/lib/systemd/system/masterd.service"]; ok {
		t.Error("deb ships the unit under /usr/lib/systemd/system; Debian's packaged units are in /lib/systemd/system")
	}
	if got := strings.TrimSpace(run(t, "sh", "-c", "dpkg-deb --ctrl-tarfile "+b.Deb+" | tar -xO ./conffiles")); got != "/etc/masterd/masterd.yaml" {
		t.Errorf("conffiles = %q, want only /etc/masterd/masterd.yaml", got)
	}
}

// TestDebPayloadMatchesSources extracts the deb and compares what it ships
// with the repository's files, and runs the packaged binary.
func TestDebPayloadMatchesSources(t *testing.T) {
	need(t, "dpkg-deb")
	b := buildPackages(t, testVersion)
	root := repoRoot(t)
	dir := t.TempDir()
	run(t, "dpkg-deb", "-x", b.Deb, dir)
	control := t.TempDir()
	run(t, "dpkg-deb", "-e", b.Deb, control)

	config := filepath.Join(root, "deploy", "masterd.yaml")
	if _, err := os.Stat(config); err != nil {
		config = filepath.Join(root, "deploy", "masterd.placeholder.yaml")
	}
	same := []struct{ pkg, src string }{
		{filepath.Join(dir, "lib/systemd/system/masterd.service"), filepath.Join(root, "deploy/masterd.service")},
		{filepath.Join(dir, "etc/masterd/masterd.yaml"), config},
		{filepath.Join(dir, "usr/share/masterd/prometheus/masterd-alerts.yaml"), filepath.Join(root, "deploy/prometheus/masterd-alerts.yaml")},
		{filepath.Join(dir, "usr/share/masterd/grafana/masterd.json"), filepath.Join(root, "deploy/grafana/masterd.json")},
		{filepath.Join(control, "postinst"), filepath.Join(root, "deploy/scripts/postinstall.sh")},
		{filepath.Join(control, "prerm"), filepath.Join(root, "deploy/scripts/preremove.sh")},
		{filepath.Join(control, "postrm"), filepath.Join(root, "deploy/scripts/postremove.sh")},
	}
	for _, s := range same {
		got, err := os.ReadFile(s.pkg)
		if err != nil {
			t.Errorf("packaged file: %v", err)
			continue
		}
		want, err := os.ReadFile(s.src)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from %s", strings.TrimPrefix(s.pkg, dir), s.src)
		}
	}

	out, err := exec.Command(filepath.Join(dir, "usr/bin/masterd"), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("packaged masterd version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), testVersion) {
		t.Errorf("packaged masterd version = %q, want it to name %s (-ldflags -X main.version)", out, testVersion)
	}
	help, err := os.ReadFile(filepath.Join(dir, "usr/share/doc/masterd/masterd-help.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(help), "masterd run --help") || !strings.Contains(string(help), "Usage") {
		t.Errorf("masterd-help.txt lacks the --help output:\n%s", help)
	}
	// The man page renders without warnings.
	if _, err := exec.LookPath("man"); err == nil {
		cmd := exec.Command("man", "--warnings", "-l", filepath.Join(dir, "usr/share/man/man8/masterd.8.gz"))
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "LANG=C")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.Contains(string(out), "warning") {
			t.Errorf("man --warnings masterd.8: %v\n%s", err, out)
		}
	}
}

func TestLintianReportsNoErrors(t *testing.T) {
	need(t, "lintian")
	b := buildPackages(t, testVersion)
	cmd := exec.Command("lintian", "--tag-display-limit", "0", b.Deb)
	cmd.Env = append(os.Environ(), "LANG=C")
	out, err := cmd.CombinedOutput()
	var errs, warns []string
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "E: "):
			errs = append(errs, line)
		case strings.HasPrefix(line, "W: "):
			warns = append(warns, line)
		}
	}
	if len(errs) > 0 {
		t.Errorf("lintian errors:\n%s", strings.Join(errs, "\n"))
	}
	if len(warns) > 0 {
		t.Logf("lintian warnings:\n%s", strings.Join(warns, "\n"))
	}
	// lintian exits 1 when it reports errors; anything else is a failure to run.
	if err != nil && len(errs) == 0 {
		t.Errorf("lintian: %v\n%s", err, out)
	}
}
