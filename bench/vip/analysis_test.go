package vip

import (
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/bench/report"
)

var t0 = time.Unix(1000, 0)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestLongestGapCountsAnOutageStillRunningAtTheEnd(t *testing.T) {
	replies := []time.Time{at(-20), at(-10), at(10), at(20), at(900), at(910)}
	if got := longestGap(replies, t0, at(920)); got != 880*time.Millisecond {
		t.Errorf("gap = %v, want 880ms (20 → 900)", got)
	}
	if got := longestGap(replies, t0, at(3000)); got != 2090*time.Millisecond {
		t.Errorf("gap = %v, want 2.09s (910 → end)", got)
	}
	if got := longestGap(nil, t0, at(500)); got != 500*time.Millisecond {
		t.Errorf("no replies: gap = %v, want the whole window", got)
	}
}

// A bench over three masters whose eth0 MACs are a, b, c.
func testBench() *bench {
	return &bench{masterNS: []string{"m1", "m2", "m3"}, macs: []string{"aa", "bb", "cc"}}
}

func TestWrongRunCountsTheIsolatedHolderAsWrongUntilTheClientMoves(t *testing.T) {
	b := testBench()
	v := uint8(1) // m1 isolated
	samples := []sample{
		{at: at(-10), holders: 1, mac: "aa"},
		{at: at(0), holders: 1, mac: "aa"},       // partitioned: m1 is wrong
		{at: at(400), holders: 1 | 2, mac: "aa"}, // m2 took it, client still on m1
		{at: at(600), holders: 1 | 2, mac: "bb"}, // client on m2: right
		{at: at(5000), holders: 1 | 2, mac: "bb"},
		{at: at(5100), holders: 1, mac: "bb"}, // healed; m2 dropped it, client stale
		{at: at(8100), holders: 1, mac: "aa"},
	}
	heal := at(5050)
	if got := b.wrongRun(samples, t0, heal, at(9000), v); got != 3*time.Second {
		t.Errorf("wrong run = %v, want 3s (the stale entry after the heal)", got)
	}
	if got := b.wrongRun(samples[:5], t0, heal, at(5050), v); got != 600*time.Millisecond {
		t.Errorf("wrong run during the partition = %v, want 600ms", got)
	}
	// Still wrong at the end: counts up to the end.
	if got := b.wrongRun(samples[:6], heal, heal, at(7000), v); got != 1900*time.Millisecond {
		t.Errorf("wrong run after heal = %v, want 1.9s", got)
	}
}

func TestMovedAndFalseFailovers(t *testing.T) {
	v := uint8(2) // m2 holds
	samples := []sample{
		{at: at(-5), holders: 1}, // before the fault: ignored
		{at: at(0), holders: 2},
		{at: at(100), holders: 2 | 4}, // m3 too
		{at: at(200), holders: 2},
		{at: at(300), holders: 4},
		{at: at(400), holders: 4},
	}
	if got := movedAt(samples, t0, v); got != 100*time.Millisecond {
		t.Errorf("moved = %v, want 100ms", got)
	}
	if got := falseFailovers(samples, t0, v); got != 2 {
		t.Errorf("false failovers = %d, want 2", got)
	}
	if got := movedAt(samples[1:2], t0, v); got != -1 {
		t.Errorf("never moved: %v, want -1", got)
	}
}

func TestClientOnHolderNeedsOneHolderAndItsMACForTheWholeSpan(t *testing.T) {
	b := testBench()
	ok := []sample{{at: at(0), holders: 2, mac: "bb"}, {at: at(600), holders: 2, mac: "bb"}, {at: at(1100), holders: 2, mac: "bb"}}
	if !b.clientOnHolder(ok, time.Second) {
		t.Error("one holder, client on its MAC for 1.1s: not on holder")
	}
	stale := append(append([]sample(nil), ok[:2]...), sample{at: at(1100), holders: 2, mac: "aa"})
	if b.clientOnHolder(stale, time.Second) {
		t.Error("client on another MAC counted as on the holder")
	}
	if b.clientOnHolder(ok[:2], time.Second) {
		t.Error("0.6s of samples counted as a full second")
	}
}

func TestKeepalivedConfPerSystem(t *testing.T) {
	def, _ := systemByName("keepalived-default")
	tuned, _ := systemByName("keepalived-tuned")
	c := keepalivedConf(def, 0, "10.213.0.10")
	for _, want := range []string{"priority 150", "advert_int 1\n", "10.213.0.10/32 dev eth0"} {
		if !strings.Contains(c, want) {
			t.Errorf("default conf lacks %q:\n%s", want, c)
		}
	}
	if strings.Contains(c, "vrrp_version") {
		t.Error("default conf sets vrrp_version (2 is keepalived's default)")
	}
	c = keepalivedConf(tuned, 2, "10.213.0.10")
	for _, want := range []string{"vrrp_version 3", "advert_int 0.1", "priority 50"} {
		if !strings.Contains(c, want) {
			t.Errorf("tuned conf lacks %q:\n%s", want, c)
		}
	}
}

// The switch rewrites the lines integration/lab writes into masterd.yaml;
// this pins their shape.
func TestSwitchRegexesMatchTheLabsConfig(t *testing.T) {
	const labYAML = "name: m1\nvip:\n  enabled: true\n  address: 10.213.0.10\n  interface: eth0\n  profile: default\n  fence: false\nkubernetes:\n  mode: none\n"
	for _, re := range []*regexp.Regexp{vipEnabledRE, profileRE} {
		if !re.MatchString(labYAML) {
			t.Errorf("%v does not match the lab's masterd.yaml", re)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.Trials = 0
	c.Systems = []string{"carp"}
	c.Scenarios = []string{"meteor"}
	c.Budget = time.Second
	err := c.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"trials", "systems", "scenarios", "budget"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

func TestHAProxyConfBalancesTheVIPToTheAPIServers(t *testing.T) {
	vip := netip.MustParseAddr("10.213.0.10")
	names := []string{"m1", "m2", "m3"}
	addrs := []netip.Addr{netip.MustParseAddr("10.213.0.11"), netip.MustParseAddr("10.213.0.12"), netip.MustParseAddr("10.213.0.13")}
	c := haproxyConf(vip, names, addrs, true)
	for _, want := range []string{"bind 10.213.0.10:6443 transparent", "mode tcp", "option httpchk GET /readyz",
		"server m1 10.213.0.11:6443 check check-ssl verify none inter 1s rise 2 fall 3",
		"server m3 10.213.0.13:6443 check check-ssl verify none inter 1s rise 2 fall 3", "timeout server 1h"} {
		if !strings.Contains(c, want) {
			t.Errorf("conf lacks %q:\n%s", want, c)
		}
	}
	c = haproxyConf(vip, names, addrs, false)
	if strings.Contains(c, "httpchk") || !strings.Contains(c, "server m2 10.213.0.12:12379 check inter 1s") {
		t.Errorf("conf without kube does not check etcd over plain TCP:\n%s", c)
	}
}

func TestValidateWantsKubeVIPsBinaryAndAnAPIServer(t *testing.T) {
	c := DefaultConfig()
	c.Systems = []string{"masterd-default", "kube-vip"}
	c.KubeVIPBinary, c.Lab.KubeBinDir = "", ""
	err := c.Validate()
	if err == nil {
		t.Fatal("kube-vip without its binary accepted")
	}
	for _, want := range []string{"kubeVIPBinary", "lab.kubeBinDir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// served: the first success is the earliest end; "every request" starts
// after the last attempt that failed or took longer than promptLatency (a
// SYN lost before the VIP moved and retransmitted 1 s later).
func TestServedCountsSlowAttemptsAgainstEveryRequest(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(startMS, endMS int, err error) attemptResult {
		return attemptResult{start: t0.Add(time.Duration(startMS) * time.Millisecond), end: t0.Add(time.Duration(endMS) * time.Millisecond), err: err}
	}
	all := []attemptResult{
		at(0, 1030, nil),                     // SYN retransmitted: slow
		at(700, 1710, nil),                   // slow too
		at(800, 830, nil),                    // first success
		at(900, 3900, errors.New("timeout")), // a dead backend picked
		at(1000, 1040, nil),                  // from here on all prompt
		at(1100, 1120, nil),
	}
	first, from := served(all, t0)
	if first != 830*time.Millisecond || from != 1040*time.Millisecond {
		t.Errorf("served = %v, %v; want 830ms, 1.04s", first, from)
	}
	if f, s := served(nil, t0); f != report.NotWithin || s != report.NotWithin {
		t.Errorf("no attempts: %v, %v; want NotWithin twice", f, s)
	}
	if _, s := served([]attemptResult{at(0, 50, nil), at(100, 3100, errors.New("x"))}, t0); s != report.NotWithin {
		t.Errorf("last attempt failed: served from %v, want NotWithin", s)
	}
}
