package pki

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRenewReissuesOnlyTheNamedLeaves(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	s, p := testSecret(t), testParams()
	before := mustEnsure(t, dir, s, p, t0)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	oldAPI, oldEtcd, oldSched := read("apiserver.crt"), read("etcd-server.crt"), read("scheduler.conf")
	later := t0.Add(time.Hour)
	f, err := Renew(dir, s, p, later, []string{"apiserver", "scheduler.conf"})
	if err != nil {
		t.Fatal(err)
	}
	got := changedNames(f)
	want := map[string]string{"apiserver.crt": renewRequested, "scheduler.conf": renewRequested}
	if len(got) != len(want) || got["apiserver.crt"] != renewRequested || got["scheduler.conf"] != renewRequested {
		t.Fatalf("changes %v, want %v", got, want)
	}
	if string(read("apiserver.crt")) == string(oldAPI) || string(read("scheduler.conf")) == string(oldSched) {
		t.Error("a named certificate was not rewritten")
	}
	if string(read("etcd-server.crt")) != string(oldEtcd) {
		t.Error("etcd-server.crt rewritten though not named")
	}
	for _, n := range []string{"apiserver", "scheduler.conf"} {
		if d := f.Expiry[n].Sub(before.Expiry[n]); d != time.Hour {
			t.Errorf("%s expiry moved by %s, want 1h (issued an hour later)", n, d)
		}
	}
	// The renewed pair is consistent: a plain Ensure keeps it.
	if again := mustEnsure(t, dir, s, p, later); len(again.Changes) != 0 {
		t.Errorf("Ensure after Renew changed %v", changedNames(again))
	}
}

func TestRenewAllReissuesEveryLeafAndNoCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	s, p := testSecret(t), testParams()
	mustEnsure(t, dir, s, p, t0)
	names, err := RenewNames([]string{"all"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Renew(dir, s, p, t0.Add(time.Minute), names)
	if err != nil {
		t.Fatal(err)
	}
	got := changedNames(f)
	if len(got) != len(LeafNames) {
		t.Errorf("%d files changed, want the %d leaves: %v", len(got), len(LeafNames), got)
	}
	for name := range got {
		if strings.Contains(name, "ca.") || name == "sa.key" || name == "sa.pub" {
			t.Errorf("%s rewritten by renew all", name)
		}
	}
}

func TestRenewNamesRefusesWhatItCannotRenew(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "name a certificate or all"},
		{[]string{"kube-ca"}, "is a CA"},
		{[]string{"apiserver.crt"}, `unknown certificate "apiserver.crt"`},
		{[]string{"all", "apiserver"}, "do not name others"},
	} {
		_, err := RenewNames(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("RenewNames(%q) = %v, want an error containing %q", c.args, err, c.want)
		}
	}
	got, err := RenewNames([]string{"apiserver", "etcd-peer", "apiserver"})
	if err != nil || !slices.Equal(got, []string{"apiserver", "etcd-peer"}) {
		t.Errorf("RenewNames = %v, %v", got, err)
	}
	for _, n := range append(slices.Clone(LeafNames), CANames...) {
		if !slices.Contains(CANames, IssuerOf(n)) {
			t.Errorf("IssuerOf(%s) = %s, not a CA", n, IssuerOf(n))
		}
	}
}
