package lab

import (
	"encoding/json"
	"testing"
	"time"
)

func TestSchedulingWorkloadIsValidJSONWithTheGivenNames(t *testing.T) {
	w := NewSchedulingWorkload("n1", "d1", `says "why"`, time.Date(2026, 12, 4, 10, 0, 0, 0, time.FixedZone("x", 3600)))
	var node, status, dep struct {
		Metadata struct{ Name string } `json:"metadata"`
		Spec     struct {
			Replicas *int `json:"replicas"`
		} `json:"spec"`
		Status struct {
			Conditions []struct{ Type, Status, LastHeartbeatTime string } `json:"conditions"`
		} `json:"status"`
	}
	for name, c := range map[string]struct {
		s string
		v any
	}{"node": {w.Node, &node}, "status": {w.NodeStatus, &status}, "deployment": {w.Deployment, &dep}} {
		if err := json.Unmarshal([]byte(c.s), c.v); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, c.s)
		}
	}
	if node.Metadata.Name != "n1" || dep.Metadata.Name != "d1" {
		t.Errorf("names %q %q, want n1 d1", node.Metadata.Name, dep.Metadata.Name)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 0 {
		t.Errorf("deployment replicas %v, want 0", dep.Spec.Replicas)
	}
	if cs := status.Status.Conditions; len(cs) != 1 || cs[0].Type != "Ready" || cs[0].Status != "True" || cs[0].LastHeartbeatTime != "2026-12-04T09:00:00Z" {
		t.Errorf("node status conditions %+v, want one Ready True at 09:00 UTC", cs)
	}
}
