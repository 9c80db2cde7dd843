package agent

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
)

// Problem is one finding of Preflight: an error (masterd would refuse to
// start or would misbehave) or a warning (it runs, but not as the operator
// probably wants). Key is the key path of the configuration it is about
// ("peers[1].address"), empty for the file as a whole; Fix says what to do.
type Problem struct {
	Warning bool
	Key     string
	Message string
	Fix     string
}

// String formats p on one line: "error: key: message (fix: …)".
func (p Problem) String() string {
	var b strings.Builder
	if p.Warning {
		b.WriteString("warning: ")
	} else {
		b.WriteString("error: ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Fix != "" {
		b.WriteString(" (fix: ")
		b.WriteString(p.Fix)
		b.WriteString(")")
	}
	return b.String()
}

// kubeBinaries are the files kubernetes.mode managed runs from kubernetes.binDir.
var kubeBinaries = []string{"kube-apiserver", "kube-scheduler", "kube-controller-manager"}

// Preflight loads the file at path, validates it, and checks this host
// (addresses, files, binaries). A file that cannot be read or decoded is
// reported as Problems too: a file that is not YAML at all is one problem and
// nothing else. Errors come first, then warnings. An empty result means the
// configuration is fit to run on this host.
//
// The host checks read the network namespace of the calling thread.
func Preflight(path string) []Problem {
	cfg, probs, ok := loadForPreflight(path)
	if !ok {
		return probs
	}
	probs = append(probs, configProblems(&cfg)...)
	host, err := readHost()
	if err != nil {
		probs = append(probs, Problem{Message: fmt.Sprintf("cannot read this host's addresses: %v", err),
			Fix: "run the check as root on the master itself"})
	} else {
		probs = append(probs, hostProblems(&cfg, host)...)
	}
	probs = append(probs, fileProblems(&cfg)...)
	return sortProblems(probs)
}

// loadForPreflight decodes and validates the file as LoadConfig does, turning
// every error into a Problem. ok is false when the file could not be decoded
// at all; the defaults left behind are then not checked further.
func loadForPreflight(path string) (cfg Config, probs []Problem, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return cfg, []Problem{{Message: fmt.Sprintf("cannot open the config file: %v", unwrapPath(err)),
			Fix: fmt.Sprintf("give the path of masterd.yaml (--config); %s is what was tried", path)}}, false
	}
	defer f.Close()
	cfg, lines, decodeErr := decodeConfig(f)
	var ue *UnreadableError
	var fe *FieldError
	if errors.As(decodeErr, &ue) || (decodeErr != nil && !errors.As(decodeErr, &fe)) {
		return cfg, []Problem{{Message: fmt.Sprintf("%s: %v", path, decodeErr),
			Fix: "correct the file; compare with /usr/share/doc/masterd/masterd.yaml"}}, false
	}
	cfg.derive()
	validateErr := cfg.Validate()
	for _, e := range unjoin(validateErr) {
		if fe, ok := e.(*FieldError); ok && fe.Line == 0 {
			fe.Line = lines[fe.Path]
		}
	}
	for _, e := range unjoin(mergeErrors(decodeErr, validateErr)) {
		probs = append(probs, problemOf(path, e))
	}
	return cfg, probs, true
}

// problemOf turns a decoding or validation error into a Problem.
func problemOf(path string, err error) Problem {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return Problem{Message: err.Error()}
	}
	fix := fmt.Sprintf("correct %s in %s", fe.Path, path)
	if fe.Line > 0 {
		fix = fmt.Sprintf("correct %s at line %d of %s", fe.Path, fe.Line, path)
	}
	return Problem{Key: fe.Path, Message: fe.Msg, Fix: fix}
}

// unwrapPath drops the *PathError's operation and path, which the caller
// states itself ("open /x: no such file" becomes "no such file").
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// configProblems are the checks of a decoded configuration that Validate
// does not make because the daemon can run with them, or because they are
// only warnings.
func configProblems(c *Config) []Problem {
	var probs []Problem
	if n := len(c.Peers); n > 0 && n%2 == 0 {
		probs = append(probs, Problem{Warning: true, Key: "peers",
			Message: fmt.Sprintf("%d masters: an even number of voters tolerates no more failures than %d (quorum is %d of %d)", n, n-1, n/2+1, n),
			Fix:     fmt.Sprintf("use an odd number of masters (%d or %d)", n-1, n+1)})
	}
	if c.Kubernetes.Mode == "managed" && c.Nodes.Enabled {
		if _, err := NodesServer(*c, c.Nodes); errors.Is(err, errNoNodesEndpoint) {
			probs = append(probs, Problem{Warning: true, Key: "nodes.apiserverEndpoint",
				Message: "empty while vip.enabled is false: masterd publishes nothing for worker nodes (they must not depend on one master)",
				Fix:     "set it to your load balancer's host:port, or set nodes.enabled: false"})
		}
	}
	probs = append(probs, masterKubeletProblems(c)...)
	if self, ok := c.Self(); ok && c.Address.IsValid() && self.Address.IsValid() && c.Address != self.Address {
		probs = append(probs, Problem{Key: "address",
			Message: fmt.Sprintf("%s differs from this master's peers entry (%s, %s): the other masters would reach it at an address it does not listen on", c.Address, self.Name, self.Address),
			Fix:     "remove address (it defaults to the peers entry) or make the two equal"})
	}
	if c.VIP.Enabled && c.VIP.Address.IsValid() {
		for i, p := range c.Peers {
			if p.Address.IsValid() && p.Address.Is4() != c.VIP.Address.Is4() {
				probs = append(probs, Problem{Key: "vip.address",
					Message: fmt.Sprintf("%s is %s but peers[%d].address %s is %s: the VIP must be on the masters' network", c.VIP.Address, family(c.VIP.Address), i, p.Address, family(p.Address)),
					Fix:     fmt.Sprintf("give a free %s address of the masters' subnet", family(p.Address))})
				break
			}
		}
	}
	return probs
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// hostAddr is one address configured on this host.
type hostAddr struct {
	Iface  string
	Prefix netip.Prefix // the address with its subnet's length
}

// readHost lists the addresses of every interface in the calling thread's
// network namespace.
func readHost() ([]hostAddr, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []hostAddr
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, hostAddr{Iface: names[a.LinkIndex], Prefix: netip.PrefixFrom(ip.Unmap(), ones)})
	}
	return out, nil
}

// hostProblems checks c against the addresses of this host: its own address
// must be one of them, and the VIP must fall in a connected subnet (or its
// interface must exist).
func hostProblems(c *Config, host []hostAddr) []Problem {
	var probs []Problem
	if c.Address.IsValid() && !c.Address.IsUnspecified() {
		// lo's 127.0.0.1/8 makes every 127.x address local (the kernel
		// answers and binds them all), not only the one listed.
		local := func(h hostAddr) bool {
			return h.Prefix.Addr() == c.Address || (h.Prefix.Addr().IsLoopback() && h.Prefix.Contains(c.Address))
		}
		if !slices.ContainsFunc(host, local) {
			key := "address"
			if self, ok := c.Self(); ok && self.Address == c.Address {
				if i := slices.Index(c.Peers, self); i >= 0 {
					key = fmt.Sprintf("peers[%d].address", i)
				}
			}
			probs = append(probs, Problem{Key: key,
				Message: fmt.Sprintf("%s is not an address of this host (name %q); this host has %s", c.Address, c.Name, listAddrs(host, c.Address)),
				Fix:     "run on the master whose address this is, or set name (and address) to this master's"})
		}
	}
	// A VIP of the other family than address is reported by configProblems.
	if c.VIP.Enabled && c.VIP.Address.IsValid() && (!c.Address.IsValid() || c.Address.Is4() == c.VIP.Address.Is4()) {
		probs = append(probs, vipHostProblems(c, host)...)
	}
	return probs
}

func vipHostProblems(c *Config, host []hostAddr) []Problem {
	v := c.VIP
	if v.Interface != "" {
		if !slices.ContainsFunc(host, func(h hostAddr) bool { return h.Iface == v.Interface }) {
			return []Problem{{Key: "vip.interface",
				Message: fmt.Sprintf("%q has no address on this host (missing or down?)", v.Interface),
				Fix:     "name the interface of the masters' network (ip -brief address), or leave vip.interface out"}}
		}
		return nil
	}
	// The rule of vip.ResolveInterface: another prefix, shorter than a
	// host's, holds the VIP.
	for _, h := range host {
		if h.Prefix.Bits() < v.Address.BitLen() && h.Prefix.Contains(v.Address) {
			return nil
		}
	}
	return []Problem{{Key: "vip.address",
		Message: fmt.Sprintf("%s is outside every subnet connected to this host (%s): no interface can announce it", v.Address, listPrefixes(host, v.Address)),
		Fix:     "choose a free address in the masters' subnet, or set vip.interface"}}
}

// listAddrs names this host's non-loopback addresses of a's family.
func listAddrs(host []hostAddr, a netip.Addr) string {
	var s []string
	for _, h := range host {
		if h.Prefix.Addr().Is4() == a.Is4() && !h.Prefix.Addr().IsLoopback() && !h.Prefix.Addr().IsLinkLocalUnicast() {
			s = append(s, h.Prefix.Addr().String())
		}
	}
	if len(s) == 0 {
		return "no " + family(a) + " address"
	}
	return strings.Join(s, ", ")
}

func listPrefixes(host []hostAddr, a netip.Addr) string {
	var s []string
	for _, h := range host {
		if h.Prefix.Addr().Is4() == a.Is4() && !h.Prefix.Addr().IsLoopback() && !h.Prefix.Addr().IsLinkLocalUnicast() {
			s = append(s, h.Prefix.Masked().String()+" on "+h.Iface)
		}
	}
	if len(s) == 0 {
		return "no " + family(a) + " subnet"
	}
	return strings.Join(s, ", ")
}

// fileProblems checks the files the configuration names: the cluster key and
// the kube binaries.
func fileProblems(c *Config) []Problem {
	var probs []Problem
	if filepath.IsAbs(c.ClusterKeyFile) {
		if err := readable(c.ClusterKeyFile); err != nil {
			probs = append(probs, Problem{Key: "clusterKeyFile",
				Message: fmt.Sprintf("%s: %v", c.ClusterKeyFile, err),
				Fix:     "run 'masterd init' on the first master and copy the key to the others (mode 0600, owner root)"})
		} else if fi, err := os.Stat(c.ClusterKeyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			probs = append(probs, Problem{Key: "clusterKeyFile",
				Message: fmt.Sprintf("%s has mode %#o: others on this host can read the cluster secret", c.ClusterKeyFile, fi.Mode().Perm()),
				Fix:     "chmod 0600 " + c.ClusterKeyFile})
		}
	}
	if c.PKI.ExternalDir != "" && filepath.IsAbs(c.PKI.ExternalDir) {
		if fi, err := os.Stat(c.PKI.ExternalDir); err != nil || !fi.IsDir() {
			probs = append(probs, Problem{Key: "pki.externalDir",
				Message: fmt.Sprintf("%s is not a directory", c.PKI.ExternalDir),
				Fix:     "give the directory holding your PKI files, or leave pki.externalDir out to derive them"})
		}
	}
	if c.Kubernetes.Mode == "managed" && filepath.IsAbs(c.Kubernetes.BinDir) {
		var missing []string
		for _, b := range kubeBinaries {
			if !executable(filepath.Join(c.Kubernetes.BinDir, b)) {
				missing = append(missing, b)
			}
		}
		if len(missing) > 0 {
			probs = append(probs, Problem{Key: "kubernetes.binDir",
				Message: fmt.Sprintf("%s lacks %s (or they are not executable)", c.Kubernetes.BinDir, strings.Join(missing, ", ")),
				Fix:     "install the Kubernetes server binaries there, or set kubernetes.binDir to where they are"})
		}
	}
	return probs
}

// readable opens the file and reads a byte of it.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return unwrapPath(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return unwrapPath(err)
	}
	if !fi.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	if _, err := f.Read(make([]byte, 1)); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty")
		}
		return unwrapPath(err)
	}
	return nil
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// sortProblems puts errors before warnings, keeping the order within each.
func sortProblems(probs []Problem) []Problem {
	slices.SortStableFunc(probs, func(a, b Problem) int {
		switch {
		case a.Warning == b.Warning:
			return 0
		case b.Warning:
			return -1
		}
		return 1
	})
	return probs
}
