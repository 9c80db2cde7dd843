package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/lab"
)

// TestControlPlaneScenarios runs the scenarios of issue 10 in order on one
// three-master lab. Run alone with:
//
//	go test -count=1 -timeout 40m -v ./integration/scenarios/
func TestControlPlaneScenarios(t *testing.T) {
	o := options(t)
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	s := &scenarioLab{Lab: l, t: t}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	figure(t, "lab up (3 hosts booted, package installed, masterd enabled) in %.1fs", time.Since(start).Seconds())

	if !t.Run("cold start", func(t *testing.T) { coldStart(t, ctx, s, start) }) {
		t.Fatal("the cold start failed: the other scenarios need a running cluster")
	}
	for _, sc := range []struct {
		name string
		fn   func(*testing.T, context.Context, *scenarioLab)
	}{
		{"crash of the VIP holder", crashOfVIPHolder},
		{"minority partition of the VIP holder", minorityPartition},
		{"graceful stop of the VIP holder", gracefulStop},
		{"apiserver stopped behind the balancer", apiserverStopped},
		{"controller-manager and scheduler work", controllerManagerAndScheduler},
		{"rolling restart under continuous writes", rollingRestart},
		{"wiped disk rejoins", wipedDisk},
		{"full reboot keeps the data", fullReboot},
		{"bad input is refused", badInput},
	} {
		t.Run(sc.name, func(t *testing.T) {
			s.dumpOnFailure(t)
			s.whole(t, ctx)
			sc.fn(t, ctx, s)
		})
	}
}

// coldStart: all masters started at once → one CA, etcd healthy, apiserver
// ready on every master, one holder per role, kubectl via the VIP works.
func coldStart(t *testing.T, ctx context.Context, s *scenarioLab, start time.Time) {
	s.dumpOnFailure(t)
	s.waitReady(t, ctx, 8*time.Minute)
	figure(t, "cluster ready %.1fs after Up started", time.Since(start).Seconds())

	// One CA: every master derived the same CAs from the one cluster key.
	for _, f := range []string{"ca.crt", "etcd-ca.crt", "front-proxy-ca.crt"} {
		var first []byte
		for _, m := range s.Masters() {
			b, err := os.ReadFile(m.Host().Path("/var/lib/masterd/pki/" + f))
			if err != nil {
				t.Errorf("%s: %v", m.Name, err)
				continue
			}
			if first == nil {
				first = b
			} else if !bytes.Equal(b, first) {
				t.Errorf("%s: %s differs from %s's", m.Name, f, s.Masters()[0].Name)
			}
		}
	}
	sts, err := s.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Masters() {
		var et struct {
			Healthy bool
			Members []string
			Error   string
		}
		if err := json.Unmarshal(sts[m.Name].Sections["etcd"], &et); err != nil {
			t.Errorf("%s: etcd status section: %v (%s)", m.Name, err, sts[m.Name].Raw)
			continue
		}
		if !et.Healthy || len(et.Members) != len(s.Masters()) {
			t.Errorf("%s: etcd healthy=%v members=%v error=%q, want healthy with %d members", m.Name, et.Healthy, et.Members, et.Error, len(s.Masters()))
		}
	}
	// Right after the cold start health still settles (apiservers becoming
	// ready move the VIP to a healthy master): wait for one holder per role.
	for _, role := range s.roles() {
		var hs []string
		deadline := time.Now().Add(60 * time.Second)
		for hs = s.Holders(ctx, role); len(hs) != 1 && time.Now().Before(deadline); hs = s.Holders(ctx, role) {
			time.Sleep(500 * time.Millisecond)
		}
		if len(hs) != 1 {
			t.Errorf("role %s: holders %v for a minute, want exactly one", role, hs)
		}
	}
	s.waitReady(t, ctx, 3*time.Minute)
	if !s.KubeEnabled() {
		return
	}
	for _, m := range s.Masters() {
		out, err := s.Kubectl(ctx, "--server", "https://"+m.Addr.String()+":6443", "get", "--raw", "/readyz")
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Errorf("%s: kube-apiserver /readyz = %q (%v)", m.Name, out, err)
		}
	}
	s.kubectl(t, ctx, "create", "configmap", "cold-start", "--from-literal=hello=world")
	if out := s.kubectl(t, ctx, "get", "configmap", "cold-start", "-o", "jsonpath={.data.hello}"); out != "world" {
		t.Errorf("configmap read back through the VIP = %q, want world", out)
	}
}

// crashOfVIPHolder: the holder's link is cut and its PID 1 killed; the VIP
// and the leader-only roles move; kubectl works again; never two holders.
func crashOfVIPHolder(t *testing.T, ctx context.Context, s *scenarioLab) {
	victim := s.vipHolder(t)
	roleBefore := map[string][]string{}
	for _, role := range kubeRoles {
		roleBefore[role] = s.Holders(ctx, role)
	}
	mon, err := s.MonitorVIP(10 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.StartPinger(10 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	// The crashed host's namespace keeps its addresses (its kernel is
	// "hung"), but with its link cut it is not on the wire: sample the others.
	mon.Ignore(victim.Name)
	t0 := time.Now()
	if err := s.Crash(ctx, victim); err != nil {
		t.Fatal(err)
	}
	holder, moved := s.waitVIPOff(t, victim, t0, true, 30*time.Second)
	var apiBack time.Duration
	if s.KubeEnabled() {
		apiBack = s.waitKubectl(t, ctx, t0, 60*time.Second, "get", "--raw", "/readyz")
	}
	time.Sleep(500 * time.Millisecond)
	pr := p.Stop()
	mr := mon.Stop()
	macs, _ := s.MACs()
	if got, err := s.ARPHolders(300 * time.Millisecond); err != nil || len(got) != 1 || got[0] != macs[holder] {
		t.Errorf("ARP answers for the VIP from %v (%v), want only %s's %s", got, err, holder, macs[holder])
	}
	if mr.Dual != 0 {
		t.Errorf("two VIP holders in %d samples: %v", mr.Dual, mr)
	}
	figure(t, "VIP %s -> %s in %.3fs; client ping longest gap %.3fs; kubectl /readyz via VIP back after %s; %v",
		victim.Name, holder, moved.Seconds(), pr.LongestGap.Seconds(), secs(apiBack), mr)
	for _, role := range kubeRoles {
		if !s.KubeEnabled() {
			break
		}
		hs := s.waitRoleOff(t, ctx, role, victim, 60*time.Second)
		figure(t, "role %s: %v -> %v within %.1fs of the crash", role, roleBefore[role], hs, time.Since(t0).Seconds())
	}
}

// minorityPartition: the VIP holder is cut off from the other masters with
// nftables; no role ever has two holders; the majority serves; after healing
// the isolated master rejoins by itself.
func minorityPartition(t *testing.T, ctx context.Context, s *scenarioLab) {
	victim := s.vipHolder(t)
	mon, err := s.MonitorVIP(10 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	rs := s.sampleRoles(ctx)
	p, err := s.StartPinger(10 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	t0 := time.Now()
	if err := s.Partition(ctx, victim); err != nil {
		t.Fatal(err)
	}
	holder, moved := s.waitVIPOff(t, victim, t0, false, 30*time.Second)
	var apiBack time.Duration
	if s.KubeEnabled() {
		apiBack = s.waitKubectl(t, ctx, t0, 60*time.Second, "create", "configmap", "during-partition", "--from-literal=side=majority")
		for _, role := range kubeRoles {
			hs := s.waitRoleOff(t, ctx, role, victim, 60*time.Second)
			figure(t, "role %s on %v %.1fs after the partition", role, hs, time.Since(t0).Seconds())
		}
	} else {
		time.Sleep(5 * time.Second)
	}
	pr := p.Report()
	figure(t, "VIP %s -> %s in %.3fs; client ping longest gap %.3fs; write via VIP after %s",
		victim.Name, holder, moved.Seconds(), pr.LongestGap.Seconds(), secs(apiBack))

	th := time.Now()
	if err := s.Heal(ctx, victim); err != nil {
		t.Fatal(err)
	}
	p.ResetAt(th)
	rejoin := s.waitReady(t, ctx, 3*time.Minute)
	time.Sleep(2 * time.Second)
	pr = p.Stop()
	rounds, dual := rs.Stop()
	mr := mon.Stop()
	if mr.Dual != 0 {
		t.Errorf("two VIP holders in %d samples: %v", mr.Dual, mr)
	}
	if len(dual) > 0 {
		t.Errorf("a role had two holders in a sampled round: %v", dual)
	}
	macs, _ := s.MACs()
	hs, _ := s.VIPHolders()
	if got, err := s.ARPHolders(300 * time.Millisecond); err != nil || len(hs) != 1 || len(got) != 1 || got[0] != macs[hs[0]] {
		t.Errorf("after healing: VIP on %v, ARP answers from %v (%v)", hs, got, err)
	}
	if s.KubeEnabled() {
		if out, err := s.Kubectl(ctx, "--server", "https://"+victim.Addr.String()+":6443", "get", "configmap", "during-partition", "-o", "jsonpath={.data.side}"); err != nil || string(out) != "majority" {
			t.Errorf("the healed master's apiserver does not serve the majority's write: %q %v", out, err)
		}
	}
	figure(t, "healed: cluster ready again %.1fs after healing; client ping longest gap after healing %.3fs (%d outages); %d role-sample rounds, no dual holder; %v",
		rejoin.Seconds(), pr.LongestGap.Seconds(), len(pr.Outages), rounds, mr)
}

// gracefulStop: `systemctl stop masterd` on the holder hands over without a
// failed kubectl request.
func gracefulStop(t *testing.T, ctx context.Context, s *scenarioLab) {
	victim := s.vipHolder(t)
	mon, err := s.MonitorVIP(10 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.StartPinger(10 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var k *kubectlLoop
	if s.KubeEnabled() {
		// A real API read (served from etcd), not /readyz: an apiserver's
		// readiness report may flip for a moment while the stopping master's
		// etcd member leaves, although every request is still served.
		k = s.loopKubectl(ctx, "get", "--raw", "/api/v1/namespaces/default")
	}
	time.Sleep(2 * time.Second)
	t0 := time.Now()
	if err := victim.StopMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(t0)
	holder, moved := s.waitVIPOff(t, victim, t0, false, 10*time.Second)
	time.Sleep(3 * time.Second)
	pr := p.Stop()
	mr := mon.Stop()
	if mr.Dual != 0 {
		t.Errorf("two VIP holders in %d samples: %v", mr.Dual, mr)
	}
	var ok int
	var failures []string
	if k != nil {
		ok, failures = k.Stop()
		if len(failures) > 0 {
			t.Errorf("%d of %d kubectl requests through the VIP failed during the handover: %v", len(failures), ok+len(failures), failures)
		}
	}
	figure(t, "VIP %s -> %s seen %.3fs after stop began (stop took %.3fs); client ping longest gap %.3fs; kubectl %d ok, %d failed; %v",
		victim.Name, holder, moved.Seconds(), stopped.Seconds(), pr.LongestGap.Seconds(), ok, len(failures), mr)
	if err := victim.StartMasterd(ctx); err != nil {
		t.Fatal(err)
	}
}

// controllerManagerAndScheduler: a Deployment gets its ReplicaSet and Pods,
// and the scheduler binds them to a Node created through the API.
func controllerManagerAndScheduler(t *testing.T, ctx context.Context, s *scenarioLab) {
	s.needKube(t)
	node := s.writeManifest(t, "node.yaml", `apiVersion: v1
kind: Node
metadata:
  name: lab-node-1
  labels: {kubernetes.io/hostname: lab-node-1}
status:
  capacity: {cpu: "8", memory: 16Gi, pods: "110"}
  allocatable: {cpu: "8", memory: 16Gi, pods: "110"}
`)
	deploy := s.writeManifest(t, "deploy.yaml", `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      # No kubelet runs: tolerate the not-ready/unreachable taints the node
      # lifecycle controller puts on a node without heartbeats.
      tolerations: [{operator: Exists}]
      containers: [{name: web, image: registry.k8s.io/pause:3.10}]
`)
	t0 := time.Now()
	s.kubectl(t, ctx, "create", "-f", node)
	s.kubectl(t, ctx, "create", "-f", deploy)
	var rsAt, podsAt, boundAt time.Duration
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) && boundAt == 0 {
		if rsAt == 0 {
			if out, err := s.Kubectl(ctx, "get", "rs", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.ownerReferences[0].name}"); err == nil && strings.TrimSpace(string(out)) == "web" {
				rsAt = time.Since(t0)
			}
		}
		out, err := s.Kubectl(ctx, "get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.nodeName}{\"\\n\"}{end}")
		if err == nil {
			last = strings.TrimSpace(string(out))
			lines := strings.Fields(last)
			if len(lines) == 3 && podsAt == 0 {
				podsAt = time.Since(t0)
			}
			bound := 0
			for _, ln := range lines {
				if strings.HasSuffix(ln, "=lab-node-1") {
					bound++
				}
			}
			if bound == 3 {
				boundAt = time.Since(t0)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if rsAt == 0 || podsAt == 0 || boundAt == 0 {
		t.Fatalf("deployment web: replicaset after %v, 3 pods after %v, bound after %v; pods: %q", rsAt, podsAt, boundAt, last)
	}
	figure(t, "ReplicaSet %.1fs, 3 Pods %.1fs, all bound to lab-node-1 %.1fs after the Deployment was created",
		rsAt.Seconds(), podsAt.Seconds(), boundAt.Seconds())
}

// rollingRestart: every master restarted in turn while a client writes
// through the VIP; every acknowledged write is readable afterwards.
func rollingRestart(t *testing.T, ctx context.Context, s *scenarioLab) {
	s.needKube(t)
	var mu sync.Mutex
	var acked []string
	failed := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("roll-%d", i)
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := s.Kubectl(cctx, "create", "configmap", name, "--from-literal=i="+fmt.Sprint(i))
			cancel()
			mu.Lock()
			if err == nil {
				acked = append(acked, name)
			} else {
				failed++
			}
			mu.Unlock()
		}
	}()
	time.Sleep(2 * time.Second)
	for _, m := range s.Masters() {
		t0 := time.Now()
		if _, err := m.Exec(ctx, "systemctl", "restart", "masterd"); err != nil {
			t.Errorf("restart %s: %v", m.Name, err)
		}
		back := s.waitReady(t, ctx, 5*time.Minute)
		figure(t, "%s restarted in %.1fs, cluster ready %.1fs later", m.Name, time.Since(t0).Seconds()-back.Seconds(), back.Seconds())
	}
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	out := s.kubectl(t, ctx, "get", "configmaps", "-o", "name")
	have := map[string]bool{}
	for _, n := range strings.Fields(out) {
		have[strings.TrimPrefix(n, "configmap/")] = true
	}
	var lost []string
	for _, a := range acked {
		if !have[a] {
			lost = append(lost, a)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged writes lost: %v", len(lost), lost)
	}
	if len(acked) == 0 {
		t.Error("no write was acknowledged during the rolling restart")
	}
	figure(t, "%d writes acknowledged (all readable), %d failed (not acknowledged) during the rolling restart", len(acked), failed)
}

// wipedDisk: a master's data directory is removed and it restarts: it
// rejoins etcd as a learner, is promoted and serves again.
func wipedDisk(t *testing.T, ctx context.Context, s *scenarioLab) {
	holder, victim := s.vipHolderAndAnother(t)
	if s.KubeEnabled() {
		s.kubectl(t, ctx, "create", "configmap", "before-wipe", "--from-literal=k=v")
	}
	t0 := time.Now()
	if err := victim.Wipe(ctx); err != nil {
		t.Fatal(err)
	}
	back := s.waitReady(t, ctx, 5*time.Minute)
	j := victim.JournalSince(ctx, t0.Add(-time.Second))
	for _, want := range []string{"etcd member added as learner", "etcd learner promoted to voting member"} {
		if !strings.Contains(j, want) {
			t.Errorf("%s's journal since the wipe lacks %q", victim.Name, want)
		}
	}
	st, err := holder.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var et struct {
		Healthy bool
		Members []string
	}
	_ = json.Unmarshal(st.Sections["etcd"], &et)
	if !et.Healthy || len(et.Members) != len(s.Masters()) || strings.Contains(strings.Join(et.Members, ","), "learner") {
		t.Errorf("etcd after the rejoin (seen by %s): healthy=%v members=%v", holder.Name, et.Healthy, et.Members)
	}
	if s.KubeEnabled() {
		out, err := s.Kubectl(ctx, "--server", "https://"+victim.Addr.String()+":6443", "get", "configmap", "before-wipe", "-o", "jsonpath={.data.k}")
		if err != nil || string(out) != "v" {
			t.Errorf("the wiped master's apiserver does not serve earlier data: %q %v", out, err)
		}
	}
	figure(t, "%s wiped and back (learner, promoted, cluster ready) in %.1fs", victim.Name, back.Seconds())
}

// fullReboot: every master rebooted at once; the cluster returns with its
// data.
func fullReboot(t *testing.T, ctx context.Context, s *scenarioLab) {
	if s.KubeEnabled() {
		s.kubectl(t, ctx, "create", "configmap", "before-reboot", "--from-literal=k=kept")
	}
	t0 := time.Now()
	if err := s.RebootAll(ctx); err != nil {
		t.Fatal(err)
	}
	booted := time.Since(t0)
	back := s.waitReady(t, ctx, 8*time.Minute)
	if s.KubeEnabled() {
		if out := s.kubectl(t, ctx, "get", "configmap", "before-reboot", "-o", "jsonpath={.data.k}"); out != "kept" {
			t.Errorf("configmap after the reboot = %q, want kept", out)
		}
	}
	figure(t, "hosts back in %.1fs, cluster ready %.1fs after that", booted.Seconds(), back.Seconds())
}

// badInput: a corrupt masterd.yaml fails the unit with the config error in
// the journal; a master with a wrong cluster key is refused by the others.
func badInput(t *testing.T, ctx context.Context, s *scenarioLab) {
	m := s.Masters()[len(s.Masters())-1]
	cfgPath := m.Host().Path("/etc/masterd/masterd.yaml")
	orig, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("corrupt masterd.yaml", func(t *testing.T) {
		defer func() {
			if err := os.WriteFile(cfgPath, orig, 0o644); err != nil {
				t.Fatal(err)
			}
		}()
		bad := append(append([]byte{}, orig...), []byte("\nvip: [unclosed\n")...)
		if err := os.WriteFile(cfgPath, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		_, _ = m.Exec(ctx, "systemctl", "restart", "masterd")
		state := ""
		for time.Since(t0) < 60*time.Second {
			out, _ := m.Exec(ctx, "systemctl", "is-failed", "masterd")
			if state = strings.TrimSpace(string(out)); state == "failed" {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if state != "failed" {
			t.Errorf("masterd with a corrupt config: unit state %q, want failed", state)
		}
		out, _ := m.Exec(ctx, "systemctl", "show", "-p", "ExecMainStatus", "masterd")
		if strings.TrimSpace(string(out)) != "ExecMainStatus=2" {
			t.Errorf("exit status %q, want ExecMainStatus=2 (configuration error, not restarted)", strings.TrimSpace(string(out)))
		}
		j := m.JournalSince(ctx, t0.Add(-time.Second))
		if !strings.Contains(j, "masterd.yaml") || !strings.Contains(j, "vip") {
			t.Errorf("journal does not name the config error (file and key):\n%s", j)
		}
		var cfgErr string
		for _, line := range strings.Split(j, "\n") {
			if strings.Contains(line, "masterd.yaml") && cfgErr == "" {
				cfgErr = line
			}
		}
		figure(t, "unit failed with exit 2, not restarted; journal: %q", cfgErr)
	})
	t.Run("wrong cluster key", func(t *testing.T) {
		keyPath := m.Host().Path("/etc/masterd/cluster.key")
		key, err := os.ReadFile(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		other := t.TempDir()
		if out, err := runCmd(ctx, s.Masterd(), "init", "--dir", other); err != nil {
			t.Fatalf("masterd init: %v %s", err, out)
		}
		wrong, err := os.ReadFile(filepath.Join(other, "cluster.key"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = os.WriteFile(keyPath, key, 0o600)
			// Its certificates were derived from the wrong key: Ensure
			// rewrites those signed by another CA at the next start.
			_, _ = m.Exec(ctx, "systemctl", "reset-failed", "masterd")
			_, _ = m.Exec(ctx, "systemctl", "restart", "--no-block", "masterd")
			cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			if err := s.WaitReady(cctx); err != nil {
				t.Errorf("with its key restored %s did not rejoin: %v", m.Name, err)
			}
		}()
		if err := m.StopMasterd(ctx); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyPath, wrong, 0o600); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := m.StartMasterd(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Second)
		st, err := m.Status(ctx)
		if err == nil && st.Ready {
			t.Errorf("%s with a wrong cluster key became ready", m.Name)
		}
		for _, o := range s.Masters() {
			if o == m {
				continue
			}
			ost, err := o.Status(ctx)
			if err != nil || !ost.Ready {
				t.Errorf("%s not ready while %s has a wrong key: %v", o.Name, m.Name, err)
			}
		}
		hs, _ := s.VIPHolders()
		if len(hs) != 1 || hs[0] == m.Name {
			t.Errorf("VIP holders %v while %s has a wrong key, want one of the others", hs, m.Name)
		}
		j := m.JournalSince(ctx, t0.Add(-time.Second))
		why := ""
		for _, w := range []string{"decrypt", "unknown authority", "cluster key", "bad certificate", "refused"} {
			if strings.Contains(strings.ToLower(j), w) {
				why = w
				break
			}
		}
		if why == "" {
			t.Errorf("%s's journal does not say why it is refused:\n%s", m.Name, lastLines(j, 30))
		}
		figure(t, "%s refused, its journal says %q", m.Name, why)
	})
}

// secs formats a measured duration, "n/a" when it was not measured (no kube).
func secs(d time.Duration) string {
	if d == 0 {
		return "n/a (no kube)"
	}
	return fmt.Sprintf("%.3fs", d.Seconds())
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
