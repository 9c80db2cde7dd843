package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/internal/skew"
)

func rec(name, kube string, running bool) agent.VersionsRecord {
	r := agent.VersionsRecord{Name: name, Masterd: agent.BuildInfo{Version: "1.2.0", Revision: "0123456789ab"}, WireVersion: 2, Running: running}
	if kube != "" {
		r.Kube = map[string]string{skew.APIServer: kube, skew.Scheduler: kube, skew.ControllerManager: kube}
	}
	return r
}

func threeMastersInput() planInput {
	return planInput{
		Membership: agent.MembershipRecord{Epoch: 1, Voters: map[string]string{"m1": "10.0.0.1", "m2": "10.0.0.2", "m3": "10.0.0.3"}},
		Records:    map[string]agent.VersionsRecord{"m1": rec("m1", "v1.37.2", true), "m2": rec("m2", "v1.37.2", true), "m3": rec("m3", "v1.37.2", true)},
		EtcdUp:     map[string]bool{"m1": true, "m2": true, "m3": true},
		Holders:    map[string]string{"vip": "m1", "scheduler": "m2", "controller-manager": "m2"},
		Local:      "m3", LocalSettled: true,
	}
}

func order(p plan) string {
	var s []string
	for _, st := range p.Order {
		s = append(s, st.Name)
	}
	return strings.Join(s, ",")
}

func TestUpgradePlan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*planInput)
		order   string
		blocked []string // substrings, one per blocker
		note    string
	}{
		{name: "masters without a role first, then the VIP holder, the scheduler and controller-manager holder last",
			order: "m3,m1,m2"},
		{name: "a membership change in progress blocks it",
			change: func(in *planInput) {
				in.Membership.Change = &agent.MembershipChange{Op: "add", Name: "m4", Address: "10.0.0.4", Started: time.Unix(0, 0)}
			},
			order: "m3,m1,m2", blocked: []string{"a membership change is in progress: add m4"}},
		{name: "an etcd member down blocks it",
			change:  func(in *planInput) { in.EtcdUp["m1"] = false },
			order:   "m3,m1,m2",
			blocked: []string{"m1: etcd member down"}},
		{name: "a stopped masterd blocks it",
			change:  func(in *planInput) { in.Records["m3"] = rec("m3", "v1.37.2", false) },
			order:   "m3,m1,m2",
			blocked: []string{"m3: masterd is stopped"}},
		{name: "a master whose new scheduler is newer than the oldest apiserver is a skew violation",
			change:  func(in *planInput) { in.Records["m3"] = rec("m3", "v1.38.0", true) },
			order:   "m3,m1,m2",
			blocked: []string{"version skew: kube-scheduler v1.38.0 on m3: newer than the oldest kube-apiserver, v1.37.2 on m1", "version skew: kube-controller-manager v1.38.0 on m3"}},
		{name: "the local master not settled yet blocks it",
			change:  func(in *planInput) { in.LocalSettled = false },
			order:   "m3,m1,m2",
			blocked: []string{"m3: its election has not settled yet"}},
		{name: "an older masterd without records is a note, not a blocker",
			change: func(in *planInput) { delete(in.Records, "m2") },
			order:  "m3,m1,m2", note: "m2: publishes no versions"},
		{name: "without the local agent the order is by name and says so",
			change: func(in *planInput) { in.Holders, in.HoldersErr = nil, "is masterd running?" },
			order:  "m1,m2,m3", note: "role holders unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := threeMastersInput()
			if tc.change != nil {
				tc.change(&in)
			}
			p := makePlan(in)
			if got := order(p); got != tc.order {
				t.Errorf("order %s, want %s", got, tc.order)
			}
			if len(p.Blockers) != len(tc.blocked) {
				t.Fatalf("blockers %q, want %d", p.Blockers, len(tc.blocked))
			}
			for i, b := range tc.blocked {
				if !strings.Contains(p.Blockers[i], b) {
					t.Errorf("blocker %q does not contain %q", p.Blockers[i], b)
				}
			}
			if tc.note != "" && !strings.Contains(strings.Join(p.Notes, "\n"), tc.note) {
				t.Errorf("notes %q lack %q", p.Notes, tc.note)
			}
			var out bytes.Buffer
			printPlan(&out, in, p)
			if !strings.Contains(out.String(), "m1    1.2.0 (0123456)  2     v1.37.2         v1.37.2") && tc.change == nil {
				t.Errorf("table:\n%s", out.String())
			}
			if (len(tc.blocked) == 0) != strings.Contains(out.String(), "blocked by: nothing") {
				t.Errorf("printed:\n%s", out.String())
			}
		})
	}
}
