package packagetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPackageVersionFromGit clones the repository and checks the versions
// deploy/package.sh derives from `git describe` as history moves on: each
// has the expected shape, and dpkg and rpm both order them as the history
// goes (untagged < tag < commits after the tag < dirty tree).
func TestPackageVersionFromGit(t *testing.T) {
	need(t, "git", "dpkg", "rpm")
	dir := filepath.Join(t.TempDir(), "repo")
	run(t, "git", "clone", "--quiet", repoRoot(t), dir)
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	version := func() string {
		t.Helper()
		cmd := exec.Command(filepath.Join(dir, "deploy", "package.sh"), "--version")
		cmd.Dir = dir
		cmd.Env = os.Environ()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("package.sh --version: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	// A clone may carry the origin's tags; start from a tagless history.
	if tags := run(t, "git", "-C", dir, "tag", "--list"); strings.TrimSpace(tags) != "" {
		for _, tag := range strings.Fields(tags) {
			git("tag", "-d", tag)
		}
	}

	steps := []struct {
		name  string
		do    func()
		shape string
	}{
		{"untagged", func() {}, `^0\.0\.0~git[0-9]+\.g[0-9a-f]+$`},
		{"tagged", func() { git("tag", "-a", "v1.2.0", "-m", "release") }, `^1\.2\.0$`},
		{"after the tag", func() { git("commit", "--quiet", "--allow-empty", "-m", "next") }, `^1\.2\.0\+git1\.g[0-9a-f]+$`},
		{"dirty", func() {
			f, err := os.OpenFile(filepath.Join(dir, "go.mod"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("\n")
			f.Close()
		}, `^1\.2\.0\+git1\.g[0-9a-f]+\.dirty$`},
	}
	var prev string
	for _, s := range steps {
		s.do()
		v := version()
		if !regexp.MustCompile(s.shape).MatchString(v) {
			t.Errorf("%s: version %q, want %s", s.name, v, s.shape)
		}
		if prev != "" {
			if err := exec.Command("dpkg", "--compare-versions", v, "gt", prev).Run(); err != nil {
				t.Errorf("%s: dpkg does not order %s after %s", s.name, v, prev)
			}
			out := run(t, "rpm", "--eval", `%{lua: print(rpm.vercmp("`+v+`", "`+prev+`"))}`)
			if strings.TrimSpace(out) != "1" {
				t.Errorf("%s: rpm does not order %s after %s (vercmp %s)", s.name, v, prev, strings.TrimSpace(out))
			}
		}
		prev = v
	}
}
