package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The daemon links only what it runs: the man page renderer (cobra/doc,
// go-md2man) lives in internal/cmd/gendocs, the packaging and lint tools in
// tools/go.mod.
func TestDaemonLinksNoDocsPackagingOrLintTool(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 || !contains(deps, "github.com/spf13/cobra") {
		t.Fatalf("go list -deps listed %d packages without cobra: not the daemon's graph?", len(deps))
	}
	for _, d := range deps {
		for _, banned := range []string{"github.com/spf13/cobra/doc", "github.com/cpuguy83/go-md2man", "github.com/russross/blackfriday", "github.com/goreleaser/nfpm", "honnef.co/go/tools", "internal/cmd/gendocs"} {
			if strings.HasPrefix(d, banned) || strings.HasSuffix(d, banned) {
				t.Errorf("masterd links %s", d)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
