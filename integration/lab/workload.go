package lab

import (
	"encoding/json"
	"time"
)

// SchedulingWorkload is what the takeover test and benchmark ask of a
// cluster's scheduler and controller-manager without running a kubelet:
// a Node object that reports Ready (pods bound to it stay Pending, which
// is all the scheduler's work) and a Deployment of no replicas whose pods
// tolerate every taint (scaling it up is the controller-manager's work).
type SchedulingWorkload struct {
	Node       string // the Node object to create (kubectl create -f, POST /api/v1/nodes)
	NodeStatus string // a merge patch of the Node's status subresource: Ready, room for 1000 pods
	Deployment string // the Deployment to create in the namespace "default"
}

// NewSchedulingWorkload returns the objects for a Node named node and a
// Deployment named deployment; why says in the Node's Ready condition what
// created it, now is its heartbeat time.
func NewSchedulingWorkload(node, deployment, why string, now time.Time) SchedulingWorkload {
	ts := now.UTC().Format(time.RFC3339)
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) } // a string cannot fail to marshal
	node, deployment, why = q(node), q(deployment), q(why)
	res := `{"cpu": "64", "memory": "256Gi", "pods": "1000"}`
	return SchedulingWorkload{
		Node: `{"apiVersion": "v1", "kind": "Node", "metadata": {"name": ` + node + `, "labels": {"kubernetes.io/hostname": ` + node + `}}}`,
		NodeStatus: `{"status": {"capacity": ` + res + `, "allocatable": ` + res + `, "conditions": [{"type": "Ready", "status": "True", "reason": "NoKubelet", "message": ` + why +
			`, "lastHeartbeatTime": "` + ts + `", "lastTransitionTime": "` + ts + `"}]}}`,
		Deployment: `{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": ` + deployment + `, "namespace": "default"},
 "spec": {"replicas": 0, "selector": {"matchLabels": {"app": ` + deployment + `}},
  "template": {"metadata": {"labels": {"app": ` + deployment + `}},
   "spec": {"tolerations": [{"operator": "Exists"}], "containers": [{"name": "c", "image": "registry.invalid/pause"}]}}}}`,
	}
}
