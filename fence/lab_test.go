package fence

import (
	"testing"

	"github.com/masterd/masterd/internal/nslab"
)

// labPrefix names this package's test namespaces (fent-<pid>-...).
const labPrefix = "fent"

type (
	lab     = nslab.Lab
	labHost = nslab.Host
)

func newLab(t testing.TB, n int) *lab { t.Helper(); return nslab.New(t, labPrefix, n) }
