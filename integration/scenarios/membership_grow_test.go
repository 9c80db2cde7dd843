package scenarios

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/integration/lab"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The membership scenarios on real systemd hosts beyond the replace of a
// master by itself (membership_test.go): grow 3→5, replace under a new name
// and address, shrink 5→3; lose two of three for good and recover from the
// survivor; restore from a snapshot; bad input. Everything goes through the
// CLI inside the hosts, as an operator runs it, and kube-less like
// TestMembershipReplaceOnRealHosts (what they are about is etcd, the
// elections and the VIP).

// memberOn runs `masterd member ARGS` inside m; the error carries the exit
// status.
func memberOn(ctx context.Context, m *lab.Master, args ...string) (string, error) {
	out, err := m.Exec(ctx, append([]string{"masterd", "member"}, args...)...)
	return string(out), err
}

// exitCode is the exit status in err, -1 when there is none.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

var epochRE = regexp.MustCompile(`(?m)^epoch (\d+)$`)

// membershipOf returns the epoch and the output of `masterd member list`
// on m.
func membershipOf(t *testing.T, ctx context.Context, m *lab.Master) (uint64, string) {
	t.Helper()
	out, err := memberOn(ctx, m, "list")
	if err != nil {
		t.Fatalf("member list on %s: %v\n%s", m.Name, err, out)
	}
	sm := epochRE.FindStringSubmatch(out)
	if sm == nil {
		t.Fatalf("member list on %s: no epoch line:\n%s", m.Name, out)
	}
	e, _ := strconv.ParseUint(sm[1], 10, 64)
	return e, out
}

// refused runs a membership command that must fail with exit status 1 and
// a message containing want, and checks the membership did not move.
func refused(t *testing.T, ctx context.Context, on *lab.Master, want string, args ...string) {
	t.Helper()
	before, _ := membershipOf(t, ctx, on)
	out, err := memberOn(ctx, on, args...)
	if err == nil || exitCode(err) != 1 || !strings.Contains(out, want) {
		t.Errorf("masterd member %s: exit %d (%v), want 1 and %q:\n%s", strings.Join(args, " "), exitCode(err), err, want, out)
	}
	if after, list := membershipOf(t, ctx, on); after != before {
		t.Errorf("masterd member %s (refused) moved the membership from epoch %d to %d:\n%s", strings.Join(args, " "), before, after, list)
	}
}

// change is one membership change watched by a VIP monitor opened for it
// (so it samples the masters of the lab at the time, new ones included).
type change struct {
	what  string
	start time.Time
	mon   *lab.Monitor
}

func startChange(t *testing.T, s *scenarioLab, what string) *change {
	t.Helper()
	mon, err := s.MonitorVIP(10 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return &change{what: what, start: time.Now(), mon: mon}
}

// done stops the monitor, checks it saw no two VIP holders and returns a
// line for the figures: the change's time and the longest gap between
// acknowledged writes during it.
func (c *change) done(t *testing.T, w *writer) string {
	t.Helper()
	took := time.Since(c.start)
	rep := c.mon.Stop()
	if rep.Err != nil {
		t.Errorf("%s: VIP monitor: %v", c.what, rep.Err)
	}
	if rep.Dual > 0 {
		t.Errorf("%s: %d of %d samples with two VIP holders: %v", c.what, rep.Dual, rep.Samples, rep)
	}
	line := fmt.Sprintf("%s %.1fs (VIP: %d samples, %d dual, %d none", c.what, took.Seconds(), rep.Samples, rep.Dual, rep.None)
	if w != nil {
		line += fmt.Sprintf(", longest write gap %.2fs", w.Gap(c.start, time.Now()).Seconds())
	}
	return line + ")"
}

// addMaster adds fresh master m (a new machine from lab.AddMaster: the
// key, masterd.yaml with the peers, an empty data dir) to the cluster as
// README's Operations section says: `masterd member add NAME ADDRESS
// --wait=false` on master on, masterd started on m, `masterd member wait`.
// during, when set, runs while the change waits for the new master.
func addMaster(t *testing.T, ctx context.Context, s *scenarioLab, on, m *lab.Master, during func()) {
	t.Helper()
	out, err := memberOn(ctx, on, "add", m.Name, m.Addr.String(), "--wait=false")
	if err != nil {
		t.Fatalf("member add %s: %v\n%s", m.Name, err, out)
	}
	checkPrintedPeers(t, s, out)
	if during != nil {
		during()
	}
	if err := m.StartMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	waitMembership(t, ctx, on, s.Masters())
}

// newMaster is lab.AddMaster or the end of the test.
func newMaster(t *testing.T, ctx context.Context, s *scenarioLab, name string) *lab.Master {
	t.Helper()
	m, err := s.AddMaster(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkPrintedPeers checks that the peers `member add` prints for the new
// master's masterd.yaml are the lab's masters (what lab.AddMaster wrote).
func checkPrintedPeers(t *testing.T, s *scenarioLab, out string) {
	t.Helper()
	var want []string
	for _, m := range s.Masters() {
		want = append(want, fmt.Sprintf("- {name: %s, address: %s}", m.Name, m.Addr))
	}
	var got []string
	for _, line := range strings.Split(out, "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "- {name: ") {
			got = append(got, l)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("member add prints peers %q, the new master's masterd.yaml has %q:\n%s", got, want, out)
	}
}

// waitMembership runs `masterd member wait` on m and checks the final
// membership is exactly masters.
func waitMembership(t *testing.T, ctx context.Context, on *lab.Master, masters []*lab.Master) {
	t.Helper()
	out, err := memberOn(ctx, on, "wait", "--timeout", "4m")
	var names []string
	for _, m := range masters {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	if err != nil || !regexp.MustCompile(`voters `+regexp.QuoteMeta(strings.Join(names, ","))+`(\n|$)`).MatchString(out) {
		t.Fatalf("member wait on %s: %v, want voters %s:\n%s", on.Name, err, strings.Join(names, ","), out)
	}
}

// removeMaster removes m with `masterd member remove` on master on (it
// waits), stops masterd on m as the command then says, and takes the
// machine away.
func removeMaster(t *testing.T, ctx context.Context, s *scenarioLab, on, m *lab.Master) {
	t.Helper()
	out, err := memberOn(ctx, on, "remove", m.Name, "--timeout", "4m")
	if err != nil || !strings.Contains(out, "stop masterd there") {
		t.Fatalf("member remove %s: %v\n%s", m.Name, err, out)
	}
	if err := m.StopMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.RetireMaster(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// finalChecks: every master lists the same final membership with no
// change in progress, exactly one holds the VIP, and every acknowledged
// write reads back through via.
func finalChecks(t *testing.T, ctx context.Context, s *scenarioLab, via *lab.Master, acked []string) int {
	t.Helper()
	s.waitReady(t, ctx, 3*time.Minute)
	var epochs []uint64
	for _, m := range s.Masters() {
		e, out := membershipOf(t, ctx, m)
		epochs = append(epochs, e)
		if strings.Contains(out, "change in progress") {
			t.Errorf("member list on %s: a change in progress at the end:\n%s", m.Name, out)
		}
		for _, o := range s.Masters() {
			if !strings.Contains(out, o.Name+" ") {
				t.Errorf("member list on %s does not list %s:\n%s", m.Name, o.Name, out)
			}
		}
	}
	if slices.Min(epochs) != slices.Max(epochs) {
		t.Errorf("masters see different epochs: %v", epochs)
	}
	missing := missingWrites(t, ctx, etcdFromClient(t, s.Lab, via, via), acked)
	if missing > 0 || len(acked) == 0 {
		t.Errorf("%d of %d acknowledged writes missing through %s", missing, len(acked), via.Name)
	}
	return missing
}

// Grow 3→5 (m4, then m5), replace m3 by m6 (a new name and address, with
// `member replace`), shrink 5→3 (remove m4, then m5), with a client writing
// through etcd every 20 ms and the VIP sampled every 10 ms; bad input on
// the way is refused and changes nothing. Checks: no sample with two VIP
// holders, every acknowledged write readable through the new m6, every
// master on the same final membership.
func TestMembershipGrowReplaceShrinkOnRealHosts(t *testing.T) {
	o := options(t)
	o.Prefix = fmt.Sprintf("scgrow%d", os.Getpid()%1000000)
	o.KubeBinDir = ""
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	s := upLab(t, ctx, o, 5*time.Minute)
	figure(t, "lab up and ready in %.1fs", time.Since(start).Seconds())
	m1, m2, m3 := s.Masters()[0], s.Masters()[1], s.Masters()[2]

	// Bad input: a clear error each (exit 1), the epoch unchanged.
	refused(t, ctx, m1, "already in use by master "+m2.Name, "add", o.Prefix+"-m9", m2.Addr.String())
	refused(t, ctx, m1, `address "10.213.0.300"`, "add", o.Prefix+"-m9", "10.213.0.300")
	refused(t, ctx, m1, "is the VIP", "add", o.Prefix+"-m9", s.VIP().String())
	refused(t, ctx, m1, `name "M9_x": must be lowercase letters`, "add", "M9_x", "10.213.0.99")
	refused(t, ctx, m1, `no master named "m9"`, "remove", "m9")
	refused(t, ctx, m1, "this is the master the command runs on", "remove", m1.Name)

	w := startWriter(etcdFromClient(t, s.Lab, m1, m1, m2))
	time.Sleep(time.Second)
	var lines []string

	// 3→4: m4; a second change meanwhile is refused.
	m4 := newMaster(t, ctx, s, "m4")
	c := startChange(t, s, "grow 3→4 (add m4)")
	addMaster(t, ctx, s, m1, m4, func() {
		refused(t, ctx, m2, "a change is already in progress: add "+o.Prefix+"-m4", "remove", m3.Name)
		refused(t, ctx, m2, "a change is already in progress: add "+o.Prefix+"-m4", "add", o.Prefix+"-m9", "10.213.0.99")
	})
	lines = append(lines, c.done(t, w))

	// 4→5: m5.
	m5 := newMaster(t, ctx, s, "m5")
	c = startChange(t, s, "grow 4→5 (add m5)")
	addMaster(t, ctx, s, m1, m5, nil)
	lines = append(lines, c.done(t, w))

	// Replace m3 by m6: `member replace` removes m3, then adds m6 and waits
	// for it; the operator stops m3 and starts m6 once the command says so
	// (the add is published).
	m6 := newMaster(t, ctx, s, "m6")
	c = startChange(t, s, "replace m3 by m6 (5→4→5)")
	type result struct {
		out string
		err error
	}
	replaced := make(chan result, 1)
	go func() {
		out, err := memberOn(ctx, m1, "replace", m3.Name, m6.Name, m6.Addr.String(), "--timeout", "4m")
		replaced <- result{out, err}
	}()
	for {
		_, list := membershipOf(t, ctx, m2)
		if strings.Contains(list, "change in progress: add "+m6.Name) {
			break
		}
		select {
		case r := <-replaced:
			t.Fatalf("member replace ended before the add of %s: %v\n%s", m6.Name, r.err, r.out)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err := m3.StopMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m6.StartMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-replaced
	if r.err != nil || !strings.Contains(r.out, "done in") {
		t.Fatalf("member replace %s %s: %v\n%s", m3.Name, m6.Name, r.err, r.out)
	}
	lines = append(lines, c.done(t, w))
	if err := s.RetireMaster(ctx, m3); err != nil {
		t.Fatal(err)
	}

	// 5→3: m4, then m5. m4 leads etcd (moved there): the writes in flight
	// at the removed leader are lost to their clients (which time out), no
	// acknowledged one.
	etcdLeaderTo(t, ctx, s, m4, m1, m2, m4, m5, m6)
	c = startChange(t, s, "shrink 5→4 (remove m4, the etcd leader)")
	removeMaster(t, ctx, s, m1, m4)
	lines = append(lines, c.done(t, w))
	c = startChange(t, s, "shrink 4→3 (remove m5)")
	removeMaster(t, ctx, s, m2, m5)
	lines = append(lines, c.done(t, w))

	time.Sleep(time.Second)
	acked, gap := w.Stop()
	missing := finalChecks(t, ctx, s, m6, acked)
	figure(t, "%s; %d acknowledged writes, %d missing, longest gap overall %.2fs; total %.1fs",
		strings.Join(lines, "; "), len(acked), missing, gap.Seconds(), time.Since(start).Seconds())
}

// Lose two of three masters for good (one stopped and wiped, then the etcd
// leader crashed) and recover from the survivor, then grow back with two
// fresh masters; then restore a snapshot through the
// CLI. Checks: removing a master while another is down is refused (quorum);
// every write acknowledged up to the loss is there after the recovery; the
// recover and the restore are refused while masterd runs there (and the
// restore while etcd runs on another master), changing nothing; with the
// cluster stopped the restore brings back the snapshot's data; one VIP
// holder at the end of each step.
func TestMembershipRecoverAndRestoreOnRealHosts(t *testing.T) {
	o := options(t)
	o.Prefix = fmt.Sprintf("screc%d", os.Getpid()%1000000)
	o.KubeBinDir = ""
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	s := upLab(t, ctx, o, 5*time.Minute)
	figure(t, "lab up and ready in %.1fs", time.Since(start).Seconds())
	m1, m2, m3 := s.Masters()[0], s.Masters()[1], s.Masters()[2]
	cli1 := etcdFromClient(t, s.Lab, m1, m1)
	w := startWriter(cli1)
	time.Sleep(time.Second)

	// The first loss: m3's disk is gone. Removing m2 now would leave m1
	// alone of two: refused.
	wipe := func(m *lab.Master) {
		t.Helper()
		if err := m.StopMasterd(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Exec(ctx, "sh", "-c", "rm -rf /var/lib/masterd/* /var/lib/masterd/.[!.]*"); err != nil {
			t.Fatal(err)
		}
	}
	wipe(m3)
	refused(t, ctx, m1, "it would lose quorum", "remove", m2.Name)
	// The second: m2, the etcd leader, crashes (link cut, every process
	// killed) while the client writes. The cluster has lost quorum for
	// good; the last writes m2 acknowledged are in m1's log, but m1 may not
	// yet have learned they were committed (it learns that with the
	// leader's next message).
	etcdLeaderTo(t, ctx, s, m2, m1, m2)
	lost := time.Now()
	if err := s.Crash(ctx, m2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	acked, _ := w.Stop()
	for _, m := range []*lab.Master{m2, m3} {
		if err := s.RetireMaster(ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	// Recover from m1: refused while masterd runs there, then with it stopped.
	if out, err := memberOn(ctx, m1, "recover"); exitCode(err) != 1 || !strings.Contains(out, "masterd runs on this host") || !strings.Contains(out, "Nothing was changed") {
		t.Errorf("member recover with masterd running: exit %d (%v), want 1 and a refusal:\n%s", exitCode(err), err, out)
	}
	t0 := time.Now()
	if err := m1.StopMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := memberOn(ctx, m1, "recover"); err != nil || !strings.Contains(out, "recovered: "+m1.Name+" is now the only etcd member") {
		t.Fatalf("member recover: %v\n%s", err, out)
	}
	if err := m1.StartMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, ctx, 3*time.Minute)
	recovered := time.Since(t0)
	missing := missingWrites(t, ctx, cli1, acked)
	if missing > 0 || len(acked) == 0 {
		t.Errorf("after the recovery %d of the %d writes acknowledged up to the loss are missing", missing, len(acked))
	}
	figure(t, "lost m3 (stopped, wiped), then m2 (the etcd leader) crashed; %d writes acknowledged up to the loss (the last %.3fs before the crash), %d missing after the recovery; recover on m1 to ready %.1fs",
		len(acked), lost.Sub(w.Last()).Seconds(), missing, recovered.Seconds())

	// Grow back with two fresh masters, one at a time.
	w = startWriter(cli1)
	var lines []string
	m4 := newMaster(t, ctx, s, "m4")
	c := startChange(t, s, "grow 1→2 (add m4)")
	addMaster(t, ctx, s, m1, m4, nil)
	lines = append(lines, c.done(t, w))
	m5 := newMaster(t, ctx, s, "m5")
	c = startChange(t, s, "grow 2→3 (add m5)")
	addMaster(t, ctx, s, m1, m5, nil)
	lines = append(lines, c.done(t, w))
	acked2, _ := w.Stop()
	finalChecks(t, ctx, s, m5, append(acked, acked2...))
	figure(t, "%s", strings.Join(lines, "; "))

	// Restore: a snapshot with /scenario/restore/before, a write after it.
	put := func(k string) {
		t.Helper()
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		defer pcancel()
		if _, err := cli1.Put(pctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	put("/scenario/restore/before")
	const snap = "/var/lib/masterd/scenario.snapshot"
	if out, err := m1.Exec(ctx, "masterd", "etcd", "snapshot", "save", snap); err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	put("/scenario/restore/after")
	restore := func() (string, error) {
		out, err := m1.Exec(ctx, "masterd", "etcd", "restore", snap)
		return string(out), err
	}
	dataDir := func() string {
		// Names and inodes: a restore moves etcd aside and puts a new one in place.
		out, err := m1.Exec(ctx, "ls", "-ai", "/var/lib/masterd", "/var/lib/masterd/etcd", "/var/lib/masterd/etcd/member")
		if err != nil {
			t.Fatalf("list the data dir: %v\n%s", err, out)
		}
		return string(out)
	}
	// Refused on the healthy running cluster: masterd runs on m1; then with
	// masterd stopped on m1 alone, etcd still runs on m4 and m5. Nothing moves.
	before := dataDir()
	if out, err := restore(); exitCode(err) != 1 || !strings.Contains(out, "masterd runs on this host") || !strings.Contains(out, "Nothing was changed") {
		t.Errorf("etcd restore with masterd running: exit %d (%v), want 1 and a refusal:\n%s", exitCode(err), err, out)
	}
	if after := dataDir(); after != before {
		t.Errorf("a refused restore changed the data dir:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if err := m1.StopMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	before = dataDir()
	if out, err := restore(); exitCode(err) != 1 || !strings.Contains(out, "etcd") || !strings.Contains(out, "Nothing was changed") ||
		!strings.Contains(out, m4.Name) {
		t.Errorf("etcd restore while m4 and m5 serve etcd: exit %d (%v), want 1 and a refusal naming them:\n%s", exitCode(err), err, out)
	}
	if after := dataDir(); after != before {
		t.Errorf("a refused restore changed the data dir:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// The cluster stopped, as the README says: the restore works, m1 comes
	// back alone with the snapshot's data, m4 and m5 come back as fresh
	// masters through member add.
	t0 = time.Now()
	for _, m := range []*lab.Master{m4, m5} {
		if err := m.StopMasterd(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := restore(); err != nil || !strings.Contains(out, "restored") {
		t.Fatalf("etcd restore with the cluster stopped: %v\n%s", err, out)
	}
	if err := m1.StartMasterd(ctx); err != nil {
		t.Fatal(err)
	}
	var lines2 []string
	for _, m := range []*lab.Master{m4, m5} {
		// On the master to add back: an empty data dir.
		if _, err := m.Exec(ctx, "sh", "-c", "rm -rf /var/lib/masterd/* /var/lib/masterd/.[!.]*"); err != nil {
			t.Fatal(err)
		}
		c := startChange(t, s, "add back "+strings.TrimPrefix(m.Name, o.Prefix+"-"))
		upTo := []*lab.Master{m1, m4, m5}
		if m == m4 {
			// m1 runs alone first: the record then lists m1 only.
			waitAlone(t, ctx, m1)
			upTo = upTo[:2]
		}
		out, err := memberOn(ctx, m1, "add", m.Name, m.Addr.String(), "--wait=false")
		if err != nil {
			t.Fatalf("member add %s after the restore: %v\n%s", m.Name, err, out)
		}
		if err := m.StartMasterd(ctx); err != nil {
			t.Fatal(err)
		}
		waitMembership(t, ctx, m1, upTo)
		lines2 = append(lines2, c.done(t, nil))
	}
	s.waitReady(t, ctx, 3*time.Minute)
	restored := time.Since(t0)
	cli5 := etcdFromClient(t, s.Lab, m5, m5)
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	for k, want := range map[string]int64{"/scenario/restore/before": 1, "/scenario/restore/after": 0} {
		resp, err := cli5.Get(rctx, k, clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != want {
			t.Errorf("after the restore %s: %d keys, want %d", k, resp.Count, want)
		}
	}
	figure(t, "restore with the cluster stopped and both others added back: %.1fs (%s); total %.1fs",
		restored.Seconds(), strings.Join(lines2, "; "), time.Since(start).Seconds())
}

// etcdLeaderTo makes master to the etcd leader of the members among ms
// (with etcd's MoveLeader, sent to the current leader).
func etcdLeaderTo(t *testing.T, ctx context.Context, s *scenarioLab, to *lab.Master, ms ...*lab.Master) {
	t.Helper()
	ids := map[uint64]*lab.Master{}
	var leader, toID uint64
	for _, m := range ms {
		cli := etcdFromClient(t, s.Lab, m, m)
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := cli.Status(sctx, fmt.Sprintf("https://%s:2379", m.Addr))
		cancel()
		if err != nil {
			t.Fatalf("etcd status of %s: %v", m.Name, err)
		}
		id := st.Header.GetMemberId()
		ids[id], leader = m, st.Leader
		if m == to {
			toID = id
		}
	}
	if leader == toID {
		return
	}
	from, ok := ids[leader]
	if !ok {
		t.Fatalf("etcd leader %x is none of the masters asked", leader)
	}
	mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := etcdFromClient(t, s.Lab, from, from).MoveLeader(mctx, toID); err != nil {
		t.Fatalf("move the etcd leader from %s to %s: %v", from.Name, to.Name, err)
	}
}

// waitAlone waits until m's membership lists m alone (a master restored
// from a snapshot aligns the record with etcd when its masterd starts).
func waitAlone(t *testing.T, ctx context.Context, m *lab.Master) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := memberOn(ctx, m, "list")
		if err == nil {
			// epoch N, the header, the masters.
			rows := strings.Split(strings.TrimSpace(out), "\n")
			if len(rows) == 3 && strings.HasPrefix(rows[2], m.Name+" ") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not list itself alone after the restore: %v\n%s", m.Name, err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
