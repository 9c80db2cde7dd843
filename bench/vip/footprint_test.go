package vip

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/bench/report"
)

func TestParseSnapshotKeepsWellFormedLinesOnly(t *testing.T) {
	snap := parseSnapshot("t 1234.56\n101 2048 350\n102 0 0\nunit x has no cgroup\n103 abc 5\n\n")
	if snap.at != 1234560*time.Millisecond {
		t.Errorf("uptime %v, want 1234.56s", snap.at)
	}
	got := snap.procs
	want := map[string]procUse{"101": {2048, 350}, "102": {0, 0}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for pid, u := range want {
		if got[pid] != u {
			t.Errorf("pid %s: got %+v, want %+v", pid, got[pid], u)
		}
	}
}

func TestElapsedIsTheHostsUptimeDifferenceWhenBothSnapshotsHaveIt(t *testing.T) {
	a, b := unitUse{at: 100 * time.Second}, unitUse{at: 130*time.Second + 200*time.Millisecond}
	if got := elapsed(a, b, 34*time.Second); got != 30200*time.Millisecond {
		t.Errorf("elapsed %v, want 30.2s (uptime), not the 34s around the execs", got)
	}
	if got := elapsed(unitUse{}, b, 34*time.Second); got != 34*time.Second {
		t.Errorf("without an uptime: %v, want the wall time 34s", got)
	}
}

func TestUsageCountsTicksOverTheWindowAndNewProcessesWhole(t *testing.T) {
	a := map[string]procUse{"1": {1000, 500}, "2": {500, 40}}
	// 1 used 30 ticks, 2 exited (not counted), 3 started and used 20.
	b := map[string]procUse{"1": {1200, 530}, "3": {300, 20}}
	rss, cpu := usage(a, b, 10*time.Second)
	if rss != 1500*1024 {
		t.Errorf("rss %d, want %d (the second snapshot's)", rss, 1500*1024)
	}
	// 50 ticks of 10 ms over 10 s: 50 ms/s.
	if cpu != 50*time.Millisecond {
		t.Errorf("cpu %v per second, want 50ms", cpu)
	}
	if _, cpu := usage(a, b, 0); cpu != 0 {
		t.Errorf("cpu over an empty window: %v, want 0", cpu)
	}
}

func TestSplitKubeLeavesTheKubeComponentsOutOfTheStackAndSummarisesThem(t *testing.T) {
	rows := []report.Footprint{
		{Stack: stackClassic, Component: "etcd", Host: "m1", RSS: 30 << 20, CPU: 20 * time.Millisecond},
		{Stack: kubeOf + stackClassic, Component: "kube-apiserver", Host: "m1", RSS: 300 << 20, CPU: 40 * time.Millisecond},
		{Stack: kubeOf + stackClassic, Component: "kube-apiserver", Host: "m2", RSS: 310 << 20, CPU: 60 * time.Millisecond},
		{Stack: kubeOf + stackClassic, Component: "kube-scheduler", Host: "m2", RSS: 50 << 20, CPU: 3 * time.Millisecond},
		{Stack: stackClassic, Component: "etcd", Host: "m2", RSS: 31 << 20, CPU: 21 * time.Millisecond},
	}
	counted, note := splitKube(rows)
	if len(counted) != 2 || counted[0].Host != "m1" || counted[1].Host != "m2" {
		t.Errorf("counted rows: %+v, want the two etcd rows in order", counted)
	}
	for _, want := range []string{
		report.FootprintNotePrefix,
		"the kube components etcd+keepalived+haproxy served, not counted",
		"kube-apiserver ×2 (m1, m2) 50.0 ms/s and 305 MiB each",
		"kube-scheduler ×1 (m2) 3.0 ms/s and 50 MiB each",
	} {
		if !strings.Contains(note, want) {
			t.Errorf("note lacks %q: %s", want, note)
		}
	}
	if _, note := splitKube(rows[:1]); note != "" {
		t.Errorf("a stack without kube rows has a note: %q", note)
	}
}

func TestClassicAPIServerArgsChangeOnlyEtcdAndTheSigner(t *testing.T) {
	masterd := []string{"/usr/local/bin/kube-apiserver", "--advertise-address=10.0.0.1",
		"--etcd-servers=https://10.0.0.1:2379", "--etcd-cafile=/p/etcd-ca.crt",
		"--service-account-signing-endpoint=/var/lib/masterd/signer.sock",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local", "--secure-port=6443"}
	got := classicAPIServerArgs(masterd, "https://10.0.0.1:12379", "/p/sa.pub", "/p/sa.key")
	want := []string{"/usr/local/bin/kube-apiserver", "--advertise-address=10.0.0.1",
		"--etcd-servers=https://10.0.0.1:12379", "--etcd-cafile=/p/etcd-ca.crt",
		"--service-account-key-file=/p/sa.pub", "--service-account-signing-key-file=/p/sa.key",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local", "--secure-port=6443"}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if v, ok := flagValue(got, "secure-port"); !ok || v != "6443" {
		t.Errorf("flagValue secure-port: %q %v", v, ok)
	}
	if _, ok := flagValue(got, "bind-address"); ok {
		t.Error("flagValue found an absent flag")
	}
}

func TestClassicEtcdArgsUseMasterdsSettingsAndTLSWhenGiven(t *testing.T) {
	addr := netip.MustParseAddr("10.0.0.2")
	tls := &etcdTLS{CA: "/p/etcd-ca.crt", ServerCert: "/p/s.crt", ServerKey: "/p/s.key", PeerCert: "/p/p.crt", PeerKey: "/p/p.key"}
	args := strings.Join(classicEtcdArgs("m2", addr, "m1=https://10.0.0.1:12380", tls), " ")
	for _, want := range []string{
		"--listen-client-urls https://10.0.0.2:12379,https://127.0.0.1:12379",
		"--initial-advertise-peer-urls https://10.0.0.2:12380",
		"--heartbeat-interval 100 --election-timeout 1000",
		"--auto-compaction-mode periodic --auto-compaction-retention 1h",
		"--cert-file /p/s.crt --key-file /p/s.key --trusted-ca-file /p/etcd-ca.crt --client-cert-auth",
		"--peer-client-cert-auth",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("etcd args lack %q: %s", want, args)
		}
	}
	plain := strings.Join(classicEtcdArgs("m2", addr, "m1=http://10.0.0.1:12380", nil), " ")
	if strings.Contains(plain, "https://") || strings.Contains(plain, "--cert-file") {
		t.Errorf("plain etcd args use TLS: %s", plain)
	}
}

func TestSplitCmdline(t *testing.T) {
	if got := splitCmdline("/bin/x\x00--a=1\x00--b\x00"); !slices.Equal(got, []string{"/bin/x", "--a=1", "--b"}) {
		t.Errorf("got %q", got)
	}
	if got := splitCmdline(""); got != nil {
		t.Errorf("empty cmdline: got %q, want nil", got)
	}
}
