package agent

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// aliasBomb is the shape of the issue-25 file: one mapping of n unknown keys
// and a peers list of n aliases to it, n*n problems from a file of about
// 14*n bytes (n=1500: 2.25 million problems from 20 KB).
func aliasBomb(n int) string {
	var b strings.Builder
	b.WriteString("a: &a {")
	for i := range n {
		fmt.Fprintf(&b, "k%d: 1, ", i)
	}
	b.WriteString("}\npeers: [")
	for range n {
		b.WriteString("*a, ")
	}
	b.WriteString("]\n")
	return b.String()
}

// nestedBomb is the classic "billion laughs": 10 levels of 10 aliases to
// the level below, 10^10 values from a few hundred bytes.
func nestedBomb() string {
	var b strings.Builder
	b.WriteString("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
	}
	b.WriteString("kubernetes: {apiserverCertSANs: *l10}\n")
	return b.String()
}

func junk(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghij: -[]{}\n\"'&*!|>#,"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func binary(n int) string {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return string(b)
}

// manyErrors has n unknown keys: n problems, none of them an attack.
func manyErrors(n int) string {
	var b strings.Builder
	b.WriteString(validYAML)
	b.WriteString("etcd:\n")
	for i := range n {
		fmt.Fprintf(&b, "  nokey%d: 1\n", i)
	}
	return b.String()
}

// Hostile or broken files are refused with a short, clear error, quickly
// and without much memory. Each is measured through LoadConfig, the
// function `masterd run --check` calls.
func TestHostileConfigsAreRefusedCheaply(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       string // in the error
		unreadable bool   // an *UnreadableError: nothing decoded
		maxLines   int    // of the whole error
	}{
		{"an alias bomb of one wide mapping", aliasBomb(1500), "line 2: aliases expand to more than 10000 values", true, 1},
		{"a nested alias bomb", nestedBomb(), "aliases expand to more than 10000 values", true, 1},
		{"two documents", validYAML + "---\nname: m2\n", "line 9: a second YAML document starts here (---)", true, 1},
		{"2 MB of junk", junk(2 << 20), "config is larger than 64 KiB", true, 1},
		{"binary garbage", binary(64 << 10), "not valid YAML", true, 1},
		{"a syntax error", "name: m1\npeers:\n  - {name: m1, address: 10.0.0.1}\n vip: [\n", "line 3: not valid YAML: did not find expected key", true, 1},
		{"a list of 16,000 empty mappings", "peers: [" + strings.Repeat("{}, ", 16_000) + "]\n", "peers: 16000 items, at most 1000 (line 1)", false, 1},
		{"a thousand unknown keys", manyErrors(1000), "… and 980 more", false, 21},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "masterd.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, decodeErr := DecodeConfig(strings.NewReader(tc.yaml))
			_, loadErr := LoadConfig(path)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes: decode and load in %s, %.1f MiB allocated", len(tc.yaml), elapsed.Round(time.Millisecond), float64(alloc)/(1<<20))
			if decodeErr == nil || loadErr == nil {
				t.Fatalf("accepted: decode %v, load %v", decodeErr, loadErr)
			}
			if !strings.Contains(loadErr.Error(), tc.want) {
				t.Errorf("error lacks %q:\n%v", tc.want, loadErr)
			}
			var ue *UnreadableError
			if got := errors.As(decodeErr, &ue); got != tc.unreadable {
				t.Errorf("errors.As(*UnreadableError) = %v, want %v: %v", got, tc.unreadable, decodeErr)
			}
			if n := strings.Count(decodeErr.Error(), "\n") + 1; n > tc.maxLines {
				t.Errorf("decode error has %d lines, want at most %d:\n%s", n, tc.maxLines, decodeErr)
			}
			if strings.Contains(loadErr.Error(), "yaml: yaml:") {
				t.Errorf("doubled prefix: %v", loadErr)
			}
			if elapsed > time.Second {
				t.Errorf("took %s, want under 1 s", elapsed)
			}
			if alloc > 50<<20 {
				t.Errorf("allocated %.1f MiB, want under 50 MiB", float64(alloc)/(1<<20))
			}
		})
	}
}

func TestSharingATimingsBlockIsNoAliasBomb(t *testing.T) {
	doc := validYAML + "roles:\n  scheduler: &t {leaseDuration: 20s, renewDeadline: 10s, retryPeriod: 2s}\n  controllerManager: *t\n"
	if _, err := DecodeConfig(strings.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
}

func TestExplicitDocumentMarkersAreOneDocument(t *testing.T) {
	if _, err := DecodeConfig(strings.NewReader("---\n" + validYAML + "...\n")); err != nil {
		t.Fatal(err)
	}
}

func TestATrailingDocumentMarkerIsASecondDocument(t *testing.T) {
	_, err := DecodeConfig(strings.NewReader(validYAML + "---\n"))
	var ue *UnreadableError
	if !errors.As(err, &ue) || !strings.Contains(ue.Msg, "second YAML document") {
		t.Fatalf("got %v", err)
	}
}

func TestOnlyCommentsIsNoDocument(t *testing.T) {
	_, err := DecodeConfig(strings.NewReader("# name: m1\n# peers: []\n"))
	var ue *UnreadableError
	if !errors.As(err, &ue) || ue.Msg != "config holds no YAML document (only comments?)" {
		t.Fatalf("got %v", err)
	}
}

func TestAliasToItsOwnContainerIsRefused(t *testing.T) {
	_, err := DecodeConfig(strings.NewReader("peers: &x [*x]\n"))
	if err == nil {
		t.Fatal("accepted")
	}
	t.Log(err)
}
