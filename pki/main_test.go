package pki

import (
	"flag"
	"os"
	"testing"
)

// fuzzMinimizeTime is this package's default for -fuzzminimizetime. Go
// minimizes every new fuzz input for up to 60 s by default, trying
// O(len²) removals; a cluster secret is 3-5 KB, so each new input held a
// worker for the whole 60 s while it reported no executions. One second
// still trims most of an input; pass -fuzzminimizetime to override.
const fuzzMinimizeTime = "1s"

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", fuzzMinimizeTime); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
