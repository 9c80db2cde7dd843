package packagetest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the repository root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "deploy", "package.sh")); err != nil {
		t.Fatalf("deploy/package.sh not found under %s: %v", root, err)
	}
	return root
}

// built is what one run of deploy/package.sh produced.
type built struct {
	Version string
	Deb     string
	RPM     string
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]built{}
	buildDir   string
)

// testVersion is the version of the packages most tests inspect; upgrade
// tests build a higher one. Fixed, so assertions can name the files.
const (
	testVersion      = "0.0.0~test1"
	testVersionNewer = "0.0.0~test2"
)

// buildPackages runs deploy/package.sh for version (once per test binary and
// version) and returns the .deb and .rpm paths.
func buildPackages(t *testing.T, version string) built {
	t.Helper()
	need(t, "go")
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := buildCache[version]; ok {
		return b
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "packagetest-dist-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	dist := filepath.Join(buildDir, strings.NewReplacer("~", "_", "+", "_").Replace(version))
	cmd := exec.Command(filepath.Join(repoRoot(t), "deploy", "package.sh"))
	cmd.Env = append(os.Environ(), "VERSION="+version, "DIST="+dist)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("deploy/package.sh VERSION=%s: %v\n%s", version, err, stderr.String())
	}
	var b built
	b.Version = version
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case strings.HasSuffix(line, ".deb"):
			b.Deb = line
		case strings.HasSuffix(line, ".rpm"):
			b.RPM = line
		}
	}
	if b.Deb == "" || b.RPM == "" {
		t.Fatalf("deploy/package.sh printed no .deb and .rpm paths:\n%s\n%s", out, stderr.String())
	}
	buildCache[version] = b
	return b
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// need skips the test when a tool is not installed.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (the Makefile's install list has it: apt-get install -y lintian rpm prometheus)", tool)
		}
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (lab hosts, rpm --root installs)")
	}
}

// run runs a command and returns its stdout; it fails the test on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LANG=C", "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}
