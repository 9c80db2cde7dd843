package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostileMaxRSS bounds the memory masterd run --check may take on any
// configuration file (issue 25: under 50 MB).
const hostileMaxRSS = 50 << 20

// checkConfig runs masterd run --check --config path as a user does and
// returns its output, its exit code, how long it ran and its peak RSS in
// bytes (wait4's ru_maxrss, in KiB on Linux). The figure is an upper bound:
// Go starts the child with vfork (CLONE_VM) and Linux carries the shared
// memory's high-water mark, this test process's, into the child's at exec;
// the test keeps its own RSS small and logs it.
func checkConfig(t *testing.T, bin, path string) (out string, code int, took time.Duration, rss int64) {
	t.Helper()
	var b bytes.Buffer
	cmd := exec.Command(bin, "run", "--check", "--config", path)
	cmd.Stdout, cmd.Stderr = &b, &b
	t0 := time.Now()
	err := cmd.Run()
	took = time.Since(t0)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("masterd run --check: %v", err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatalf("no rusage for masterd run --check: %T", cmd.ProcessState.SysUsage())
	}
	return b.String(), cmd.ProcessState.ExitCode(), took, ru.Maxrss << 10
}

// aliasBombYAML is a billion laughs: nine levels of ten aliases, 10^9
// values once expanded, in 0.5 KiB.
func aliasBombYAML() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 8; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", ")
		fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, refs)
	}
	return b.String()
}

// Configuration files of hostile shape given to masterd run --check as
// users run it: an alias bomb, two documents, 2 MB of junk, binary
// garbage (random bytes, and an executable given by mistake), and the
// largest junk the decoder reads. Each is refused with exit 2 and one line
// naming the file and what is wrong, in under 50 MB of memory; the time
// each took is logged (issue 25's figure: within 1 s).
func TestHostileConfigFilesAreRefusedAsUsersRunCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(25, 25))
	junk := func(n int) []byte {
		const alphabet = "abcdefghij:- {}[],\"'\n"
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return b
	}
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	// An executable's first MiB: reading all of it would raise this
	// process's RSS, which the child's figure includes (checkConfig).
	elf := make([]byte, 1<<20)
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadFull(f, elf)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// A config this host passes (a real cluster key from masterd init), so
	// the one bad key below is the only problem.
	if out, err := exec.Command(bin, "init", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("masterd init: %v: %s", err, out)
	}
	valid := "name: m1\npeers: [{name: m1, address: 127.0.0.1}]\nvip: {enabled: false}\nkubernetes: {mode: none}\n" +
		"clusterKeyFile: " + filepath.Join(dir, "cluster.key") + "\ndataDir: " + filepath.Join(dir, "data") + "\n"
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"an alias bomb", []byte(aliasBombYAML()), "aliases expand to more than 10000 values (an alias bomb?)"},
		{"two documents", []byte(valid + "---\nname: m2\n"), "a second YAML document starts here (---); the config must be one document"},
		{"2 MB of junk", junk(2 << 20), "config is larger than 64 KiB; is this the right file?"},
		{"250 KiB of junk", junk(250 << 10), "config is larger than 64 KiB; is this the right file?"},
		{"60 KiB of junk", junk(60 << 10), "not valid YAML"},
		// The costliest valid YAML per byte: a flow sequence of tiny values.
		{"a flow sequence of 30,000 items", []byte(valid + "priority: [" + strings.Repeat("1,", 30000) + "1]\n"), "priority: must be"},
		{"a 60 KiB scalar", []byte(valid + "priority: " + strings.Repeat("x", 60<<10) + "\n"), "... (61440 bytes) is not"},
		{"binary garbage", garbage, "not valid YAML"},
		{"an executable", elf, "config is larger than 64 KiB; is this the right file?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			out, code, took, rss := checkConfig(t, bin, path)
			t.Logf("%d bytes: exit %d in %s, max RSS %.1f MiB: %s", len(tc.data), code, took.Round(time.Millisecond), float64(rss)/(1<<20), strings.TrimSpace(out))
			if code != exitBadConfig {
				t.Errorf("exit %d, want %d", code, exitBadConfig)
			}
			if !strings.Contains(out, path) || !strings.Contains(out, tc.want) {
				t.Errorf("output %q lacks the file's name or %q", out, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n > 2 {
				t.Errorf("%d lines, want the problem and the count:\n%s", n, out)
			}
			var self syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err == nil {
				t.Logf("this test process: max RSS %.1f MiB", float64(self.Maxrss<<10)/(1<<20))
			}
			if rss >= hostileMaxRSS {
				t.Errorf("max RSS %d bytes, want under %d", rss, hostileMaxRSS)
			}
		})
	}
}

// kubernetes.encryption.keys and kubernetes.audit.path of a shape
// kube-apiserver would refuse are reported by run --check, under their
// keys, before masterd ever starts.
func TestRunCheckNamesBadEncryptionKeysAndAuditPath(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "masterd.yaml")
	cfg := "name: m1\npeers: [{name: m1, address: 127.0.0.1}]\nclusterKeyFile: " + dir + "/cluster.key\ndataDir: " + dir + "/data\n" +
		"vip: {enabled: false}\nkubernetes:\n  binDir: /usr/local/bin\n  encryption: {keys: [2, 0, 2]}\n  audit: {path: audit.log}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code, _, _ := checkConfig(t, bin, path)
	if code != exitBadConfig {
		t.Errorf("exit %d, want %d:\n%s", code, exitBadConfig, out)
	}
	for _, want := range []string{
		"kubernetes.encryption.keys[1]: 0 is outside 1..1048576",
		"kubernetes.encryption.keys[2]: generation 2 is also kubernetes.encryption.keys[0]",
		`kubernetes.audit.path: "audit.log" must be an absolute path`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("run --check lacks %q:\n%s", want, out)
		}
	}
}
