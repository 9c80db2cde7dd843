package vip

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/masterd/masterd/bench/report"
	"github.com/masterd/masterd/integration/lab"
)

// Stacks compared by the footprint.
const (
	stackMasterd = "masterd"
	stackClassic = "etcd+keepalived+haproxy"
)

type unitRef struct{ stack, component, unit string }

// unitSnapshot lists pid, VmRSS (kB) and utime+stime (ticks) of every process
// of the unit named by $1, inside a lab host.
const unitSnapshot = `cg=$(systemctl show -p ControlGroup --value "$1")
[ -n "$cg" ] || { echo "unit $1 has no cgroup"; exit 1; }
for p in $(cat "/sys/fs/cgroup$cg/cgroup.procs"); do
  r=$(awk '/^VmRSS:/{print $2}' /proc/$p/status 2>/dev/null)
  c=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | awk '{print $12+$13}')
  echo "$p ${r:-0} ${c:-0}"
done`

type procUse struct{ rssKB, ticks int64 }

func snapshot(ctx context.Context, m *lab.Master, unit string) (map[string]procUse, error) {
	out, err := m.Exec(ctx, "sh", "-c", unitSnapshot, "sh", unit)
	if err != nil {
		return nil, err
	}
	res := map[string]procUse{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		r, _ := strconv.ParseInt(f[1], 10, 64)
		c, _ := strconv.ParseInt(f[2], 10, 64)
		res[f[0]] = procUse{r, c}
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("unit %s has no processes", unit)
	}
	return res, nil
}

// measure returns the RSS and idle CPU of each unit on every master, over
// window (all hosts and units at once).
func measure(ctx context.Context, l *lab.Lab, units []unitRef, window time.Duration) []report.Footprint {
	var mu sync.Mutex
	var out []report.Footprint
	var wg sync.WaitGroup
	// Clock ticks per second of /proc/<pid>/stat (USER_HZ); 100 on Linux.
	const hz = 100
	for _, m := range l.Masters() {
		for _, u := range units {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := report.Footprint{Stack: u.stack, Component: u.component, Host: m.Name, Window: window}
				a, err := snapshot(ctx, m, u.unit)
				start := time.Now()
				if err == nil {
					sleepCtx(ctx, window)
					var b map[string]procUse
					b, err = snapshot(ctx, m, u.unit)
					el := time.Since(start)
					f.Window = el.Round(100 * time.Millisecond)
					if err == nil {
						var ticks int64
						for pid, pb := range b {
							f.RSS += pb.rssKB * 1024
							if pa, ok := a[pid]; ok {
								ticks += pb.ticks - pa.ticks
							} else {
								ticks += pb.ticks
							}
						}
						f.CPU = time.Duration(float64(ticks) * float64(time.Second) / hz / el.Seconds())
					}
				}
				if err != nil {
					f.Err = err.Error()
				}
				mu.Lock()
				out = append(out, f)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	order := map[string]int{}
	for i, u := range units {
		order[u.component] = i
	}
	sortFootprint(out, order)
	return out
}

func sortFootprint(fs []report.Footprint, order map[string]int) {
	less := func(a, b report.Footprint) bool {
		if order[a.Component] != order[b.Component] {
			return order[a.Component] < order[b.Component]
		}
		return a.Host < b.Host
	}
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && less(fs[j], fs[j-1]); j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
}

// buildEtcd builds bench/etcd/etcdserver (the etcd server of the version
// masterd embeds) into dir.
func buildEtcd(ctx context.Context, dir string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "bench-etcd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./bench/etcd/etcdserver")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("vip bench: build etcd: %w: %s", err, strings.TrimSpace(string(b)))
	}
	return out, nil
}

func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("vip bench: no go.mod above the working directory")
		}
		d = filepath.Dir(d)
	}
}

// startClassic starts a three-member etcd (plain HTTP on 12379/12380) in
// every master, beside the keepalived and haproxy (haproxyConf) the
// keepalived systems already run.
func startClassic(ctx context.Context, l *lab.Lab, etcdBin string) error {
	bin, err := os.ReadFile(etcdBin)
	if err != nil {
		return fmt.Errorf("vip bench: %w", err)
	}
	var cluster []string
	for _, m := range l.Masters() {
		cluster = append(cluster, fmt.Sprintf("%s=http://%s:12380", m.Name, m.Addr))
	}
	errs := make(chan error, len(l.Masters()))
	for _, m := range l.Masters() {
		go func() {
			h := m.Host()
			if err := h.WriteFile("/usr/local/bin/bench-etcd", bin, 0o755); err != nil {
				errs <- err
				return
			}
			_, _ = m.Exec(ctx, "rm", "-rf", "/var/lib/bench-etcd")
			a := m.Addr.String()
			errs <- startUnit(ctx, m, etcdUnit, nil, "/usr/local/bin/bench-etcd", "--name", m.Name,
				"--data-dir", "/var/lib/bench-etcd",
				"--listen-peer-urls", "http://"+a+":12380", "--initial-advertise-peer-urls", "http://"+a+":12380",
				"--listen-client-urls", "http://"+a+":12379", "--advertise-client-urls", "http://"+a+":12379",
				"--initial-cluster", strings.Join(cluster, ","), "--initial-cluster-state", "new",
				"--heartbeat-interval", "100", "--election-timeout", "1000")
		}()
	}
	var all []error
	for range l.Masters() {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	if len(all) > 0 {
		return fmt.Errorf("vip bench: start etcd: %v", all)
	}
	return nil
}

// stopClassic stops startClassic's etcd (haproxy stays for the trials).
func stopClassic(ctx context.Context, l *lab.Lab) {
	for _, m := range l.Masters() {
		stopUnit(ctx, m, etcdUnit)
		_, _ = m.Exec(ctx, "rm", "-rf", "/var/lib/bench-etcd")
	}
}
