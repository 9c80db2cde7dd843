package vip

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/masterd/masterd/bench/report"
	"github.com/masterd/masterd/election"
	"github.com/masterd/masterd/integration/lab"
)

// Takeover workload: a Node object with no kubelet (a pod bound to it stays
// Pending, which is all of the scheduler's work) and a Deployment whose pods
// tolerate every taint (the node goes NotReady 40 s after its one status
// write and is tainted).
const (
	takeoverNode       = "bench-takeover-node"
	takeoverDeployment = "bench-takeover"
	// takeoverWindow bounds the wait for both figures after the fault.
	takeoverWindow = 60 * time.Second
	// takeoverPartitionHold is how long a takeover-partition isolates the
	// role holder: beyond the window a user would wait, short of the
	// etcd member's removal.
	takeoverPartitionHold = 15 * time.Second
	// pollEvery is how often the trial reads the Pod and the pods.
	pollEvery = 100 * time.Millisecond
)

// setUpTakeover creates the Node and the Deployment (once per run) and
// waits for the ServiceAccount default/default: until the
// controller-manager has made it, the apiserver refuses every new Pod
// (403), which in a fresh lab's first trial was counted as takeover time.
func (b *bench) setUpTakeover(ctx context.Context) error {
	if b.takeoverReady {
		return nil
	}
	w := lab.NewSchedulingWorkload(takeoverNode, takeoverDeployment, "a Node object for the takeover benchmark", time.Now())
	steps := []struct{ method, path, ctype, body string }{
		{http.MethodPost, "/api/v1/nodes", "application/json", w.Node},
		{http.MethodPatch, "/api/v1/nodes/" + takeoverNode + "/status", "application/merge-patch+json", w.NodeStatus},
		{http.MethodPost, "/apis/apps/v1/namespaces/default/deployments", "application/json", w.Deployment},
	}
	for _, st := range steps {
		code, out, err := b.api.do(ctx, "", st.method, st.path, st.ctype, []byte(st.body))
		if err != nil {
			return fmt.Errorf("vip bench: takeover workload: %s %s: %w", st.method, st.path, err)
		}
		if code >= 300 && code != http.StatusConflict {
			return fmt.Errorf("vip bench: takeover workload: %s %s: %d %s", st.method, st.path, code, short(out))
		}
	}
	const saPath = "/api/v1/namespaces/default/serviceaccounts/default"
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if b.pollUntil(waitCtx, time.Now(), saPath, func([]byte) bool { return true }) == report.NotWithin {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fmt.Errorf("vip bench: takeover workload: GET %s: not there within 2m", saPath)
	}
	b.takeoverReady = true
	return nil
}

// takeoverTrial crashes or isolates the holder of the scheduler role (odd
// n) or of the controller-manager role (even n), asks through the VIP for
// a new Pod and one more replica right after the fault, and measures when
// each was done.
func (b *bench) takeoverTrial(ctx context.Context, s System, sc string, n int) report.Trial {
	t := report.Trial{System: s.Name, Scenario: sc, N: n, Moved: -1, API: -1, APIWrite: -1, APIServed: -1, APIWriteServed: -1, PodBound: -1, PodsCreated: -1}
	if b.api == nil {
		t.Err = "before the fault: no kube binaries in this lab"
		return t
	}
	if err := b.setUpTakeover(ctx); err != nil {
		t.Err = "before the fault: " + err.Error()
		return t
	}
	role := election.RoleScheduler
	if n%2 == 0 {
		role = election.RoleControllerManager
	}
	hs := b.l.Holders(ctx, role)
	if len(hs) != 1 {
		t.Err = fmt.Sprintf("before the fault: %s role held by %v, want one master", role, hs)
		return t
	}
	victim := b.l.Master(hs[0])
	t.Victim = victim.Name
	var roles []string
	for _, r := range []string{election.RoleScheduler, election.RoleControllerManager} {
		if slices.Contains(b.l.Holders(ctx, r), victim.Name) {
			roles = append(roles, r)
		}
	}
	t.VictimRoles = strings.Join(roles, ",")
	replicas, err := b.deploymentReplicas(ctx)
	if err != nil {
		t.Err = "before the fault: " + err.Error()
		return t
	}
	pod := fmt.Sprintf("bench-takeover-%s-%d-%d", sc, n, time.Now().Unix())

	t0 := time.Now()
	var ferr error
	if sc == TakeoverCrash {
		ferr = b.l.Crash(ctx, victim)
	} else {
		ferr = partition(ctx, b.l, victim)
	}
	wctx, cancel := context.WithTimeout(ctx, takeoverWindow)
	bound, created := make(chan time.Duration, 1), make(chan time.Duration, 1)
	go func() { bound <- b.podBound(wctx, t0, pod) }()
	go func() { created <- b.replicaCreated(wctx, t0, replicas+1) }()
	t.PodBound, t.PodsCreated = <-bound, <-created
	cancel()
	if slow := 5 * time.Second; t.PodBound < 0 || t.PodBound > slow || t.PodsCreated < 0 || t.PodsCreated > slow {
		b.progress("%s %d: slower than %v; timeline from the survivors' journals:\n%s", sc, n, slow, b.takeoverTimeline(ctx, t0, victim))
	}
	if sc == TakeoverPartition {
		sleepCtx(ctx, time.Until(t0.Add(takeoverPartitionHold)))
	}
	if ferr != nil {
		t.Err = ferr.Error()
	}
	var uerr error
	if sc == TakeoverCrash {
		uerr = b.reboot(ctx, s, victim)
	} else {
		uerr = heal(ctx, victim)
	}
	restarted := time.Now()
	if uerr == nil {
		_, uerr = b.waitStable(ctx, s, 3*time.Minute)
	}
	if uerr == nil && sc == TakeoverCrash {
		b.waitQuietOver(ctx, restarted)
	}
	if uerr == nil {
		actx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		uerr = b.waitAPIServers(actx)
		cancel()
	}
	if uerr != nil {
		if t.Err != "" {
			t.Err += "; "
		}
		t.Err += "undo: " + uerr.Error()
	}
	return t
}

// deploymentReplicas reads the takeover Deployment's spec.replicas.
func (b *bench) deploymentReplicas(ctx context.Context) (int, error) {
	code, out, err := b.api.do(ctx, "", http.MethodGet, "/apis/apps/v1/namespaces/default/deployments/"+takeoverDeployment, "", nil)
	if err != nil {
		return 0, fmt.Errorf("read deployment %s: %w", takeoverDeployment, err)
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("read deployment %s: %d %s", takeoverDeployment, code, short(out))
	}
	var d struct {
		Spec struct {
			Replicas int `json:"replicas"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(out, &d); err != nil {
		return 0, fmt.Errorf("read deployment %s: %w", takeoverDeployment, err)
	}
	return d.Spec.Replicas, nil
}

// podBound creates Pod name (retrying until the API takes it) and returns
// the time from t0 until it is bound to a node (-1 when not within ctx).
func (b *bench) podBound(ctx context.Context, t0 time.Time, name string) time.Duration {
	body := `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "` + name + `", "namespace": "default"},
 "spec": {"tolerations": [{"operator": "Exists"}], "containers": [{"name": "c", "image": "registry.invalid/pause"}]}}`
	if b.firstSuccess(ctx, t0, "pod create", func(ctx context.Context) error {
		code, out, err := b.api.do(ctx, "", http.MethodPost, "/api/v1/namespaces/default/pods", "application/json", []byte(body))
		if err == nil && code != http.StatusCreated && code != http.StatusConflict {
			err = fmt.Errorf("%d %s", code, short(out))
		}
		return err
	}) < 0 {
		return report.NotWithin
	}
	return b.pollUntil(ctx, t0, "/api/v1/namespaces/default/pods/"+name, func(out []byte) bool {
		var p struct {
			Spec struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
		}
		return json.Unmarshal(out, &p) == nil && p.Spec.NodeName != ""
	})
}

// replicaCreated scales the Deployment to want (retrying until the API
// takes it) and returns the time from t0 until it has want pods that are
// not being deleted (-1 when not within ctx).
func (b *bench) replicaCreated(ctx context.Context, t0 time.Time, want int) time.Duration {
	patch := fmt.Sprintf(`{"spec": {"replicas": %d}}`, want)
	if b.firstSuccess(ctx, t0, "scale", func(ctx context.Context) error {
		code, out, err := b.api.do(ctx, "", http.MethodPatch, "/apis/apps/v1/namespaces/default/deployments/"+takeoverDeployment, "application/merge-patch+json", []byte(patch))
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("%d %s", code, short(out))
		}
		return err
	}) < 0 {
		return report.NotWithin
	}
	return b.pollUntil(ctx, t0, "/api/v1/namespaces/default/pods?labelSelector=app%3D"+takeoverDeployment, func(out []byte) bool {
		var l struct {
			Items []struct {
				Metadata struct {
					DeletionTimestamp *string `json:"deletionTimestamp"`
				} `json:"metadata"`
			} `json:"items"`
		}
		if json.Unmarshal(out, &l) != nil {
			return false
		}
		live := 0
		for _, p := range l.Items {
			if p.Metadata.DeletionTimestamp == nil {
				live++
			}
		}
		return live >= want
	})
}

// pollUntil GETs path through the VIP every pollEvery until done accepts
// the body, and returns the time from t0 to that answer (-1 when ctx ends
// first: report.NotWithin).
func (b *bench) pollUntil(ctx context.Context, t0 time.Time, path string, done func([]byte) bool) time.Duration {
	for ctx.Err() == nil {
		code, out, err := b.api.do(ctx, "", http.MethodGet, path, "", nil)
		if err == nil && code == http.StatusOK && done(out) {
			return time.Since(t0)
		}
		sleepCtx(ctx, pollEvery)
	}
	return report.NotWithin
}

// timelineRE picks the journal lines that say where a takeover's time went:
// masterd's role and leader-unit steps and the components' own lease.
var timelineRE = regexp.MustCompile(`(?i)role acquired|role lost|leader unit|kube lease|successfully acquired lease|attempting to acquire|started kube-`)

// takeoverTimeline returns the survivors' journal lines matching
// timelineRE since t0, each prefixed with its master and its time from t0.
func (b *bench) takeoverTimeline(ctx context.Context, t0 time.Time, victim *lab.Master) string {
	var out strings.Builder
	matched := 0
	for _, m := range b.l.Masters() {
		if m == victim {
			continue
		}
		j, err := m.Exec(ctx, "journalctl", "--no-pager", "-o", "short-unix", "--since", "@"+strconv.FormatInt(t0.Unix()-1, 10),
			"-u", "masterd", "-u", "kube-scheduler", "-u", "kube-controller-manager")
		if err != nil {
			// One takeover-partition timeline came out empty: say why.
			fmt.Fprintf(&out, "  %s: journalctl: %v\n", m.Name, err)
		}
		for _, line := range strings.Split(string(j), "\n") {
			ts, rest, ok := strings.Cut(line, " ")
			if !ok || !timelineRE.MatchString(rest) {
				continue
			}
			sec, err := strconv.ParseFloat(ts, 64)
			if err != nil {
				continue
			}
			at := time.Unix(0, int64(sec*1e9)).Sub(t0)
			if len(rest) > 200 {
				rest = rest[:200]
			}
			fmt.Fprintf(&out, "  %s +%.2fs %s\n", m.Name, at.Seconds(), rest)
			matched++
		}
	}
	if matched == 0 {
		fmt.Fprintf(&out, "  no journal line since %s matched %s\n", t0.Format(time.RFC3339Nano), timelineRE)
	}
	return out.String()
}
