package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/election"
)

// The election section shows the membership and whether this master may
// take part in a change: settled, not yet, or stale.
func TestStatusShowsTheMembershipEpochAndAChangeInProgress(t *testing.T) {
	cases := []struct {
		name string
		sec  map[string]any
		want []string
	}{
		{"a settled membership", map[string]any{
			"roles":      map[string]election.RoleInfo{"vip": {Holder: "m1", Term: 4, State: "follower"}},
			"membership": election.Membership{Epoch: 1, Voters: []string{"m1", "m2", "m3"}},
			"epochFloor": 1, "settled": true,
		}, []string{"membership: epoch 1, voters m1, m2, m3; settled"}},
		{"a change in progress while learning", map[string]any{
			"roles":      map[string]election.RoleInfo{"vip": {State: "follower", Learning: true}},
			"membership": election.Membership{Epoch: 2, Voters: []string{"m1", "m2", "m4"}, Old: []string{"m1", "m2", "m3"}},
			"epochFloor": 2,
		}, []string{"follower (learning its term)", "epoch 2, voters m1, m2, m4 (changing from m1, m2, m3", "not settled yet"}},
		{"a stale master", map[string]any{
			"roles":      map[string]election.RoleInfo{},
			"membership": election.Membership{Epoch: 1, Voters: []string{"m1", "m2", "m3"}},
			"epochFloor": 3,
		}, []string{"STALE: epoch 3 exists"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw, err := json.Marshal(c.sec)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			printSections(&b, agent.Status{Sections: map[string]json.RawMessage{"election": raw}})
			for _, w := range c.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("status lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}

// A unit the version skew policy refuses says why under the unit table.
func TestStatusSaysWhyAUnitIsRefused(t *testing.T) {
	raw, err := json.Marshal([]agent.UnitStatus{
		{Name: "kube-apiserver.service", Active: "active", Sub: "running", Version: "v1.37.2"},
		{Name: "kube-scheduler.service", Active: "inactive", Sub: "dead", Version: "v1.38.0",
			Refused: "kube-scheduler v1.38.0 on m1: newer than the oldest kube-apiserver, v1.37.2 on m2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	printSections(&b, agent.Status{Sections: map[string]json.RawMessage{"kube": raw}})
	want := "kube-scheduler.service not run here: refused by the version skew policy: kube-scheduler v1.38.0 on m1: newer than the oldest kube-apiserver, v1.37.2 on m2"
	if !strings.Contains(b.String(), want) || strings.Contains(b.String(), "kube-apiserver.service not run here") {
		t.Errorf("status:\n%s\nwant the scheduler's refusal only", b.String())
	}
}
