package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

func TestPercentileIsNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 20; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 10 * time.Millisecond}, {95, 19 * time.Millisecond}, {100, 20 * time.Millisecond}, {0, time.Millisecond}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	s := Summarize([]time.Duration{3 * time.Second, time.Second, 2 * time.Second})
	if s.N != 3 || s.P50 != 2*time.Second || s.P95 != 3*time.Second || s.Max != 3*time.Second {
		t.Errorf("Summarize = %+v", s)
	}
	if (Summarize(nil) != Summary{}) {
		t.Error("Summarize(nil) is not zero")
	}
}

func sample() []Trial {
	return []Trial{
		{System: "masterd-default", Scenario: "linkcut", N: 1, Victim: "m1", NewHolder: "m2", Outage: 912 * time.Millisecond,
			Moved: 850 * time.Millisecond, Samples: 300, ARPRounds: 150, API: 1071 * time.Millisecond, APIWrite: 1103 * time.Millisecond,
			PodBound: -1, PodsCreated: -1},
		{System: "masterd-default", Scenario: "takeover-crash", N: 1, Victim: "m2", Moved: -1, API: -1, APIWrite: -1,
			PodBound: 4200 * time.Millisecond, PodsCreated: 5100 * time.Millisecond, VictimRoles: "scheduler,controller-manager"},
		{System: "keepalived-default", Scenario: "partition", N: 1, Victim: "m1", NewHolder: "m1", Outage: 5 * time.Second,
			Moved: -1, Samples: 800, DualSamples: 400, ARPRounds: 400, DualARP: 200, PostHeal: 3 * time.Second, API: -1, APIWrite: -1, PodBound: -1, PodsCreated: -1,
			StaleNeighbour: true},
		{System: "keepalived-default", Scenario: "partition", N: 2, API: -1, APIWrite: -1, PodBound: -1, PodsCreated: -1, Err: "VIP never stable, \"quoted\""},
	}
}

func TestCSVRoundTripKeepsEveryField(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteCSV(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	if len(got) != len(want) {
		t.Fatalf("read %d trials, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("trial %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := ReadCSV(strings.NewReader("a,b\n")); err == nil {
		t.Error("ReadCSV accepted a foreign header")
	}
}

func TestCDFSVGIsWellFormedWithOneLinePerSystem(t *testing.T) {
	var buf bytes.Buffer
	err := CDFSVG(&buf, "link cut <holder>", []Series{
		{Name: "masterd-default", Values: []time.Duration{time.Second, 900 * time.Millisecond}},
		{Name: "keepalived-default", Values: []time.Duration{3 * time.Second}},
		{Name: "empty"},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&buf)
	lines := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("svg is not well-formed XML: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		seen := map[string]bool{}
		for _, a := range se.Attr {
			if seen[a.Name.Local] {
				t.Errorf("<%s> has attribute %s twice", se.Name.Local, a.Name.Local)
			}
			seen[a.Name.Local] = true
		}
		if se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 2 {
		t.Errorf("%d polylines, want 2 (the empty series has none)", lines)
	}
}

func TestMarkdownHasMainTableRowPerSystemAndListsErrors(t *testing.T) {
	var buf bytes.Buffer
	meta := Meta{Title: "t", Command: "make bench", Start: time.Unix(0, 0), End: time.Unix(60, 0), TrialsAsked: 30,
		Systems:   []Named{{"masterd-default", "d"}, {"keepalived-default", "k"}},
		Scenarios: []Named{{"linkcut", "l"}, {"partition", "p"}},
		Footprint: []Footprint{{Stack: "masterd", Component: "masterd", Host: "m1", RSS: 50 << 20, CPU: 10 * time.Millisecond, Window: 10 * time.Second}},
		Appendix:  []string{"# etcd\n\ntext"}}
	if err := Markdown(&buf, meta, sample()); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	for _, want := range []string{
		"| masterd-default | 912 / 912 (n=1, dual 0) | – |",
		"| keepalived-default | – | 5000 / 5000 (n=1, dual 1) |",
		"keepalived-default trial 2: VIP never stable",
		"| masterd | 50.0 | 10.0 |",
		"## etcd",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("markdown lacks %q:\n%s", want, s)
		}
	}
}

func TestReadCSVAcceptsResultsWrittenBeforeTheAPIWriteColumns(t *testing.T) {
	v1 := strings.Join(csvHeaderV1, ",") + "\nmasterd-default,linkcut,1,m1,m2,800.0,803.0,300,0,150,0,0.0,0,1071.0,false,\n"
	got, err := ReadCSV(strings.NewReader(v1))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].API != 1071*time.Millisecond || got[0].APIWrite != -1 || got[0].PodBound != -1 || got[0].PodsCreated != -1 {
		t.Errorf("read %+v, want API 1.071s and the new columns unmeasured (-1)", got)
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, []Trial{{System: "s", Scenario: "crash", API: NotWithin, APIWrite: -1}}); err != nil {
		t.Fatal(err)
	}
	back, err := ReadCSV(&buf)
	if err != nil || len(back) != 1 || back[0].API != NotWithin || back[0].APIWrite != -1 {
		t.Errorf("NotWithin and not measured after a round trip: %+v, %v", back, err)
	}
}

func TestAPIAndTakeoverTables(t *testing.T) {
	trials := []Trial{
		{System: "masterd-default", Scenario: "crash", N: 1, API: 900 * time.Millisecond, APIWrite: 1200 * time.Millisecond, APIServed: 950 * time.Millisecond, APIWriteServed: -1, PodBound: -1, PodsCreated: -1},
		{System: "masterd-default", Scenario: "crash", N: 4, API: 700 * time.Millisecond, APIWrite: NotWithin, APIServed: NotWithin, APIWriteServed: NotWithin, PodBound: -1, PodsCreated: -1},
		{System: "masterd-default", Scenario: "crash", N: 2, API: 1100 * time.Millisecond, APIWrite: -1, APIServed: -1, APIWriteServed: -1, PodBound: -1, PodsCreated: -1},
		{System: "masterd-default", Scenario: "crash", N: 3, API: 5 * time.Second, Err: "undo: not stable"},
		{System: "masterd-default", Scenario: "stress", N: 1, API: -1, APIWrite: -1, PodBound: -1, PodsCreated: -1},
		{System: "masterd-default", Scenario: "takeover-crash", N: 1, API: -1, APIWrite: -1, PodBound: 4 * time.Second, PodsCreated: 6 * time.Second, VictimRoles: "scheduler"},
		{System: "masterd-default", Scenario: "takeover-crash", N: 2, API: -1, APIWrite: -1, PodBound: 3 * time.Second, PodsCreated: 5 * time.Second, VictimRoles: "controller-manager"},
	}
	cells := Cells(trials, []string{"masterd-default"}, []string{"crash", "stress", "takeover-crash"})
	api := apiTable(cells, []string{"masterd-default"}, []string{"crash", "stress"})
	// The failed trial is left out; a figure not within its window counts
	// as never, one not measured (-1) not at all; stress has no API figure
	// and no row.
	for _, want := range []string{"| readyz first | readyz every request |", "| masterd-default | crash | 900 / 1100 (n=3) | 950 / 950 (n=1, 1 never) | 1200 / 1200 (n=1, 1 never) | never (1) |"} {
		if !strings.Contains(api, want) {
			t.Errorf("API table lacks %q:\n%s", want, api)
		}
	}
	if strings.Contains(api, "stress") {
		t.Errorf("API table has a column for stress, which measured none:\n%s", api)
	}
	// Pod bound only from the trial whose victim held the scheduler, the
	// Deployment's pod only from the controller-manager's.
	to := takeoverTable(cells)
	if want := "| takeover-crash | masterd-default | 2 (0) | 4000 / 4000 (n=1) | 5000 / 5000 (n=1) |"; !strings.Contains(to, want) {
		t.Errorf("takeover table lacks %q:\n%s", want, to)
	}
	var md bytes.Buffer
	meta := Meta{Systems: []Named{{Name: "masterd-default"}}, Scenarios: []Named{{Name: "crash"}, {Name: "stress"}, {Name: "takeover-crash"}}}
	if err := Markdown(&md, meta, trials); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(md.String(), "## takeover-crash") || strings.Contains(md.String(), " takeover-crash |\n|---|") {
		t.Errorf("the VIP tables show the takeover scenario:\n%s", md.String())
	}
}
