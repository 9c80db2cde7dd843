package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// daemon is one masterd process of a loopback cluster.
type daemon struct {
	name, addr, metrics string
	cmd                 *exec.Cmd
	stderr              *lockedBuffer
	exited              chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// roleView is what /status says about one role.
type roleView struct {
	Holder string
	Term   uint64
	Leader bool
}

func (d *daemon) roles() (map[string]roleView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+d.metrics+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st struct {
		Sections struct {
			Election struct {
				Roles map[string]roleView `json:"roles"`
			} `json:"election"`
		} `json:"sections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return st.Sections.Election.Roles, nil
}

// Three real masterd processes on 127.0.0.1-3 (embedded etcd with mutual TLS,
// encrypted gossip, the elections; no VIP, no kube units) elect exactly one
// leader per role; a SIGTERMed leader hands its roles to another master.
func TestThreeDaemonsElectOneLeaderPerRoleAndHandOverOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three daemons")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	if out, err := exec.Command(bin, "init", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("masterd init: %v\n%s", err, out)
	}
	var ds []*daemon
	for i := 1; i <= 3; i++ {
		ds = append(ds, &daemon{name: fmt.Sprintf("m%d", i), addr: fmt.Sprintf("127.0.0.%d", i), metrics: fmt.Sprintf("127.0.0.%d:19990", i)})
	}
	var peers strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&peers, "  - {name: %s, address: %s}\n", d.name, d.addr)
	}
	for _, d := range ds {
		cfg := filepath.Join(dir, d.name+".yaml")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`name: %s
peers:
%sclusterKeyFile: %s/cluster.key
dataDir: %s/%s
gossip: {port: 17946}
etcd: {clientPort: 12379, peerPort: 12380}
vip: {enabled: false}
kubernetes: {mode: none}
roles:
  scheduler: {leaseDuration: 7s, renewDeadline: 2s, retryPeriod: 500ms}
  controllerManager: {leaseDuration: 7s, renewDeadline: 2s, retryPeriod: 500ms}
metrics: {listen: "%s"}
`, d.name, peers.String(), dir, dir, d.name, d.metrics)), 0o644)
		d.stderr = &lockedBuffer{}
		d.cmd = exec.Command(bin, "run", "--config", cfg, "--log-level", "info")
		d.cmd.Stderr = d.stderr
		d.exited = make(chan error, 1)
	}
	// Every configuration passes run --check (lo's 127.0.0.1/8 makes each
	// master's 127.x address this host's).
	for _, d := range ds {
		cfg := filepath.Join(dir, d.name+".yaml")
		if out, err := exec.Command(bin, "run", "--check", "--config", cfg).CombinedOutput(); err != nil {
			t.Fatalf("config of %s: %s", d.name, out)
		}
	}
	for _, d := range ds {
		if err := d.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func(d *daemon) { d.exited <- d.cmd.Wait() }(d)
	}
	t.Cleanup(func() {
		for _, d := range ds {
			if d.cmd.ProcessState == nil {
				d.cmd.Process.Kill()
				<-d.exited
			}
		}
		if t.Failed() {
			for _, d := range ds {
				t.Logf("--- %s stderr (tail):\n%s", d.name, tail(d.stderr.String(), 40))
			}
		}
	})

	// leaders returns, per role, the daemons that say they lead it.
	leaders := func(live []*daemon) map[string][]string {
		out := map[string][]string{}
		for _, d := range live {
			roles, err := d.roles()
			if err != nil {
				continue
			}
			for role, v := range roles {
				if v.Leader {
					out[role] = append(out[role], d.name)
				}
			}
		}
		return out
	}
	waitOneLeaderEach := func(live []*daemon, what string) map[string][]string {
		t.Helper()
		deadline := time.Now().Add(120 * time.Second)
		for {
			l := leaders(live)
			if len(l["scheduler"]) == 1 && len(l["controller-manager"]) == 1 {
				return l
			}
			for role, who := range l {
				if len(who) > 1 {
					t.Fatalf("%s: role %s has %d leaders: %v", what, role, len(who), who)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no single leader per role: %v", what, l)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	l := waitOneLeaderEach(ds, "cold start")
	t.Logf("leaders after cold start: %v", l)

	// masterd status renders the cluster from the local agent.
	out, err := exec.Command(bin, "status", "--addr", ds[0].metrics).CombinedOutput()
	if err != nil {
		t.Fatalf("masterd status: %v\n%s", err, out)
	}
	for _, want := range []string{"node m1  ready", "ROLE", "scheduler", "controller-manager", "MEMBER", "m3", "etcd: member", "certificates:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("masterd status lacks %q:\n%s", want, out)
		}
	}
	t.Logf("masterd status:\n%s", out)
	// masterd etcd talks to the local member with its client certificate.
	cfg1 := filepath.Join(dir, "m1.yaml")
	if out, err := exec.Command(bin, "etcd", "members", "--config", cfg1).CombinedOutput(); err != nil || strings.Count(string(out), "https://127.0.0.") != 3 {
		t.Errorf("masterd etcd members: %v\n%s", err, out)
	}
	snap := filepath.Join(dir, "snap.db")
	if out, err := exec.Command(bin, "etcd", "snapshot", "save", "--config", cfg1, snap).CombinedOutput(); err != nil {
		t.Errorf("masterd etcd snapshot save: %v\n%s", err, out)
	} else if fi, err := os.Stat(snap); err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot file: %v %v", fi, err)
	}

	// SIGTERM the scheduler leader: graceful stop hands its roles over.
	var victim *daemon
	var rest []*daemon
	for _, d := range ds {
		if d.name == l["scheduler"][0] {
			victim = d
		} else {
			rest = append(rest, d)
		}
	}
	stopAt := time.Now()
	victim.cmd.Process.Signal(syscall.SIGTERM)
	l2 := waitOneLeaderEach(rest, "after SIGTERM of "+victim.name)
	t.Logf("leaders %v after SIGTERM of %s, %.2fs", l2, victim.name, time.Since(stopAt).Seconds())
	select {
	case err := <-victim.exited:
		if err != nil {
			t.Errorf("%s exit after SIGTERM: %v", victim.name, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not exit after SIGTERM", victim.name)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
