package vip

import (
	"testing"

	"github.com/masterd/masterd/internal/nslab"
)

// labPrefix names this package's test namespaces (vipt-<pid>-...).
const labPrefix = "vipt"

type (
	lab     = nslab.Lab
	labHost = nslab.Host
)

func newLab(t testing.TB, n int) *lab { t.Helper(); return nslab.New(t, labPrefix, n) }
