package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A file that cannot be decoded at all (an alias bomb, a syntax error) is one
// clear error line on stdout (then the count) and exit 2, with no noise from
// validating the defaults it left behind.
func TestCheckReportsAnUnreadableFileOnOneLine(t *testing.T) {
	// One mapping of 1500 keys and a list of 1500 aliases to it: 2.25
	// million values from 20 KB.
	var b strings.Builder
	b.WriteString("a: &a {")
	for i := range 1500 {
		fmt.Fprintf(&b, "k%d: 1, ", i)
	}
	b.WriteString("}\npeers: [" + strings.Repeat("*a, ", 1500) + "]\n")
	for _, tc := range []struct{ name, yaml, want string }{
		{"an alias bomb", b.String(), "line 2: aliases expand to more than 10000 values (an alias bomb?)"},
		{"a syntax error", "name: m1\npeers:\n  - {name: m1, address: 10.0.0.1}\n vip: [\n", "line 3: not valid YAML: did not find expected key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := Main(testBuild, []string{"run", "--check", "--config", path}, &out, &errb)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			want := "error: " + path + ": " + tc.want + " (fix: correct the file"
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], want) || lines[1] != path+": 1 error, 0 warnings" {
				t.Errorf("stdout %q, want one line starting %q and the count", out.String(), want)
			}
			if errb.Len() != 0 {
				t.Errorf("stderr %q, want nothing", errb.String())
			}
		})
	}
}

// checkHost writes a configuration for this host (loopback addresses, no
// VIP, no Kubernetes) with peers and a real cluster key, and returns its path.
func checkHost(t *testing.T, peers string) string {
	t.Helper()
	dir := t.TempDir()
	if code, _, errOut := masterd("init", "--dir", dir); code != 0 {
		t.Fatalf("init: %s", errOut)
	}
	path := filepath.Join(dir, "masterd.yaml")
	cfg := "name: m1\npeers: [" + peers + "]\nclusterKeyFile: " + dir + "/cluster.key\ndataDir: " + dir + "/data\n" +
		"vip: {enabled: false}\nkubernetes: {mode: none}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A configuration fit for this host passes with the ok line; a warning (an
// even number of masters) is printed after it and still exits 0.
func TestCheckPassesAndPrintsWarningsAfterTheOkLine(t *testing.T) {
	path := checkHost(t, "{name: m1, address: 127.0.0.1}")
	code, out, errOut := masterd("run", "--check", "--config", path)
	if code != 0 || out != path+": ok (node m1, 1 peers)\n" || errOut != "" {
		t.Errorf("one master: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	path = checkHost(t, "{name: m1, address: 127.0.0.1}, {name: m2, address: 127.0.0.2}")
	code, out, errOut = masterd("run", "--check", "--config", path)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 2 || lines[0] != path+": ok (node m1, 2 peers), 1 warning" ||
		!strings.HasPrefix(lines[1], "warning: peers: 2 masters") || !strings.Contains(lines[1], "(fix: ") || errOut != "" {
		t.Errorf("two masters: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// Every mistake is reported at once, each with its key, line and fix, errors
// before warnings, on stdout; exit 2.
func TestCheckReportsEveryMistakeAndExitsTwo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(`name: m1
peers:
  - {name: m1, address: 10.0.0.1}
  - {name: m2, address: 10.0.0.300}
etcd: {clientPort: "abc"}
vip: {address: 10.0.0.100, adress: 1}
`), 0o644)
	code, out, errOut := masterd("run", "--check", "--config", path)
	if code != ExitUsage || errOut != "" {
		t.Fatalf("exit %d, want 2; stderr %q", code, errOut)
	}
	for _, want := range []string{
		`error: peers[1].address: "10.0.0.300" is not an IP address (fix: correct peers[1].address at line 4 of ` + path + `)`,
		`error: etcd.clientPort: "abc" is not an integer (fix: correct etcd.clientPort at line 5 of ` + path + `)`,
		`error: vip.adress: unknown key (fix: correct vip.adress at line 6 of ` + path + `)`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if seenWarning := strings.Index(out, "warning: "); seenWarning >= 0 && strings.LastIndex(out, "error: ") > seenWarning {
		t.Errorf("an error after a warning:\n%s", out)
	}
	if !strings.HasSuffix(out, " warnings\n") && !strings.HasSuffix(out, " warning\n") {
		t.Errorf("no count line at the end:\n%s", out)
	}
}

// The shipped example is a correct file: on a machine that is not its
// master, --check names only what this host lacks (its address, the
// cluster key, the kube binaries), no key of the file itself.
func TestCheckOfTheShippedExampleNamesOnlyThisHost(t *testing.T) {
	code, out, _ := masterd("run", "--check", "--config", "../../deploy/masterd.yaml")
	if code == 0 {
		return // this machine is master-1, with everything installed
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "error: ") && !strings.Contains(line, "this host") &&
			!strings.HasPrefix(line, "error: clusterKeyFile: ") && !strings.HasPrefix(line, "error: kubernetes.binDir: ") {
			t.Errorf("a problem of the file itself: %s", line)
		}
	}
}
