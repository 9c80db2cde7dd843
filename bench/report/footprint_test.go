package report

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func footprintSample() []Footprint {
	const mb = 1 << 20
	return []Footprint{
		{Stack: "masterd", Component: "masterd", Host: "m2", RSS: 60 * mb, CPU: 20 * time.Millisecond},
		{Stack: "masterd", Component: "masterd", Host: "m1", RSS: 50 * mb, CPU: 10 * time.Millisecond},
		{Stack: "classic", Component: "etcd", Host: "m1", RSS: 40 * mb, CPU: 15 * time.Millisecond},
		{Stack: "classic", Component: "haproxy", Host: "m1", RSS: 20 * mb, CPU: 5 * time.Millisecond},
		{Stack: "classic", Component: "etcd", Host: "m2", RSS: 42 * mb, CPU: 17 * time.Millisecond},
		{Stack: "classic", Component: "haproxy", Host: "m2", Err: "unit bench-haproxy has no processes"},
	}
}

func TestStackTotalsSumEachStackPerHostAndCountWhatFailed(t *testing.T) {
	const mb = 1 << 20
	want := []StackTotal{
		{Stack: "masterd", Host: "m1", RSS: 50 * mb, CPU: 10 * time.Millisecond, Components: 1},
		{Stack: "masterd", Host: "m2", RSS: 60 * mb, CPU: 20 * time.Millisecond, Components: 1},
		{Stack: "classic", Host: "m1", RSS: 60 * mb, CPU: 20 * time.Millisecond, Components: 2},
		{Stack: "classic", Host: "m2", RSS: 42 * mb, CPU: 17 * time.Millisecond, Components: 1, Missing: 1},
	}
	got := StackTotals(footprintSample())
	if len(got) != len(want) {
		t.Fatalf("got %d totals, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("total %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestFootprintTablesAndNotesRenderUnderTheFootprint(t *testing.T) {
	var buf bytes.Buffer
	meta := Meta{Title: "t", Start: time.Unix(0, 0), End: time.Unix(60, 0),
		Notes:     []string{"general note", FootprintNotePrefix + "both stacks served the same apiserver"},
		Footprint: footprintSample()}
	if err := Markdown(&buf, meta, nil); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	foot := strings.Index(s, "## Footprint (idle)")
	if foot < 0 {
		t.Fatalf("no footprint section:\n%s", s)
	}
	for _, want := range []string{
		"| masterd | m1 | 50.0 | 10.0 |",
		"| classic | m1 | 60.0 | 20.0 |",
		"| classic | m2 | 42.0 (partial: 1 of 2 components) | 17.0 |",
		"| masterd | 55.0 | 15.0 |",
		"| classic | 51.0 (partial) | 18.5 |",
	} {
		if !strings.Contains(s[foot:], want) {
			t.Errorf("footprint section lacks %q:\n%s", want, s[foot:])
		}
	}
	if i := strings.Index(s, "both stacks served the same apiserver"); i < foot || strings.Contains(s, FootprintNotePrefix) {
		t.Errorf("the footprint note is not under the footprint tables (or kept its prefix):\n%s", s)
	}
	if i := strings.Index(s, "general note"); i < 0 || i > foot {
		t.Errorf("the general note is not at the top:\n%s", s)
	}
}
