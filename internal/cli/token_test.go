package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/bootstrap"
)

func TestTokenListShowsIDsTTLsAndNeverSecrets(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	printTokens(&b, []bootstrap.TokenInfo{
		{ID: "abcdef", Expires: now.Add(23*time.Hour + 59*time.Minute), Usages: []string{"authentication", "signing"}, Groups: []string{bootstrap.NodeBootstrapGroup}},
		{ID: "ghijkl", Description: "for w1"},
		{ID: "mnopqr", Expires: now.Add(-time.Minute)},
		{ID: "stuvwx", Expires: now.Add(90 * time.Second)},
	}, now)
	want := []string{
		"ID       TTL         EXPIRES                USAGES                   DESCRIPTION   EXTRA GROUPS",
		"abcdef   23h         2026-12-04T11:59:00Z   authentication,signing   <none>        system:bootstrappers:kubeadm:default-node-token",
		"ghijkl   <forever>   <never>                                         for w1        ",
		"mnopqr   <invalid>   2026-12-03T11:59:00Z                            <none>        ",
		"stuvwx   1m          2026-12-03T12:01:30Z                            <none>        ",
	}
	if got := strings.Split(strings.TrimRight(b.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("token list:\n%s\nwant:\n%s", b.String(), strings.Join(want, "\n"))
	}
}

// Bad command lines are usage errors (exit 2) before any file or API is read.
func TestTokenCommandLineErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token"}, "missing subcommand (create, delete, list)"},
		{[]string{"token", "create", "--ttl", "-1h"}, "--ttl -1h0m0s: must not be negative"},
		{[]string{"token", "create", "--ttl", "soon"}, `invalid argument "soon" for "--ttl"`},
		{[]string{"token", "create", "--print-join-command", "--bootstrap-kubeconfig"}, "exclude each other"},
		{[]string{"token", "delete"}, "usage: masterd token delete ID"},
		{[]string{"token", "list", "extra"}, `unexpected argument "extra"`},
	} {
		code, out, errOut := masterd(tc.args...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("masterd %s: exit %d, stdout %q, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, out, errOut, ExitUsage, tc.want)
		}
	}
	code, _, errOut := masterd("token", "list", "--config", "/nonexistent/masterd.yaml")
	if code != ExitUsage || !strings.Contains(errOut, "/nonexistent/masterd.yaml") {
		t.Errorf("token list with a missing config: exit %d, %q", code, errOut)
	}
}

// On a host where masterd never ran there are no admin credentials: the
// command fails (exit 1) and says where it looked.
func TestTokenCommandsWithoutAdminCredentials(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "masterd.yaml")
	text := "name: m1\naddress: 10.10.0.1\npeers:\n  - {name: m1, address: 10.10.0.1}\ndataDir: " + dir + "/data\nvip:\n  enabled: true\n  address: 10.10.0.100\n"
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"token", "list"}, {"token", "create"}, {"token", "delete", "abcdef"}} {
		code, out, errOut := masterd(append(args, "--config", config)...)
		if code != 1 || out != "" || !strings.Contains(errOut, "admin credentials: stat "+dir+"/data/pki/admin.conf") {
			t.Errorf("masterd %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
	}
}
