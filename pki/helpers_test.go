package pki

import (
	"crypto/rand"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// t0 is the fixed "now" of the tests: the clock is injected everywhere.
var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func testParams() Params {
	p := DefaultParams()
	p.NodeName = "m1"
	p.NodeAddress = netip.MustParseAddr("10.10.0.1")
	p.VIP = netip.MustParseAddr("10.10.0.100")
	p.Peers = []Peer{
		{Name: "m1", Address: netip.MustParseAddr("10.10.0.1")},
		{Name: "m2", Address: netip.MustParseAddr("10.10.0.2")},
		{Name: "m3", Address: netip.MustParseAddr("10.10.0.3")},
	}
	return p
}

func testSecret(t testing.TB) *Secret {
	t.Helper()
	s, err := GenerateSecret(rand.Reader, t0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustEnsure(t testing.TB, dir string, s *Secret, p Params, now time.Time) *Files {
	t.Helper()
	f, err := Ensure(dir, s, p, now)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return f
}

func changedNames(f *Files) map[string]string {
	m := map[string]string{}
	for _, c := range f.Changes {
		m[c.Name] = c.Reason
	}
	return m
}

func needOpenSSL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed (apt-get install -y openssl)")
	}
	return p
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func strconvItoa(n int64) string { return strconv.FormatInt(n, 10) }
