package packagetest

import (
	"strings"
	"testing"
)

// manPages are the pages the package must install: the command, the daemon
// and each command group an operator looks up first.
var manPages = []string{"masterd", "masterd-run", "masterd-init", "masterd-status", "masterd-cleanup", "masterd-etcd", "masterd-etcd-restore", "masterd-version", "masterd-completion"}

// The deb, installed with dpkg on a lab host, puts one manual page per
// command in man8 that man renders (its .TH names the command), and
// completion scripts for bash, zsh and fish where each shell looks; the bash
// one loads, registers masterd and completes through the installed binary
// (subcommands, then a flag's values).
func TestDebInstallsManPagesAndCompletions(t *testing.T) {
	need(t, "dpkg-deb")
	b := buildPackages(t, testVersion)
	ctx := labCtx(t)
	h := bootLab(t, ctx, "cli")
	copyIn(t, h, b.Deb, "/var/tmp/masterd.deb", 0o644)
	labExec(t, ctx, h, "dpkg", "-i", "/var/tmp/masterd.deb")

	listed := labExec(t, ctx, h, "dpkg", "-L", "masterd")
	for _, p := range manPages {
		path := "/usr/share/man/man8/" + p + ".8.gz"
		if !strings.Contains(listed, path+"\n") {
			t.Errorf("dpkg -L masterd lacks %s", path)
			continue
		}
		th := labExec(t, ctx, h, "sh", "-c", "zcat "+path+" | grep '^\\.TH '")
		if want := `.TH "` + strings.ToUpper(p) + `" "8"`; !strings.HasPrefix(th, want) {
			t.Errorf("%s: .TH line %q, want it to start %q", path, th, want)
		}
		// man renders it, without a warning (stderr is kept apart).
		out, err := labTry(ctx, h, "sh", "-c", "MANWIDTH=80 LANG=C man --warnings -l "+path+" 2>/tmp/man.err; cat /tmp/man.err >&2; test ! -s /tmp/man.err")
		if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, p) {
			t.Errorf("man -l %s: %v\n%s", path, err, out)
		}
	}
	out := labExec(t, ctx, h, "sh", "-c", "MANWIDTH=1000 LANG=C man -l /usr/share/man/man8/masterd.8.gz")
	for _, want := range []string{"FILES", "/etc/masterd/cluster.key", "EXIT STATUS", "masterd-etcd(8)"} {
		if !strings.Contains(out, want) {
			t.Errorf("masterd(8) lacks %q:\n%s", want, out)
		}
	}

	for path, want := range map[string]string{
		"/usr/share/bash-completion/completions/masterd":    "__start_masterd",
		"/usr/share/zsh/vendor-completions/_masterd":        "#compdef masterd",
		"/usr/share/fish/vendor_completions.d/masterd.fish": "complete -c masterd",
	} {
		if !strings.Contains(listed, path+"\n") {
			t.Errorf("dpkg -L masterd lacks %s", path)
			continue
		}
		if got := labExec(t, ctx, h, "cat", path); !strings.Contains(got, want) {
			t.Errorf("%s lacks %q", path, want)
		}
	}
	const bashComp = "/usr/share/bash-completion/completions/masterd"
	if got := labExec(t, ctx, h, "bash", "-c", "source "+bashComp+" && complete -p masterd"); !strings.Contains(got, "-F __start_masterd masterd") {
		t.Errorf("bash: complete -p masterd = %q", got)
	}
	// The function completes through the installed /usr/bin/masterd
	// (masterd __complete ...), with bash-completion loaded as in an
	// interactive shell (it provides _get_comp_words_by_ref).
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := labTry(ctx, h, "test", "-f", bashCompletion); err != nil {
		t.Fatalf("no %s: install bash-completion (apt-get install -y bash-completion) to test the completions", bashCompletion)
	}
	for words, want := range map[string][]string{
		"masterd et":               {"etcd"},
		"masterd etcd ":            {"members", "restore", "snapshot", "remove"},
		"masterd run --log-level ": {"debug", "info", "warn", "error"},
		"masterd completion ":      {"bash", "fish", "zsh"},
	} {
		script := "source " + bashCompletion + "\nsource " + bashComp + "\nCOMP_LINE='" + words + "'; COMP_POINT=${#COMP_LINE}\n" +
			"read -ra COMP_WORDS <<<\"$COMP_LINE\"; [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')\n" +
			"COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n__start_masterd masterd 2>/dev/null # compopt: not in a real completion\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		got := labExec(t, ctx, h, "bash", "-c", script)
		for _, w := range want {
			if !strings.Contains("\n"+got, "\n"+w) {
				t.Errorf("bash completion of %q: %q lacks %s", words, got, w)
			}
		}
	}
}
