package vip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/masterd/masterd/bench/report"
	"github.com/masterd/masterd/integration/lab"
	"github.com/masterd/masterd/pki"
	"github.com/masterd/masterd/units"
)

// Stacks compared by the footprint.
const (
	stackMasterd = "masterd"
	stackClassic = "etcd+keepalived+haproxy"
	// kubeOf prefixes the stack of a kube component's row: measured to show
	// that both stacks served the same control plane, never counted.
	kubeOf = "kube components of "
)

// The classic stack's own kube control plane, as transient units.
const (
	classicAPIServerUnit  = "bench-kube-apiserver"
	classicSchedulerUnit  = "bench-kube-scheduler"
	classicCtrlMgrUnit    = "bench-kube-controller-manager"
	classicEtcdClientPort = 12379
	classicEtcdPeerPort   = 12380
	// masterdPKIDir is the lab's dataDir/pki (integration/lab's masterd.yaml).
	masterdPKIDir = "/var/lib/masterd/pki"
)

// footprintSettle is how long a stack runs before its footprint is
// measured: the classic control plane starts on an empty etcd (the
// apiserver's bootstrap objects, the controller-manager's service
// accounts), masterd's right after the lab's boot; both settle first.
const footprintSettle = 30 * time.Second

type unitRef struct{ stack, component, unit string }

// kubeRefs are the kube components of stack, run as the named units.
func kubeRefs(stack, apiserver, scheduler, controllerManager string) []unitRef {
	return []unitRef{
		{kubeOf + stack, "kube-apiserver", apiserver},
		{kubeOf + stack, "kube-scheduler", scheduler},
		{kubeOf + stack, "kube-controller-manager", controllerManager},
	}
}

// unitSnapshot lists pid, VmRSS (kB) and utime+stime (ticks) of every process
// of the unit named by $1, inside a lab host, after the host's uptime ("t
// <seconds>") read right before the processes: the CPU window is measured
// between the two reads, not around the two execs (which took up to 5 s
// on a loaded machine).
const unitSnapshot = `cg=$(systemctl show -p ControlGroup --value "$1")
[ -n "$cg" ] || { echo "unit $1 has no cgroup"; exit 1; }
read up _ < /proc/uptime; echo "t $up"
for p in $(cat "/sys/fs/cgroup$cg/cgroup.procs"); do
  r=$(awk '/^VmRSS:/{print $2}' /proc/$p/status 2>/dev/null)
  c=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | awk '{print $12+$13}')
  echo "$p ${r:-0} ${c:-0}"
done`

type procUse struct{ rssKB, ticks int64 }

// unitUse is one snapshot of a unit's processes, at host uptime at (0:
// unknown).
type unitUse struct {
	procs map[string]procUse
	at    time.Duration
}

func snapshot(ctx context.Context, m *lab.Master, unit string) (unitUse, error) {
	out, err := m.Exec(ctx, "sh", "-c", unitSnapshot, "sh", unit)
	if err != nil {
		return unitUse{}, err
	}
	res := parseSnapshot(string(out))
	if len(res.procs) == 0 {
		return unitUse{}, fmt.Errorf("unit %s has no processes", unit)
	}
	return res, nil
}

// parseSnapshot reads unitSnapshot's lines: "t <uptime seconds>", then
// "pid rss_kB ticks".
func parseSnapshot(out string) unitUse {
	res := unitUse{procs: map[string]procUse{}}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "t" {
			if sec, err := strconv.ParseFloat(f[1], 64); err == nil && sec > 0 {
				res.at = time.Duration(sec * float64(time.Second))
			}
			continue
		}
		if len(f) != 3 {
			continue
		}
		r, err1 := strconv.ParseInt(f[1], 10, 64)
		c, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		res.procs[f[0]] = procUse{r, c}
	}
	return res
}

// elapsed is the time between snapshots a and b: by the host's uptime when
// both have it, else wall, the time around them.
func elapsed(a, b unitUse, wall time.Duration) time.Duration {
	if a.at > 0 && b.at > a.at {
		return b.at - a.at
	}
	return wall
}

// usage is the RSS of b and the CPU per second of wall time el between
// snapshots a and b; a process not in a started during the window and
// counts whole.
func usage(a, b map[string]procUse, el time.Duration) (rss int64, cpu time.Duration) {
	// Clock ticks per second of /proc/<pid>/stat (USER_HZ); 100 on Linux.
	const hz = 100
	var ticks int64
	for pid, pb := range b {
		rss += pb.rssKB * 1024
		if pa, ok := a[pid]; ok {
			ticks += pb.ticks - pa.ticks
		} else {
			ticks += pb.ticks
		}
	}
	if el <= 0 {
		return rss, 0
	}
	return rss, time.Duration(float64(ticks) * float64(time.Second) / hz / el.Seconds())
}

// measure returns the RSS and idle CPU of each unit on every master, over
// window (all hosts and units at once). Rows of kube components (kubeRefs)
// whose unit does not run on a host are left out: masterd runs the
// scheduler and the controller-manager on their role's holder only.
func measure(ctx context.Context, l *lab.Lab, refs []unitRef, window time.Duration) []report.Footprint {
	var mu sync.Mutex
	var out []report.Footprint
	var wg sync.WaitGroup
	for _, m := range l.Masters() {
		for _, u := range refs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := report.Footprint{Stack: u.stack, Component: u.component, Host: m.Name, Window: window}
				start := time.Now()
				a, err := snapshot(ctx, m, u.unit)
				if err == nil {
					sleepCtx(ctx, window)
					var b unitUse
					b, err = snapshot(ctx, m, u.unit)
					if err == nil {
						el := elapsed(a, b, time.Since(start))
						f.Window = el.Round(100 * time.Millisecond)
						f.RSS, f.CPU = usage(a.procs, b.procs, el)
					}
				}
				if err != nil {
					if strings.HasPrefix(u.stack, kubeOf) {
						return
					}
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
	for i, u := range refs {
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

// splitKube separates the kube components' rows from the stack's and says
// what the kube components used, for a note: per component the number of
// instances, CPU per instance (mean) and RSS per instance (mean).
func splitKube(rows []report.Footprint) (counted []report.Footprint, note string) {
	type agg struct {
		hosts []string
		cpu   time.Duration
		rss   int64
	}
	var stack string
	var order []string
	aggs := map[string]*agg{}
	for _, f := range rows {
		if !strings.HasPrefix(f.Stack, kubeOf) {
			counted = append(counted, f)
			continue
		}
		stack = strings.TrimPrefix(f.Stack, kubeOf)
		a := aggs[f.Component]
		if a == nil {
			a = &agg{}
			aggs[f.Component] = a
			order = append(order, f.Component)
		}
		a.hosts = append(a.hosts, f.Host)
		a.cpu += f.CPU
		a.rss += f.RSS
	}
	if len(order) == 0 {
		return counted, ""
	}
	var parts []string
	for _, c := range order {
		a := aggs[c]
		n := len(a.hosts)
		parts = append(parts, fmt.Sprintf("%s ×%d (%s) %.1f ms/s and %.0f MiB each",
			c, n, strings.Join(a.hosts, ", "), float64(a.cpu)/float64(n)/float64(time.Millisecond), float64(a.rss)/float64(n)/(1<<20)))
	}
	return counted, fmt.Sprintf("%sthe kube components %s served, not counted: %s.", report.FootprintNotePrefix, stack, strings.Join(parts, "; "))
}

// measureMasterd measures the masterd unit (etcd embedded) on every master
// after footprintSettle, and masterd's kube units for the note.
func measureMasterd(ctx context.Context, l *lab.Lab, window time.Duration) ([]report.Footprint, []string) {
	sleepCtx(ctx, footprintSettle)
	refs := []unitRef{{stackMasterd, "masterd (etcd embedded)", "masterd"}}
	if l.KubeEnabled() {
		refs = append(refs, kubeRefs(stackMasterd, units.APIServerUnit, units.SchedulerUnit, units.ControllerManagerUnit)...)
	}
	rows, note := splitKube(measure(ctx, l, refs, window))
	if note == "" {
		return rows, nil
	}
	return rows, []string{note}
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

// etcdTLS is the standalone etcd's certificates: masterd's own etcd server
// and peer certificates (they name the master's address; ports are not in
// a certificate), so both etcds do the same TLS work.
type etcdTLS struct {
	CA, ServerCert, ServerKey, PeerCert, PeerKey string
}

func masterdEtcdTLS() etcdTLS {
	f := pki.FilesIn(masterdPKIDir)
	return etcdTLS{CA: f.EtcdCA, ServerCert: f.EtcdServer.Cert, ServerKey: f.EtcdServer.Key, PeerCert: f.EtcdPeer.Cert, PeerKey: f.EtcdPeer.Key}
}

// classicEtcdArgs is the standalone etcd's command line for member name at
// addr: the settings masterd gives its embedded member
// (etcdembed.embedConfig and etcdembed.DefaultConfig: heartbeat 100 ms,
// election 1 s, quota 8 GiB, periodic compaction 1 h, corruption checks,
// basic metrics, no gRPC gateway, client and peer mutual TLS, clients on
// the address and 127.0.0.1). tls nil: plain HTTP.
func classicEtcdArgs(name string, addr netip.Addr, initialCluster string, tls *etcdTLS) []string {
	scheme := "http"
	if tls != nil {
		scheme = "https"
	}
	a := addr.String()
	peer := fmt.Sprintf("%s://%s:%d", scheme, a, classicEtcdPeerPort)
	client := fmt.Sprintf("%s://%s:%d", scheme, a, classicEtcdClientPort)
	args := []string{"--name", name, "--data-dir", "/var/lib/bench-etcd",
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--listen-client-urls", client + fmt.Sprintf(",%s://127.0.0.1:%d", scheme, classicEtcdClientPort),
		"--advertise-client-urls", client,
		"--initial-cluster", initialCluster, "--initial-cluster-state", "new", "--initial-cluster-token", "bench-classic",
		"--heartbeat-interval", "100", "--election-timeout", "1000",
		"--quota-backend-bytes", strconv.FormatInt(8<<30, 10),
		"--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1h",
		"--feature-gates", "InitialCorruptCheck=true,CompactHashCheck=true",
		"--corrupt-check-time", "10m", "--compact-hash-check-time", "1m",
		"--metrics", "basic", "--enable-grpc-gateway=false", "--max-learners", "1"}
	if tls != nil {
		args = append(args,
			"--cert-file", tls.ServerCert, "--key-file", tls.ServerKey, "--trusted-ca-file", tls.CA, "--client-cert-auth",
			"--peer-cert-file", tls.PeerCert, "--peer-key-file", tls.PeerKey, "--peer-trusted-ca-file", tls.CA, "--peer-client-cert-auth")
	}
	return args
}

// classicAPIServerArgs turns masterd's kube-apiserver command line into the
// classic stack's: the same binary, flags and certificates, with etcd at
// etcdURL instead of masterd's member, and, when masterd signed service
// account tokens (--service-account-signing-endpoint, a socket masterd
// serves), the key files kubeadm's apiserver signs with (saPub, saKey).
func classicAPIServerArgs(argv []string, etcdURL, saPub, saKey string) []string {
	out := make([]string, 0, len(argv)+1)
	for i, a := range argv {
		name, _, _ := strings.Cut(a, "=")
		switch {
		case i == 0:
			out = append(out, a)
		case name == "--etcd-servers":
			out = append(out, "--etcd-servers="+etcdURL)
		case name == "--service-account-signing-endpoint":
			out = append(out, "--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey)
		default:
			out = append(out, a)
		}
	}
	return out
}

// flagValue returns the value of --name=value in argv.
func flagValue(argv []string, name string) (string, bool) {
	for _, a := range argv[min(1, len(argv)):] {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// unitArgv is the command line of the main process of unit in m; nil when
// the unit has no main process there.
func unitArgv(ctx context.Context, m *lab.Master, unit string) ([]string, error) {
	const script = `p=$(systemctl show -p MainPID --value "$1")
[ -n "$p" ] && [ "$p" != 0 ] || exit 0
cat /proc/$p/cmdline`
	out, err := m.Exec(ctx, "sh", "-c", script, "sh", unit)
	if err != nil {
		return nil, fmt.Errorf("%s: command line of %s: %w", m.Name, unit, err)
	}
	return splitCmdline(string(out)), nil
}

// splitCmdline splits /proc/<pid>/cmdline (NUL-terminated arguments).
func splitCmdline(s string) []string {
	s = strings.TrimSuffix(s, "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// classicPlane is the control plane masterd ran, to be run again by the
// classic stack: the apiserver's command line on every master, and the
// scheduler and the controller-manager on the master that ran each.
type classicPlane struct {
	apiserver map[string][]string // by master name
	leaders   []classicLeader
}

type classicLeader struct {
	master *lab.Master
	unit   string
	argv   []string
}

// readPlane reads the command lines of masterd's kube units in every master.
func readPlane(ctx context.Context, l *lab.Lab) (*classicPlane, error) {
	p := &classicPlane{apiserver: map[string][]string{}}
	for _, m := range l.Masters() {
		argv, err := unitArgv(ctx, m, units.APIServerUnit)
		if err != nil {
			return nil, err
		}
		if len(argv) == 0 {
			return nil, fmt.Errorf("%s: %s is not running", m.Name, units.APIServerUnit)
		}
		p.apiserver[m.Name] = argv
		for unit, as := range map[string]string{units.SchedulerUnit: classicSchedulerUnit, units.ControllerManagerUnit: classicCtrlMgrUnit} {
			argv, err := unitArgv(ctx, m, unit)
			if err != nil {
				return nil, err
			}
			if len(argv) > 0 {
				p.leaders = append(p.leaders, classicLeader{m, as, argv})
			}
		}
	}
	if len(p.leaders) != 2 {
		return nil, fmt.Errorf("want one kube-scheduler and one kube-controller-manager running, found %d of them", len(p.leaders))
	}
	return p, nil
}

// startClassic replaces masterd on every master by the classic stack for
// the footprint: masterd stopped (with its kube units), a three-member
// standalone etcd (TLS with masterd's certificates when they are there),
// and with the kube binaries the same control plane masterd ran, pointed at
// it: kube-apiserver on every master, kube-scheduler and
// kube-controller-manager on the masters that ran them. keepalived and
// haproxy (haproxyConf, /readyz checks of every apiserver) run already.
// stopClassic undoes it, on every path.
func startClassic(ctx context.Context, l *lab.Lab, etcdBin string, progress func(string, ...any)) (notes []string, err error) {
	bin, err := os.ReadFile(etcdBin)
	if err != nil {
		return nil, fmt.Errorf("vip bench: %w", err)
	}
	var plane *classicPlane
	if l.KubeEnabled() {
		// masterd restarted for the switch: its roles' holders start
		// their units once the roles are theirs.
		deadline := time.Now().Add(3 * time.Minute)
		for {
			plane, err = readPlane(ctx, l)
			if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			sleepCtx(ctx, 2*time.Second)
		}
		if err != nil {
			return nil, fmt.Errorf("vip bench: masterd's control plane: %w", err)
		}
	}
	tls := masterdEtcdTLS()
	useTLS := true
	for _, m := range l.Masters() {
		for _, f := range []string{tls.CA, tls.ServerCert, tls.ServerKey, tls.PeerCert, tls.PeerKey} {
			if _, err := os.Stat(m.Host().Path(f)); err != nil {
				useTLS = false
			}
		}
	}
	scheme := "https"
	if !useTLS {
		scheme = "http"
		notes = append(notes, report.FootprintNotePrefix+"the standalone etcd ran without TLS: masterd's etcd certificates were not found in "+masterdPKIDir+".")
	}
	var cluster []string
	for _, m := range l.Masters() {
		cluster = append(cluster, fmt.Sprintf("%s=%s://%s:%d", m.Name, scheme, m.Addr, classicEtcdPeerPort))
	}

	progress("footprint: stopping masterd (and its kube units) on every master")
	if err := eachMaster(l, func(m *lab.Master) error {
		if err := m.StopMasterd(ctx); err != nil {
			return fmt.Errorf("%s: stop masterd: %w", m.Name, err)
		}
		_, _ = m.Exec(ctx, "systemctl", "stop", units.SchedulerUnit, units.ControllerManagerUnit, units.APIServerUnit)
		return nil
	}); err != nil {
		return notes, fmt.Errorf("vip bench: %w", err)
	}
	progress("footprint: starting the standalone etcd%s", map[bool]string{true: " and the kube control plane on it", false: ""}[plane != nil])
	err = eachMaster(l, func(m *lab.Master) error {
		if err := m.Host().WriteFile("/usr/local/bin/bench-etcd", bin, 0o755); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		_, _ = m.Exec(ctx, "rm", "-rf", "/var/lib/bench-etcd")
		var t *etcdTLS
		if useTLS {
			t = &tls
		}
		return startUnit(ctx, m, etcdUnit, nil, append([]string{"/usr/local/bin/bench-etcd"}, classicEtcdArgs(m.Name, m.Addr, strings.Join(cluster, ","), t)...)...)
	})
	if err != nil || plane == nil {
		return notes, err
	}
	pkiFiles := pki.FilesIn(masterdPKIDir)
	err = eachMaster(l, func(m *lab.Master) error {
		etcdURL := fmt.Sprintf("%s://%s:%d", scheme, m.Addr, classicEtcdClientPort)
		argv := classicAPIServerArgs(plane.apiserver[m.Name], etcdURL, pkiFiles.ServiceAccountPub, pkiFiles.ServiceAccountKey)
		// As masterd's unit (units.KubeConfig.APIServer).
		return startUnit(ctx, m, classicAPIServerUnit, []string{"LimitNOFILE=65536", "OOMScoreAdjust=-900"}, argv...)
	})
	if err != nil {
		return notes, err
	}
	if err := eachMaster(l, func(m *lab.Master) error { return waitReadyz(ctx, m, plane.apiserver[m.Name], 3*time.Minute) }); err != nil {
		return notes, fmt.Errorf("vip bench: classic kube-apiserver: %w", err)
	}
	for _, ld := range plane.leaders {
		if err := startUnit(ctx, ld.master, ld.unit, []string{"OOMScoreAdjust=-500"}, ld.argv...); err != nil {
			return notes, err
		}
	}
	return notes, nil
}

// waitReadyz waits until the apiserver of argv in m answers /readyz with 200.
func waitReadyz(ctx context.Context, m *lab.Master, argv []string, d time.Duration) error {
	host, _ := flagValue(argv, "bind-address")
	if host == "" {
		host = m.Addr.String()
	}
	port, ok := flagValue(argv, "secure-port")
	if !ok {
		port = "6443"
	}
	url := "https://" + host + ":" + port + "/readyz"
	deadline := time.Now().Add(d)
	for {
		out, err := m.Exec(ctx, "curl", "-sk", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}", url)
		if err == nil && strings.TrimSpace(string(out)) == "200" {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: %s not ready after %v (%s %v)", m.Name, url, d, strings.TrimSpace(string(out)), err)
		}
		sleepCtx(ctx, time.Second)
	}
}

// measureClassic measures the classic stack after footprintSettle: etcd,
// keepalived and haproxy counted, its kube units for the note.
func measureClassic(ctx context.Context, l *lab.Lab, window time.Duration) ([]report.Footprint, []string) {
	sleepCtx(ctx, footprintSettle)
	refs := []unitRef{
		{stackClassic, "etcd (standalone, v3.7.3)", etcdUnit},
		{stackClassic, "keepalived", keepalivedUnit},
		{stackClassic, "haproxy", haproxyUnit},
	}
	if l.KubeEnabled() {
		refs = append(refs, kubeRefs(stackClassic, classicAPIServerUnit, classicSchedulerUnit, classicCtrlMgrUnit)...)
	}
	rows, note := splitKube(measure(ctx, l, refs, window))
	if note == "" {
		return rows, nil
	}
	return rows, []string{note}
}

// stopClassic stops startClassic's units and starts masterd again on every
// master (haproxy and keepalived stay for the trials); the caller waits for
// masterd to be ready.
func stopClassic(ctx context.Context, l *lab.Lab) error {
	return eachMaster(l, func(m *lab.Master) error {
		for _, u := range []string{classicSchedulerUnit, classicCtrlMgrUnit, classicAPIServerUnit, etcdUnit} {
			stopUnit(ctx, m, u)
		}
		_, _ = m.Exec(ctx, "rm", "-rf", "/var/lib/bench-etcd")
		_, _ = m.Exec(ctx, "systemctl", "reset-failed", "masterd")
		if err := m.StartMasterd(ctx); err != nil {
			return fmt.Errorf("%s: start masterd: %w", m.Name, err)
		}
		return nil
	})
}

// eachMaster runs f on every master at once and joins the errors.
func eachMaster(l *lab.Lab, f func(*lab.Master) error) error {
	ms := l.Masters()
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(m)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// footprintNote says how the footprint was measured, for the note.
func footprintNote(kube bool, window time.Duration) string {
	if !kube {
		return report.FootprintNotePrefix + fmt.Sprintf("Measured without the kube binaries: masterd (kubernetes.mode none, its etcd serving masterd only) against an idle standalone etcd with keepalived and haproxy (TCP checks of the etcds), both idle, %v after %v of settling.", window, footprintSettle)
	}
	return report.FootprintNotePrefix + fmt.Sprintf("Like for like: both stacks serve the same Kubernetes control plane, idle (no client requests: the apiservers' own background traffic, "+
		"one kube-scheduler and one kube-controller-manager with their leader-election renewals, the balancer's /readyz checks of every apiserver every second). "+
		"masterd: its own kube-apiserver on every master on its embedded etcd member, the scheduler and controller-manager on their roles' holders, VIP and balancer in masterd (masterd-default). "+
		"Classic: masterd stopped on every master; a standalone three-member etcd (bench/etcd/etcdserver, the etcd masterd embeds, with masterd's etcd settings and its certificates: mutual TLS on client and peer ports) "+
		"and, pointed at it, kube-apiserver on every master with the command line masterd gave its own (read from the running process; its external token signer replaced by the key files), "+
		"kube-scheduler and kube-controller-manager once each with masterd's command lines on the masters that ran them; keepalived (keepalived-default) and haproxy. "+
		"Each stack is measured over %v after %v of settling; the classic etcd holds only what its control plane wrote since it started.", window, footprintSettle)
}

// footprintMasterd measures masterd's stack (run once, in a masterd system).
func (b *bench) footprintMasterd(ctx context.Context, res *Result) {
	b.progress("footprint: masterd, %v settling, %v measured", footprintSettle, b.cfg.FootprintWindow)
	rows, notes := measureMasterd(ctx, b.l, b.cfg.FootprintWindow)
	res.Footprint = append(res.Footprint, rows...)
	addNotes(res, footprintNote(b.l.KubeEnabled(), b.cfg.FootprintWindow))
	addNotes(res, notes...)
}

// footprintClassic measures the classic stack (run once, in a keepalived
// system s, which is stable again afterwards); etcdBin is the standalone
// etcd ("": not built).
func (b *bench) footprintClassic(ctx context.Context, s System, etcdBin string, res *Result) {
	if etcdBin == "" {
		addNotes(res, report.FootprintNotePrefix+"the classic stack was not measured: no etcd binary.")
		return
	}
	notes, err := startClassic(ctx, b.l, etcdBin, b.progress)
	addNotes(res, notes...)
	if err != nil {
		addNotes(res, report.FootprintNotePrefix+"the classic stack was not measured: "+err.Error())
		b.progress("footprint: classic stack: %v", err)
	} else {
		b.progress("footprint: etcd + keepalived + haproxy, %v settling, %v measured", footprintSettle, b.cfg.FootprintWindow)
		rows, notes := measureClassic(ctx, b.l, b.cfg.FootprintWindow)
		res.Footprint = append(res.Footprint, rows...)
		addNotes(res, footprintNote(b.l.KubeEnabled(), b.cfg.FootprintWindow))
		addNotes(res, notes...)
	}
	b.progress("footprint: classic stack down, masterd starting again")
	err = stopClassic(ctx, b.l)
	if err == nil {
		err = b.waitMastersReady(ctx)
	}
	if err == nil {
		_, err = b.waitStable(ctx, s, 5*time.Minute)
	}
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("%s: masterd not back after the classic footprint: %v", s.Name, err))
		b.progress("footprint: masterd not back: %v", err)
	}
}

// addNotes appends the notes res does not have yet.
func addNotes(res *Result, notes ...string) {
	for _, n := range notes {
		if !slices.Contains(res.Notes, n) {
			res.Notes = append(res.Notes, n)
		}
	}
}

// FootprintSystems are the systems a footprint-only run switches through:
// masterd's defaults, then keepalived's with haproxy.
func FootprintSystems() []string { return []string{"masterd-default", "keepalived-default"} }

// RunFootprint is Run for the footprint only: the lab boots, each stack is
// measured once (FootprintSystems, no trials), and the lab goes down.
func RunFootprint(ctx context.Context, cfg Config, checkpoint func(*Result)) (*Result, error) {
	cfg.Systems, cfg.Footprint = FootprintSystems(), true
	return run(ctx, cfg, checkpoint, true)
}
