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
// clear line on stderr and exit 2, with no noise from validating the defaults
// it left behind.
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
			if want := "masterd run: config " + path + ": " + tc.want + "\n"; errb.String() != want {
				t.Errorf("stderr %q, want %q", errb.String(), want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
		})
	}
}
