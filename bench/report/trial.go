package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Trial is one measured fault of one system in one scenario.
type Trial struct {
	System   string
	Scenario string
	// N numbers the trial within its cell (1-based).
	N int
	// Victim is the namespace that held the VIP when the fault was injected;
	// NewHolder the one that held it when the trial ended ("" when none).
	Victim    string
	NewHolder string
	// Outage is the client-visible outage: the longest gap between ping
	// replies from the fault to the end of the trial (an outage still running
	// at the end counts up to the end). In the partition scenario it is the
	// longer of that and the longest time the client's neighbour entry for the
	// VIP pointed at no right holder (the isolated node is never right).
	Outage time.Duration
	// Moved is the time from the fault until another namespace than the
	// victim held the VIP; negative when it never did.
	Moved time.Duration
	// Samples and DualSamples count `ip addr` samples of every master
	// namespace (every 10 ms) and those in which two namespaces on the wire
	// held the VIP (a namespace whose link is cut is not on the wire).
	Samples     int
	DualSamples int
	// ARPRounds and DualARP count who-has probes from the client (every 20 ms)
	// and those answered by two or more MACs.
	ARPRounds int
	DualARP   int
	// PostHeal is the longest client-visible outage after the partition
	// healed (partition scenario only; zero elsewhere).
	PostHeal time.Duration
	// FalseFailovers counts moves of the VIP away from the victim while
	// nothing but CPU stress happened (stress scenario only).
	FalseFailovers int
	// API is the time from the fault to the first successful Kubernetes API
	// call through the VIP; negative when not measured.
	API time.Duration
	// APIWrite is the time from the fault to the first successful write (a
	// ConfigMap patch) through the VIP; negative when not measured.
	APIWrite time.Duration
	// APIServed and APIWriteServed: the time from the fault to the end of
	// the first attempt from which on every later attempt (a new one every
	// 100 ms, for 6 s after the fault) succeeded: when a new client is
	// served every time, not only when the balancer picks a live backend;
	// negative when not measured or not within the window.
	APIServed      time.Duration
	APIWriteServed time.Duration
	// PodBound and PodsCreated (takeover scenarios): the time from the
	// fault until a Pod created after it was bound to a node (the
	// scheduler's work) and until a Deployment scaled up after it had its
	// new pod (the controller-manager's); negative when not measured or
	// never seen.
	PodBound    time.Duration
	PodsCreated time.Duration
	// VictimRoles lists the kube roles the victim held at the fault
	// (takeover scenarios), e.g. "scheduler,controller-manager".
	VictimRoles string
	// StaleNeighbour is true when, after the trial's fault was undone, the
	// client's neighbour entry stayed on a MAC that no longer held the VIP
	// and the harness had to flush it to go on.
	StaleNeighbour bool
	// Err says why the trial is not valid ("" when it is).
	Err string
}

var csvHeader = []string{"system", "scenario", "trial", "victim", "new_holder", "outage_ms", "moved_ms",
	"samples", "dual_samples", "arp_rounds", "dual_arp", "post_heal_ms", "false_failovers", "api_ms",
	"stale_neighbour", "error", "api_write_ms", "pod_bound_ms", "pods_created_ms", "victim_roles",
	"api_served_ms", "api_write_served_ms"}

// csvHeaderV1 is the header of results written before the API write and
// takeover columns, csvHeaderV2 before the served-from columns (read with
// those unmeasured).
var (
	csvHeaderV1 = csvHeader[:16]
	csvHeaderV2 = csvHeader[:20]
)

// NotWithin marks a figure that was measured but did not happen within
// its window (the API never served every request, the Pod never bound);
// other negative figures were not measured. In the CSV: -2 and -1.
const NotWithin time.Duration = -2

func csvMS(d time.Duration) string {
	if d == NotWithin {
		return "-2"
	}
	if d < 0 {
		return "-1"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
}

// WriteCSV writes the trials with a header row; durations in milliseconds
// (negative: not measured).
func WriteCSV(w io.Writer, trials []Trial) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("report: write csv: %w", err)
	}
	for _, t := range trials {
		rec := []string{t.System, t.Scenario, strconv.Itoa(t.N), t.Victim, t.NewHolder, csvMS(t.Outage), csvMS(t.Moved),
			strconv.Itoa(t.Samples), strconv.Itoa(t.DualSamples), strconv.Itoa(t.ARPRounds), strconv.Itoa(t.DualARP),
			csvMS(t.PostHeal), strconv.Itoa(t.FalseFailovers), csvMS(t.API), strconv.FormatBool(t.StaleNeighbour), t.Err,
			csvMS(t.APIWrite), csvMS(t.PodBound), csvMS(t.PodsCreated), t.VictimRoles,
			csvMS(t.APIServed), csvMS(t.APIWriteServed)}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("report: write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("report: write csv: %w", err)
	}
	return nil
}

// ReadCSV reads what WriteCSV wrote (to re-render a note from raw results).
func ReadCSV(r io.Reader) ([]Trial, error) {
	cr := csv.NewReader(r)
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("report: read csv: %w", err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("report: read csv: empty")
	}
	if n := len(recs[0]); n != len(csvHeader) && n != len(csvHeaderV2) && n != len(csvHeaderV1) {
		return nil, fmt.Errorf("report: read csv: header has %d columns, want %d (or %d or %d, written by earlier versions)", n, len(csvHeader), len(csvHeaderV2), len(csvHeaderV1))
	}
	var out []Trial
	for i, rec := range recs[1:] {
		var t Trial
		var errs []error
		num := func(s string) int {
			n, err := strconv.Atoi(s)
			if err != nil {
				errs = append(errs, err)
			}
			return n
		}
		dur := func(s string) time.Duration {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				errs = append(errs, err)
			}
			switch {
			case f == -2:
				return NotWithin
			case f < 0:
				return -1
			}
			return time.Duration(f * float64(time.Millisecond))
		}
		t.System, t.Scenario = rec[0], rec[1]
		t.N = num(rec[2])
		t.Victim, t.NewHolder = rec[3], rec[4]
		t.Outage, t.Moved = dur(rec[5]), dur(rec[6])
		t.Samples, t.DualSamples, t.ARPRounds, t.DualARP = num(rec[7]), num(rec[8]), num(rec[9]), num(rec[10])
		t.PostHeal = dur(rec[11])
		t.FalseFailovers = num(rec[12])
		t.API = dur(rec[13])
		t.StaleNeighbour = rec[14] == "true"
		t.Err = rec[15]
		t.APIWrite, t.PodBound, t.PodsCreated, t.APIServed, t.APIWriteServed = -1, -1, -1, -1, -1
		if len(rec) == len(csvHeader) {
			t.APIServed, t.APIWriteServed = dur(rec[20]), dur(rec[21])
		}
		if len(rec) >= len(csvHeaderV2) {
			t.APIWrite, t.PodBound, t.PodsCreated = dur(rec[16]), dur(rec[17]), dur(rec[18])
			t.VictimRoles = rec[19]
		}
		if len(errs) > 0 {
			return nil, fmt.Errorf("report: read csv: row %d: %v", i+2, errs[0])
		}
		out = append(out, t)
	}
	return out, nil
}
