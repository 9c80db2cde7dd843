package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testOptions returns options for a lab of n masters without kube units, or
// skips the test when it cannot run here.
func testOptions(t *testing.T, n int, suffix string) Options {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lab tests boot systemd in network namespaces and need root")
	}
	o := DefaultOptions()
	o.Masters = n
	o.Prefix = fmt.Sprintf("labt%d-%s", os.Getpid(), suffix)
	o.KubeBinDir = ""
	if d := os.Getenv("MASTERD_DEB"); d != "" {
		o.Deb = d
	}
	if o.Deb == "" {
		t.Skip("no dist/masterd_*.deb: run `make package` (or set MASTERD_DEB)")
	}
	o.Progress = testWriter{t}
	return o
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func up(t *testing.T, ctx context.Context, o Options) *Lab {
	t.Helper()
	l, err := Up(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range l.Masters() {
				t.Logf("%s journal:\n%s", m.Name, m.Journal(context.Background(), 40))
			}
		}
		if err := l.Down(); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	return l
}

// leftovers lists what a lab with prefix left on the machine.
func leftovers(prefix string) []string {
	var out []string
	for _, pat := range []string{"/run/netns/" + prefix + "-*", stateRoot + "/" + prefix + "*", cgroupRoot + "/masterd-lab-" + prefix + "-*"} {
		ms, _ := filepath.Glob(pat)
		out = append(out, ms...)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, stateRoot+"/"+prefix+"-") {
			out = append(out, line)
		}
	}
	return out
}

func TestUpInstallsAndEnablesMasterdOnEveryHostAndDownLeavesNothing(t *testing.T) {
	o := testOptions(t, 3, "up")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := up(t, ctx, o)

	for _, m := range l.Masters() {
		out, err := m.Exec(ctx, "systemctl", "is-enabled", "masterd")
		if err != nil || strings.TrimSpace(string(out)) != "enabled" {
			t.Errorf("%s: masterd is-enabled = %q (%v)", m.Name, out, err)
		}
		out, err = m.Exec(ctx, "dpkg-query", "-W", "-f=${Status}", "masterd")
		if err != nil || !strings.Contains(string(out), "install ok installed") {
			t.Errorf("%s: dpkg status %q (%v)", m.Name, out, err)
		}
		out, err = m.Exec(ctx, "stat", "-c", "%a", "/etc/masterd/cluster.key")
		if err != nil || strings.TrimSpace(string(out)) != "600" {
			t.Errorf("%s: cluster.key mode %q (%v)", m.Name, out, err)
		}
		out, err = m.Exec(ctx, "masterd", "run", "--check", "--config", "/etc/masterd/masterd.yaml")
		if err != nil {
			t.Errorf("%s: generated config rejected: %v\n%s", m.Name, err, out)
		}
	}
	// One secret for all.
	var keys []string
	for _, m := range l.Masters() {
		b, err := os.ReadFile(m.Host().Path("/etc/masterd/cluster.key"))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, string(b))
	}
	for i := range keys {
		if keys[i] != keys[0] {
			t.Errorf("%s has another cluster.key than %s", l.Masters()[i].Name, l.Masters()[0].Name)
		}
	}
	// Every master answers its status (the agent's HTTP endpoint is up).
	deadline := time.Now().Add(60 * time.Second)
	for _, m := range l.Masters() {
		for {
			st, err := m.Status(ctx)
			if err == nil {
				if st.Node != m.Name {
					t.Errorf("%s: status node = %q", m.Name, st.Node)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: status: %v", m.Name, err)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Masters reach each other over the bridge; the client reaches them.
	if _, err := l.Masters()[0].Exec(ctx, "ping", "-c1", "-W2", l.Masters()[1].Addr.String()); err != nil {
		t.Errorf("m1 -> m2: %v", err)
	}
	if _, err := l.ClientExec(ctx, "ping", "-c1", "-W2", l.Masters()[2].Addr.String()); err != nil {
		t.Errorf("client -> m3: %v", err)
	}

	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	if err := l.Down(); err != nil {
		t.Errorf("second down: %v", err)
	}
	if left := leftovers(o.Prefix); len(left) > 0 {
		t.Errorf("left behind after Down: %q", left)
	}
}
