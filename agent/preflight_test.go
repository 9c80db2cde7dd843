package agent

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// preflightFiles writes a cluster key and the three kube binaries into a
// temporary directory and returns the YAML lines that point at them.
func preflightFiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(key, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range kubeBinaries {
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return "clusterKeyFile: " + key + "\nkubernetes: {binDir: " + bin + "}\n"
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "masterd.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// inNetns runs f on a thread in a new, unnamed network namespace holding a
// veth per entry of ifaces (name → addresses with their prefix
// length), configured through netlink. The namespace disappears with its
// last handle, also when the test fails.
func inNetns(t *testing.T, ifaces map[string][]string, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	done := make(chan struct{})
	var failure string
	go func() {
		defer close(done)
		runtime.LockOSThread() // not unlocked: the thread dies if switching back fails
		orig, err := netns.Get()
		if err != nil {
			failure = err.Error()
			return
		}
		defer orig.Close()
		ns, err := netns.New() // unshare: this thread is now in the new namespace
		if err != nil {
			failure = "new netns: " + err.Error()
			return
		}
		defer ns.Close()
		failure = setupLinks(ifaces)
		if failure == "" {
			f()
		}
		if err := netns.Set(orig); err != nil {
			failure = "back to the original netns: " + err.Error()
			return
		}
		runtime.UnlockOSThread()
	}()
	<-done
	if failure != "" {
		t.Fatal(failure)
	}
}

func setupLinks(ifaces map[string][]string) string {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return "lo: " + err.Error()
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return "lo up: " + err.Error()
	}
	for name, addrs := range ifaces {
		// A veth pair (the dummy driver may be missing): name, and its
		// peer name-p left without addresses.
		link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "-p"}
		if err := netlink.LinkAdd(link); err != nil {
			return "add " + name + ": " + err.Error()
		}
		for _, n := range []string{name, name + "-p"} {
			l, err := netlink.LinkByName(n)
			if err == nil {
				err = netlink.LinkSetUp(l)
			}
			if err != nil {
				return "up " + n + ": " + err.Error()
			}
		}
		for _, a := range addrs {
			p := netip.MustParsePrefix(a)
			ipn := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
			// nodad: an IPv6 address in DAD is not yet usable, and not listed as such
			if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipn, Flags: 0x02 /* IFA_F_NODAD */}); err != nil {
				return "address " + a + " on " + name + ": " + err.Error()
			}
		}
	}
	return ""
}

func problemKeys(probs []Problem) []string {
	var ks []string
	for _, p := range probs {
		ks = append(ks, p.Key)
	}
	return ks
}

// TestPreflightOnAHost runs the real Preflight in a network namespace built
// for each case: a host that fits the file has no problems; each mistake is
// one problem naming its key and a fix.
func TestPreflightOnAHost(t *testing.T) {
	hostIfaces := map[string][]string{"eth0": {"10.0.0.1/24", "fd00::1/64"}}
	for _, tc := range []struct {
		name   string
		yaml   string // appended to validYAML and the file lines
		ifaces map[string][]string
		want   []string // keys of the problems, in order
		msg    string   // a fragment of the first problem's message
	}{
		{name: "a host that fits the file has no problems", ifaces: hostIfaces},
		{name: "this master's address must be on the host", ifaces: map[string][]string{"eth0": {"10.0.0.2/24"}},
			want: []string{"peers[0].address"}, msg: "10.0.0.1 is not an address of this host"},
		{name: "an explicit address not on the host names address", yaml: "address: 10.0.0.9\n", ifaces: hostIfaces,
			want: []string{"address", "address"}, msg: "differs from this master's peers entry"},
		{name: "the VIP must be in a connected subnet", yaml: "vip: {address: 10.9.0.100}\n", ifaces: hostIfaces,
			want: []string{"vip.address"}, msg: "outside every subnet connected to this host (10.0.0.0/24 on eth0)"},
		{name: "a named VIP interface must exist", yaml: "vip: {address: 10.9.0.100, interface: bond0}\n", ifaces: hostIfaces,
			want: []string{"vip.interface"}, msg: `"bond0" has no address on this host`},
		{name: "a VIP on a second interface's subnet is found", yaml: "vip: {address: 192.168.5.10}\n",
			ifaces: map[string][]string{"eth0": {"10.0.0.1/24"}, "eth1": {"192.168.5.1/24"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := strings.Replace(validYAML, "vip:\n  address: 10.0.0.100\n", "", 1) + preflightFiles(t) + tc.yaml
			if !strings.Contains(tc.yaml, "vip:") {
				yaml += "vip:\n  address: 10.0.0.100\n"
			}
			path := writeConfig(t, yaml)
			var probs []Problem
			inNetns(t, tc.ifaces, func() { probs = Preflight(path) })
			if got := problemKeys(probs); !slices.Equal(got, tc.want) {
				t.Fatalf("problems %q, want keys %q", probs, tc.want)
			}
			for _, p := range probs {
				if p.Fix == "" || p.Warning {
					t.Errorf("%s: an error with a fix expected", p)
				}
			}
			if tc.msg != "" && !strings.Contains(probs[0].Message, tc.msg) {
				t.Errorf("message %q lacks %q", probs[0].Message, tc.msg)
			}
		})
	}
}

// TestPreflightOfTheFile covers what needs no network: the file, the
// decoded values and the files it names. The host is a namespace that fits.
func TestPreflightOfTheFile(t *testing.T) {
	files := "FILES"
	for _, tc := range []struct {
		name string
		yaml string
		want []string // String() of each problem must contain the fragment, in order
	}{
		{name: "two masters are a warning after the errors",
			yaml: "name: m1\npeers: [{name: m1, address: 10.0.0.1}, {name: m2, address: 10.0.0.2}]\nvip: {address: 10.0.0.100, interface: nope0}\n" + files,
			want: []string{"error: vip.interface:", "warning: peers: 2 masters: an even number of voters tolerates no more failures than 1"}},
		{name: "four masters are a warning",
			yaml: strings.Replace(validYAML, "  - {name: m3, address: 10.0.0.3}\n", "  - {name: m3, address: 10.0.0.3}\n  - {name: m4, address: 10.0.0.4}\n", 1) + files,
			want: []string{"warning: peers: 4 masters"}},
		{name: "an IPv6 VIP with IPv4 peers",
			yaml: strings.Replace(validYAML, "10.0.0.100", "fd00::100", 1) + files,
			want: []string{"error: vip.address: fd00::100 is IPv6 but peers[0].address 10.0.0.1 is IPv4: the VIP must be on the masters' network (fix: give a free IPv4 address"}},
		{name: "a missing cluster key",
			yaml: validYAML + "clusterKeyFile: /nonexistent/cluster.key\nkubernetes: {binDir: BINDIR}\n",
			want: []string{"error: clusterKeyFile: /nonexistent/cluster.key: no such file or directory (fix: run 'masterd init'"}},
		{name: "a cluster key others can read",
			yaml: validYAML + "clusterKeyFile: OPENKEY\nkubernetes: {binDir: BINDIR}\n",
			want: []string{"error: clusterKeyFile: OPENKEY has mode 0644: others on this host can read the cluster secret (fix: chmod 0600 OPENKEY)"}},
		{name: "missing kube binaries",
			yaml: validYAML + "clusterKeyFile: KEY\nkubernetes: {binDir: /nonexistent/bin}\n",
			want: []string{"error: kubernetes.binDir: /nonexistent/bin lacks kube-apiserver, kube-scheduler, kube-controller-manager"}},
		{name: "no kube binaries are needed in mode none",
			yaml: validYAML + "clusterKeyFile: KEY\nkubernetes: {mode: none, binDir: /nonexistent/bin}\n"},
		{name: "fast without the fence names keys that exist",
			yaml: validYAML + "  profile: fast\n  fence: false\n" + files,
			want: []string{"error: vip.profile: fast needs vip.fence: true"}},
		{name: "a YAML syntax error is one problem",
			yaml: "name: m1\npeers:\n  - {name: m1, address: 10.0.0.1\nvip: {address: 10.0.0.100}\n",
			want: []string{"not valid YAML"}},
		{name: "a decoding error is reported with the validation problems",
			yaml: validYAML + files + "gossip: {port: seven}\netcd: {peerPort: 70000}\n",
			want: []string{`error: gossip.port: "seven" is not an integer (fix: correct gossip.port at line`, "error: etcd.peerPort: 70000 is outside 1..65535"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			key := filepath.Join(dir, "cluster.key")
			openKey := filepath.Join(dir, "open.key")
			bin := filepath.Join(dir, "bin")
			for _, f := range []struct {
				path string
				mode os.FileMode
			}{{key, 0o600}, {openKey, 0o644}} {
				if err := os.WriteFile(f.path, []byte("secret"), f.mode); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Mkdir(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, b := range kubeBinaries {
				if err := os.WriteFile(filepath.Join(bin, b), nil, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			r := strings.NewReplacer("FILES", "clusterKeyFile: "+key+"\nkubernetes: {binDir: "+bin+"}\n",
				"OPENKEY", openKey, "BINDIR", bin, "KEY", key)
			path := writeConfig(t, r.Replace(tc.yaml))
			var probs []Problem
			inNetns(t, map[string][]string{"eth0": {"10.0.0.1/24"}}, func() { probs = Preflight(path) })
			if len(probs) != len(tc.want) {
				t.Fatalf("%d problems %q, want %d", len(probs), probs, len(tc.want))
			}
			for i, w := range tc.want {
				if got := probs[i].String(); !strings.Contains(got, r.Replace(w)) {
					t.Errorf("problem %d: %q lacks %q", i, got, r.Replace(w))
				}
			}
		})
	}
}

func TestPreflightOfUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, path, want string
	}{
		{name: "a missing file", path: filepath.Join(dir, "nope.yaml"), want: "cannot open the config file: no such file or directory"},
		{name: "a directory", path: dir, want: dir + ": read " + dir + ": is a directory"},
		{name: "a second document", path: writeConfig(t, validYAML+"---\nname: m2\n"), want: "line 9: a second YAML document starts here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probs := Preflight(tc.path)
			if len(probs) != 1 {
				t.Fatalf("want exactly one problem, got %q", probs)
			}
			s := probs[0].String()
			if !strings.Contains(s, tc.want) || probs[0].Fix == "" {
				t.Errorf("%q: want %q and a fix", s, tc.want)
			}
			for _, noise := range []string{"yaml: yaml:", "read: read", "config: config"} {
				if strings.Contains(s, noise) {
					t.Errorf("%q repeats a prefix (%q)", s, noise)
				}
			}
		})
	}
}

// TestConfigProblems checks the pure logic without a host.
func TestConfigProblems(t *testing.T) {
	peers := func(n int) []Peer {
		var ps []Peer
		for i := range n {
			ps = append(ps, Peer{Name: "m" + string(rune('1'+i)), Address: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})})
		}
		return ps
	}
	for n, warn := range map[int]bool{1: false, 2: true, 3: false, 4: true, 5: false, 6: true, 7: false} {
		c := DefaultConfig()
		c.Name, c.Peers = "m1", peers(n)
		c.derive()
		c.VIP.Address = netip.MustParseAddr("10.0.0.100")
		probs := configProblems(&c)
		if got := len(probs) == 1 && probs[0].Warning && probs[0].Key == "peers"; got != warn || len(probs) > 1 {
			t.Errorf("%d peers: problems %q, want a warning: %v", n, probs, warn)
		}
	}
	host := []hostAddr{{Iface: "lo", Prefix: netip.MustParsePrefix("127.0.0.1/8")}, {Iface: "eth0", Prefix: netip.MustParsePrefix("10.0.0.1/24")}}
	c := DefaultConfig()
	c.Name, c.Peers = "m1", peers(3)
	c.derive()
	c.VIP.Address = netip.MustParseAddr("10.9.0.5")
	if probs := hostProblems(&c, host); len(probs) != 1 || probs[0].Key != "vip.address" {
		t.Errorf("a VIP outside every subnet: got %q", probs)
	}
	host = append(host, hostAddr{Iface: "eth0", Prefix: netip.MustParsePrefix("10.9.0.5/32")})
	if probs := hostProblems(&c, host); len(probs) != 1 || probs[0].Key != "vip.address" {
		t.Errorf("the held VIP's own /32 is no subnet: got %q", probs)
	}
	c.VIP.Address = netip.MustParseAddr("10.0.0.200")
	if probs := hostProblems(&c, host); len(probs) != 0 {
		t.Errorf("a fitting host: got %q", probs)
	}
	if got := sortProblems([]Problem{{Warning: true, Key: "a"}, {Key: "b"}, {Warning: true, Key: "c"}, {Key: "d"}}); !slices.Equal(problemKeys(got), []string{"b", "d", "a", "c"}) {
		t.Errorf("errors first, order kept: %v", problemKeys(got))
	}
}
