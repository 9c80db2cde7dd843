package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// mutant is one entry of the list.
type mutant struct {
	name, file, old, new string
	equivalent           bool
	line                 int // where the block starts in the list
}

func main() {
	list := flag.String("list", "election/testdata/mutants.txt", "mutation list")
	pkg := flag.String("pkg", "./election", "package whose tests must kill the mutants")
	run := flag.String("run", "", "go test -run pattern (default: every test)")
	args := flag.String("args", "-sim.runs=3000", "extra arguments for the test binary")
	timeout := flag.Duration("timeout", 10*time.Minute, "go test -timeout per mutant")
	check := flag.Bool("check", false, "only check that every mutation applies")
	flag.Parse()

	ms, err := parse(*list)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutants:", err)
		os.Exit(2)
	}
	tmp, err := os.MkdirTemp("", "mutants-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutants:", err)
		os.Exit(2)
	}
	defer os.RemoveAll(tmp)

	var killed, survived, equivalent, broken int
	for i, m := range ms {
		overlay, err := prepare(tmp, i, m)
		if err != nil {
			fmt.Printf("%-58s  DOES NOT APPLY: %v\n", m.name, err)
			broken++
			continue
		}
		if m.equivalent {
			fmt.Printf("%-58s  equivalent (see the list's notes)\n", m.name)
			equivalent++
			continue
		}
		if *check {
			fmt.Printf("%-58s  applies\n", m.name)
			continue
		}
		start := time.Now()
		cmd := exec.Command("go", "test", "-count=1", "-overlay", overlay, "-timeout", timeout.String(), *pkg)
		if *run != "" {
			cmd.Args = append(cmd.Args, "-run", *run)
		}
		if *args != "" {
			cmd.Args = append(cmd.Args, strings.Fields(*args)...)
		}
		out, err := cmd.CombinedOutput()
		took := time.Since(start).Round(time.Second)
		var ee *exec.ExitError
		switch {
		case err == nil:
			fmt.Printf("%-58s  SURVIVED (%v)\n", m.name, took)
			survived++
		case errors.As(err, &ee) && !strings.Contains(string(out), "[build failed]") && !strings.Contains(string(out), "[setup failed]"):
			fmt.Printf("%-58s  killed by %s (%v)\n", m.name, firstFailure(string(out)), took)
			killed++
		default:
			fmt.Printf("%-58s  DOES NOT BUILD: %s\n", m.name, firstLine(string(out)))
			broken++
		}
	}
	if *check {
		if broken > 0 {
			os.Exit(1)
		}
		return
	}
	fmt.Printf("mutants: %d killed, %d survived, %d equivalent\n", killed, survived, equivalent)
	if broken > 0 {
		fmt.Printf("mutants: %d did not apply or build\n", broken)
	}
	if survived > 0 || broken > 0 {
		os.Exit(1)
	}
}

// prepare writes the mutated file and an overlay naming it, and returns the
// overlay's path.
func prepare(tmp string, i int, m mutant) (string, error) {
	src, err := os.ReadFile(m.file)
	if err != nil {
		return "", err
	}
	if n := strings.Count(string(src), m.old); n != 1 {
		return "", fmt.Errorf("%s: old snippet found %d times, want exactly once (list line %d)", m.file, n, m.line)
	}
	mutated := strings.Replace(string(src), m.old, m.new, 1)
	abs, err := filepath.Abs(m.file)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(tmp, fmt.Sprintf("m%d-%s", i, filepath.Base(m.file)))
	if err := os.WriteFile(dst, []byte(mutated), 0o644); err != nil {
		return "", err
	}
	b, err := json.Marshal(map[string]map[string]string{"Replace": {abs: dst}})
	if err != nil {
		return "", err
	}
	ov := filepath.Join(tmp, fmt.Sprintf("m%d.json", i))
	return ov, os.WriteFile(ov, b, 0o644)
}

func parse(path string) ([]mutant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		out []mutant
		cur *mutant
	)
	flush := func() error {
		if cur == nil {
			return nil
		}
		if cur.name == "" || cur.file == "" || cur.old == "" {
			return fmt.Errorf("%s:%d: a mutation needs name, file and old", path, cur.line)
		}
		out = append(out, *cur)
		cur = nil
		return nil
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want key: value, got %q", path, n, line)
		}
		if cur == nil {
			cur = &mutant{line: n}
		}
		val = strings.TrimPrefix(val, " ")
		unescape := strings.NewReplacer(`\n`, "\n", `\t`, "\t").Replace
		switch key {
		case "name":
			cur.name = val
		case "file":
			cur.file = val
		case "old":
			cur.old = unescape(val)
		case "new":
			cur.new = unescape(val)
		case "equivalent":
			cur.equivalent = val == "yes"
		default:
			return nil, fmt.Errorf("%s:%d: unknown key %q", path, n, key)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no mutations", path)
	}
	return out, nil
}

func firstFailure(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "--- FAIL: ") {
			return strings.Fields(strings.TrimPrefix(t, "--- FAIL: "))[0]
		}
	}
	if strings.Contains(out, "panic:") {
		return "a panic"
	}
	return "a failure"
}

func firstLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			return t
		}
	}
	return ""
}
