package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEveryMutantStillApplies runs `mutants -check` on the election's list:
// a refactor that moves or rewrites a mutated line must update the list,
// or `make mutants` would stop testing that rule without anyone noticing.
func TestEveryMutantStillApplies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go run")
	}
	cmd := exec.Command("go", "run", "./internal/mutants", "-check", "-list", "election/testdata/mutants.txt")
	cmd.Dir = "../.." // the list names files from the repository root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mutants -check: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "DOES NOT APPLY") {
		t.Fatalf("a mutant no longer applies:\n%s", out)
	}
	if !strings.Contains(string(out), "applies") {
		t.Fatalf("no mutant checked:\n%s", out)
	}
}
