package sched

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseAutogroup(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"/autogroup-6771 nice 0\n", 0, true},
		{"/autogroup-1 nice -10\n", -10, true},
		{"/autogroup-1 nice 19", 19, true},
		{"/autogroup-1 nice 20\n", 0, false},
		{"/autogroup-1 nice x\n", 0, false},
		{"garbage\n", 0, false},
		{"", 0, false},
	} {
		got, err := parseAutogroup(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseAutogroup(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParseAutogroup(f *testing.F) {
	f.Add("/autogroup-1 nice -10\n")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseAutogroup(s)
		if err == nil && (n < -20 || n > 19) {
			t.Fatalf("parseAutogroup(%q) = %d without error", s, n)
		}
	})
}

// TestNiceMatchesTheKernel runs this test binary under nice(1) and checks
// that Nice reports the value nice set (getpriority's raw return is 20-nice).
func TestNiceMatchesTheKernel(t *testing.T) {
	if os.Getenv("SCHED_NICE_CHILD") != "" {
		n, err := Nice()
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("nice=" + strconv.Itoa(n) + "\n")
		return
	}
	if _, err := exec.LookPath("nice"); err != nil {
		t.Skip("nice(1) not installed")
	}
	cmd := exec.Command("nice", "-n", "7", os.Args[0], "-test.run=^TestNiceMatchesTheKernel$")
	cmd.Env = append(os.Environ(), "SCHED_NICE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := 7
	if own, err := Nice(); err == nil {
		want = min(own+7, 19)
	}
	if !strings.Contains(string(out), "nice="+strconv.Itoa(want)+"\n") {
		t.Fatalf("child under nice -n 7 reported %q, want nice=%d", out, want)
	}
}

// TestMatchAutogroupInANewSession starts a child in a new session (its own
// autogroup, as systemd does for a service) at nice -5 and checks that
// MatchAutogroup gives that autogroup nice -5, as the kernel reports it.
func TestMatchAutogroupInANewSession(t *testing.T) {
	if os.Getenv("SCHED_MATCH_CHILD") != "" {
		r, err := MatchAutogroup()
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("skipped=" + r.Skipped + "\nafter=" + strconv.Itoa(r.After) + "\n")
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: lowering a nice value below 0 needs CAP_SYS_NICE")
	}
	if b, err := os.ReadFile(enabledPath); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Skip("autogroup scheduling is off or absent on this kernel (" + enabledPath + ")")
	}
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid(1) not installed")
	}
	cmd := exec.Command("setsid", "--wait", "nice", "-n", "-5", os.Args[0], "-test.run=^TestMatchAutogroupInANewSession$")
	cmd.Env = append(os.Environ(), "SCHED_MATCH_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "skipped=\nafter=-5\n") {
		t.Fatalf("child at nice -5 in its own session: %q, want its autogroup at nice -5", out)
	}
	// The parent's own autogroup is untouched.
	if n, err := AutogroupNice(); err == nil && n == -5 {
		t.Errorf("the test's own autogroup changed to %d", n)
	}
}

// TestMatchAutogroupSkipsWithoutAutogroup points the package at a kernel
// without autogroup scheduling.
func TestMatchAutogroupSkipsWithoutAutogroup(t *testing.T) {
	dir := t.TempDir()
	oldA, oldE := autogroupPath, enabledPath
	t.Cleanup(func() { autogroupPath, enabledPath = oldA, oldE })
	autogroupPath, enabledPath = filepath.Join(dir, "autogroup"), filepath.Join(dir, "enabled")
	r, err := MatchAutogroup()
	if err != nil || r.Skipped == "" {
		t.Fatalf("no autogroup files: %+v, %v; want skipped, no error", r, err)
	}
	if err := os.WriteFile(enabledPath, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = MatchAutogroup()
	if err != nil || r.Skipped != "the kernel has no autogroup scheduling" {
		t.Fatalf("enabled but no %s: %+v, %v", autogroupPath, r, err)
	}
}
