package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var testBuild = Build{Version: "dev", Revision: "unknown"}

// masterd runs the command line in-process and returns the exit code, stdout
// and stderr.
func masterd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(testBuild, args, &out, &errb)
	return code, out.String(), errb.String()
}

// every command of the tree, groups and leaves, by path without "masterd ".
func everyCommand(c *cobra.Command, prefix []string, f func(path []string, c *cobra.Command)) {
	for _, sub := range c.Commands() {
		if !sub.IsAvailableCommand() {
			continue
		}
		p := append(append([]string{}, prefix...), sub.Name())
		f(p, sub)
		everyCommand(sub, p, f)
	}
}

// `CMD --help`, `help CMD` and `CMD -h` print that command's own help to
// stdout and exit 0, for every command of the tree.
func TestHelpOnEveryLevel(t *testing.T) {
	if code, out, _ := masterd("--help"); code != 0 || !strings.Contains(out, "Commands:") {
		t.Fatalf("masterd --help: code %d, %q", code, out)
	}
	n := 0
	everyCommand(NewRoot(testBuild), nil, func(path []string, c *cobra.Command) {
		n++
		want := "Usage: masterd " + strings.Join(path, " ")
		for _, args := range [][]string{
			append(append([]string{}, path...), "--help"),
			append([]string{"help"}, path...),
			append(append([]string{}, path...), "-h"),
		} {
			code, out, errOut := masterd(args...)
			if code != 0 || !strings.Contains(out, want) || errOut != "" {
				t.Errorf("masterd %s: code %d, stdout %q, stderr %q; want exit 0 and %q on stdout", strings.Join(args, " "), code, out, errOut, want)
			}
		}
	})
	if n < 12 {
		t.Errorf("walked %d commands, want at least 12 (run init status cleanup etcd... version completion)", n)
	}
}

// Usage errors print one short message and the pointer to the command's
// --help on stderr, nothing on stdout, and exit 2.
func TestUsageErrorsGoToStderrAndExitTwo(t *testing.T) {
	for _, c := range []struct {
		args      []string
		want, cmd string
	}{
		{[]string{}, "missing command", "masterd"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, "masterd"},
		{[]string{"run", "--nope"}, "unknown flag: --nope", "masterd run"},
		{[]string{"run", "extra"}, `unexpected argument "extra"`, "masterd run"},
		{[]string{"version", "--short"}, "unknown flag: --short", "masterd version"},
		{[]string{"etcd", "restore"}, "usage: masterd etcd restore FILE", "masterd etcd restore"},
		{[]string{"etcd", "frob"}, `unknown subcommand "frob"`, "masterd etcd"},
		{[]string{"completion", "powershell"}, `unknown subcommand "powershell"`, "masterd completion"},
		{[]string{"help", "frob"}, `unknown command "frob"`, "masterd help"},
		{[]string{"cleanup", "--timeout", "soon"}, `invalid argument "soon"`, "masterd cleanup"},
	} {
		code, out, errOut := masterd(c.args...)
		hint := "Run '" + c.cmd + " --help' for usage.\n"
		if code != ExitUsage || out != "" || !strings.Contains(errOut, c.want) || !strings.HasSuffix(errOut, hint) || strings.Count(errOut, "\n") != 2 {
			t.Errorf("masterd %s: exit %d, stdout %q, stderr %q; want exit 2, stderr %q then %q", strings.Join(c.args, " "), code, out, errOut, c.want, hint)
		}
	}
}

// A configuration that does not load is exit 2 too, for every command that
// reads one; a failure of the command itself is exit 1.
func TestConfigErrorsExitTwoAndFailuresOne(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nowhere.yaml")
	for _, args := range [][]string{
		{"run", "--config", missing},
		{"status", "--config", missing},
		{"cleanup", "--config", missing},
		{"etcd", "members", "--config", missing},
	} {
		code, _, errOut := masterd(args...)
		if code != ExitUsage || !strings.Contains(errOut, missing) {
			t.Errorf("masterd %s: exit %d, %q; want 2 naming %s", strings.Join(args, " "), code, errOut, missing)
		}
	}
	// A second init into the same directory is refused: the command ran
	// and failed.
	dir := t.TempDir()
	if code, _, errOut := masterd("init", "--dir", dir); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	code, _, errOut := masterd("init", "--dir", dir)
	if code != ExitFailure || !strings.HasPrefix(errOut, "masterd init: ") || strings.Contains(errOut, "--help") {
		t.Errorf("second init: exit %d, %q; want 1 and the error", code, errOut)
	}
}

func TestVersionPrintsVersionRevisionAndGo(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if code, out, _ := masterd(args...); code != 0 || !strings.HasPrefix(out, "masterd dev (revision unknown, go1.") {
			t.Errorf("masterd %s: %d %q", args[0], code, out)
		}
	}
}

// version has no flags of its own: its help has no empty Flags section (only
// --help), and no Global Flags.
func TestVersionHelpHasNoEmptyFlagsSection(t *testing.T) {
	_, out, _ := masterd("version", "--help")
	if strings.Contains(out, "Flags:\n\n") || strings.HasSuffix(strings.TrimSpace(out), "Flags:") || strings.Contains(out, "Global Flags") {
		t.Errorf("version --help:\n%s", out)
	}
}

// Every shell's completion script is generated and names the program; the
// completions come from the tree (through the hidden __complete command).
func TestCompletionScriptsAndCompletions(t *testing.T) {
	for sh, want := range map[string]string{"bash": "complete -o default -F __start_masterd masterd", "zsh": "#compdef masterd", "fish": "complete -c masterd"} {
		code, out, errOut := masterd("completion", sh)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, lacks %q (stderr %q)", sh, code, want, errOut)
		}
	}
	code, out, _ := masterd("__complete", "etcd", "")
	for _, want := range []string{"members", "restore", "snapshot", "remove"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("__complete etcd: exit %d, lacks %q:\n%s", code, want, out)
		}
	}
	code, out, _ = masterd("__complete", "run", "--log-level", "")
	if code != 0 || !strings.Contains(out, "debug\ninfo\nwarn\nerror\n") {
		t.Errorf("__complete run --log-level: exit %d:\n%s", code, out)
	}
}

// The flags of a group are read before, between and after the arguments.
func TestEtcdConfigFlagAnywhere(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "nowhere.yaml")
	for _, args := range [][]string{
		{"etcd", "--config", cfg, "members"},
		{"etcd", "members", "--config=" + cfg},
		{"etcd", "snapshot", "--config", cfg, "save", "x.db"},
		{"etcd", "--force", "restore", "x.db", "--config", cfg},
		{"etcd", "restore", "x.db", "--config", cfg, "--force"},
	} {
		if code, _, errOut := masterd(args...); code != ExitUsage || !strings.Contains(errOut, "config: open "+cfg) {
			t.Errorf("masterd %s: exit %d, %q; want the config error naming %s", strings.Join(args, " "), code, errOut, cfg)
		}
	}
	if _, err := os.Stat(cfg); err == nil {
		t.Fatal("the test's missing config exists")
	}
}
