package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/masterd/masterd/election"
	"github.com/masterd/masterd/pki"
)

// LoadConfig reads, decodes and validates the file at path. Every problem found
// is reported at once, at most maxDecodeErrors decoding and as many validation
// problems, each list ending with "… and N more" when cut. A file that cannot
// be decoded at all (an [*UnreadableError], or one that cannot be read) is
// reported alone, on one line: validating the defaults it leaves behind would
// only add noise.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	cfg, lines, decodeErr := decodeConfig(f)
	var ue *UnreadableError
	var fe *FieldError
	if errors.As(decodeErr, &ue) || (decodeErr != nil && !errors.As(decodeErr, &fe)) {
		// Nothing was decoded (an unreadable file, or a read error such as
		// a directory given as the file): one line, no validation.
		return cfg, fmt.Errorf("config %s: %w", path, decodeErr)
	}
	cfg.derive()
	validateErr := cfg.Validate()
	for _, e := range unjoin(validateErr) {
		if fe, ok := e.(*FieldError); ok && fe.Line == 0 {
			fe.Line = lines[fe.Path]
		}
	}
	if err := mergeErrors(decodeErr, validateErr); err != nil {
		return cfg, fmt.Errorf("config %s:\n%w", path, indent(err))
	}
	return cfg, nil
}

// mergeErrors joins decoding and validation problems, dropping a validation
// problem about a key whose value already failed to decode (it kept its default
// or zero value, so the second message would only confuse). The validation
// problems left are cut to maxDecodeErrors, as the decoder cuts its own.
func mergeErrors(decodeErr, validateErr error) error {
	bad := map[string]bool{}
	for _, e := range unjoin(decodeErr) {
		if fe, ok := e.(*FieldError); ok {
			bad[fe.Path] = true
		}
	}
	var valid []error
	for _, e := range unjoin(validateErr) {
		if fe, ok := e.(*FieldError); ok && bad[fe.Path] {
			continue
		}
		valid = append(valid, e)
	}
	return errors.Join(append(unjoin(decodeErr), capErrors(valid, maxDecodeErrors)...)...)
}

// capErrors keeps the first n of errs and counts the rest in a last
// "… and N more".
func capErrors(errs []error, n int) []error {
	if len(errs) <= n {
		return errs
	}
	return append(errs[:n:n], fmt.Errorf("… and %d more", len(errs)-n))
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// derive fills values that default from other keys.
func (c *Config) derive() {
	if !c.Address.IsValid() {
		if self, ok := c.Self(); ok {
			c.Address = self.Address
		}
	}
}

// indent prefixes each line of a joined error so a list of problems reads as one.
func indent(err error) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return errors.New(strings.Join(lines, "\n"))
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// Validate reports every semantic problem of c, each naming its key. It changes
// nothing.
func (c *Config) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}

	if !nameRE.MatchString(c.Name) {
		bad("name", "%q must be a lowercase DNS name (a-z, 0-9, '-', '.'), 1-63 characters", c.Name)
	}
	if len(c.Peers) == 0 {
		bad("peers", "must list every master, this one included")
	}
	names, addrs := map[string]int{}, map[netip.Addr]int{}
	for i, p := range c.Peers {
		path := fmt.Sprintf("peers[%d]", i)
		if !nameRE.MatchString(p.Name) {
			bad(path+".name", "%q must be a lowercase DNS name", p.Name)
		} else if j, dup := names[p.Name]; dup {
			bad(path+".name", "%q is also peers[%d].name", p.Name, j)
		} else {
			names[p.Name] = i
		}
		switch {
		case !p.Address.IsValid():
			bad(path+".address", "is required")
		case p.Address.IsUnspecified() || p.Address.IsMulticast():
			bad(path+".address", "%s is not a unicast address", p.Address)
		default:
			if j, dup := addrs[p.Address]; dup {
				bad(path+".address", "%s is also peers[%d].address", p.Address, j)
			} else {
				addrs[p.Address] = i
			}
		}
	}
	if len(c.Peers) > 0 && nameRE.MatchString(c.Name) {
		if _, ok := names[c.Name]; !ok {
			bad("peers", "this node %q (key name) is not listed", c.Name)
		}
	}
	if len(c.Peers) > 7 {
		bad("peers", "%d masters: at most 7 are supported (every master votes)", len(c.Peers))
	}
	if !c.Address.IsValid() {
		if _, ok := c.Self(); ok {
			bad("address", "is required")
		}
	} else if c.Address.IsUnspecified() {
		bad("address", "%s: give the node's own address, not a wildcard", c.Address)
	}
	checkAbs := func(path, v string) {
		if v == "" {
			bad(path, "is required")
		} else if !filepath.IsAbs(v) {
			bad(path, "%q must be an absolute path", v)
		}
	}
	checkAbs("clusterKeyFile", c.ClusterKeyFile)
	checkAbs("dataDir", c.DataDir)
	if c.PKI.ExternalDir != "" && !filepath.IsAbs(c.PKI.ExternalDir) {
		bad("pki.externalDir", "%q must be an absolute path", c.PKI.ExternalDir)
	}
	if v := c.PKI.LeafValidity.D(); v < pki.MinLeafValidity {
		bad("pki.leafValidity", "%s: must be at least %s", v, pki.MinLeafValidity)
	} else if r := c.PKI.RenewBefore.D(); r <= 0 || r >= v {
		bad("pki.renewBefore", "%s: must be more than 0 and less than pki.leafValidity %s", r, v)
	}
	if c.Priority < 0 || c.Priority > 1000 {
		bad("priority", "%d is outside 0..1000", c.Priority)
	}

	ports := portSet{bad: bad}
	ports.add("gossip.port", c.Gossip.Port)
	if c.Gossip.ClusterName == "" || len(c.Gossip.ClusterName) > 64 {
		bad("gossip.clusterName", "must be 1-64 characters")
	}
	if c.Election.ClockDriftPPM < 0 || c.Election.ClockDriftPPM > 100_000 {
		bad("election.clockDriftPPM", "%d is outside 0..100000", c.Election.ClockDriftPPM)
	}
	eps := float64(c.Election.ClockDriftPPM) / 1e6

	if c.VIP.Enabled {
		c.validateVIP(bad, eps, addrs, &ports)
	}
	checkTimings(bad, "roles.scheduler", c.Roles.Scheduler, eps, election.UnitSlack)
	checkTimings(bad, "roles.controllerManager", c.Roles.ControllerManager, eps, election.UnitSlack)

	ports.add("etcd.clientPort", c.Etcd.ClientPort)
	ports.add("etcd.peerPort", c.Etcd.PeerPort)
	if c.Etcd.QuotaBytes < 64<<20 || c.Etcd.QuotaBytes > 100<<30 {
		bad("etcd.quotaBytes", "%d is outside 64 MiB..100 GiB", c.Etcd.QuotaBytes)
	}
	if c.Etcd.SnapshotInterval.D() != 0 && c.Etcd.SnapshotInterval.D() < time.Minute {
		bad("etcd.snapshotInterval", "%s is shorter than 1m (0 disables snapshots)", c.Etcd.SnapshotInterval)
	}
	if c.Etcd.SnapshotRetention < 1 || c.Etcd.SnapshotRetention > 1000 {
		bad("etcd.snapshotRetention", "%d is outside 1..1000", c.Etcd.SnapshotRetention)
	}
	c.validateBackup(bad)

	c.validateKubernetes(bad, &ports)
	if c.Kubernetes.Mode == "managed" {
		c.validateEncryptionAndAudit(bad)
		if err := ValidateNodes(*c, c.Nodes); err != nil {
			errs = append(errs, unjoin(err)...)
		}
	} else if c.Nodes.MasterKubelet.Enabled {
		bad("nodes.masterKubelet.enabled", "needs kubernetes.mode managed (masterd writes the kubelet's unit), not %s", c.Kubernetes.Mode)
	}

	if host, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
		bad("metrics.listen", "%q is not host:port", c.Metrics.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		bad("metrics.listen", "%q: port must be 1..65535", c.Metrics.Listen)
	} else {
		if a, err := netip.ParseAddr(host); host != "" && err != nil {
			bad("metrics.listen", "%q: host must be an IP address", c.Metrics.Listen)
		} else {
			if host == "" || a.IsUnspecified() || a == c.Address || a.IsLoopback() {
				ports.add("metrics.listen", n)
			}
			if c.Metrics.Pprof && (host == "" || !a.IsLoopback()) {
				bad("metrics.pprof", "needs a loopback metrics.listen, not %q", c.Metrics.Listen)
			}
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q must be text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q must be debug, info, warn or error", c.Log.Level)
	}
	return errors.Join(errs...)
}

func (c *Config) validateVIP(bad func(string, string, ...any), eps float64, peers map[netip.Addr]int, ports *portSet) {
	v := c.VIP
	switch {
	case !v.Address.IsValid():
		bad("vip.address", "is required when vip.enabled is true")
	case v.Address.IsUnspecified() || v.Address.IsMulticast() || v.Address.IsLoopback():
		bad("vip.address", "%s cannot float between hosts", v.Address)
	default:
		if i, ok := peers[v.Address]; ok {
			bad("vip.address", "%s is peers[%d].address; the VIP must be an address no master owns", v.Address, i)
		}
		if c.Kubernetes.ServiceCIDR.IsValid() && c.Kubernetes.ServiceCIDR.Contains(v.Address) {
			bad("vip.address", "%s is inside kubernetes.serviceCIDR %s", v.Address, c.Kubernetes.ServiceCIDR)
		}
	}
	if len(v.Interface) > 15 || strings.ContainsAny(v.Interface, "/ \t") {
		bad("vip.interface", "%q is not an interface name", v.Interface)
	}
	budget := election.RoleSlack(RoleVIP, v.Fence)
	switch v.Profile {
	case election.ProfileDefault:
	case election.ProfileFast:
		if !v.Fence {
			bad("vip.profile", "fast needs vip.fence: true (its ~100 ms of slack is only safe with the kernel fence)")
		}
	case election.ProfileCustom:
		checkTimings(bad, "vip.timings", v.Timings, eps, budget)
	default:
		bad("vip.profile", "%q must be default, fast or custom", v.Profile)
	}
	if t, ok := election.VIPProfile(v.Profile, v.Fence); ok && (v.Fence || v.Profile != election.ProfileFast) {
		// A built-in profile is safe with its own slack unless the
		// tolerated drift is extreme; the key to change is then the drift.
		if need := t.RequiredLease(eps); t.LeaseDuration < need {
			bad("election.clockDriftPPM", "%d ppm is too large for vip.profile %s (its lease %s would have to be at least %s); lower it or use vip.profile: custom",
				c.Election.ClockDriftPPM, v.Profile, t.LeaseDuration, need.Round(time.Millisecond))
		}
	}
	if v.Profile != "custom" && v.Timings != (Timings{}) {
		bad("vip.timings", "only used with vip.profile: custom (profile is %q)", v.Profile)
	}
	if v.Balancer.Enabled {
		if v.Balancer.MaxConnections < 0 {
			bad("vip.balancer.maxConnections", "%d: must be 0 (no cap) or positive", v.Balancer.MaxConnections)
		}
		if v.Balancer.MaxConnectionsPerSource < 0 {
			bad("vip.balancer.maxConnectionsPerSource", "%d: must be 0 (no cap) or positive", v.Balancer.MaxConnectionsPerSource)
		}
		if v.Balancer.Port < 1 || v.Balancer.Port > 65535 {
			bad("vip.balancer.port", "%d is outside 1..65535", v.Balancer.Port)
		}
	}
}

func (c *Config) validateKubernetes(bad func(string, string, ...any), ports *portSet) {
	k := c.Kubernetes
	switch k.Mode {
	case "managed":
		if !filepath.IsAbs(k.BinDir) {
			bad("kubernetes.binDir", "%q must be an absolute path", k.BinDir)
		}
	case "existing":
		for path, comp := range map[string]ComponentConfig{
			"kubernetes.apiserver.unit": k.APIServer, "kubernetes.scheduler.unit": k.Scheduler,
			"kubernetes.controllerManager.unit": k.ControllerManager,
		} {
			if comp.Unit == "" {
				bad(path, "is required when kubernetes.mode is existing")
			} else if !strings.Contains(comp.Unit, ".") {
				bad(path, "%q must be a full unit name such as kube-apiserver.service", comp.Unit)
			}
		}
	case "none":
	default:
		bad("kubernetes.mode", "%q must be managed, existing or none", k.Mode)
	}
	if !k.ServiceCIDR.IsValid() {
		bad("kubernetes.serviceCIDR", "is required")
	} else {
		for i, p := range c.Peers {
			if k.ServiceCIDR.Contains(p.Address) {
				bad("kubernetes.serviceCIDR", "%s contains peers[%d].address %s", k.ServiceCIDR, i, p.Address)
			}
		}
	}
	if !regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`).MatchString(k.ClusterDomain) {
		bad("kubernetes.clusterDomain", "%q is not a DNS domain", k.ClusterDomain)
	}
	for i, san := range k.APIServerCertSANs {
		if !pki.ValidSAN(san) {
			bad(fmt.Sprintf("kubernetes.apiserverCertSANs[%d]", i), "%q is neither an IP address nor a lowercase DNS name", san)
		}
	}
	ports.add("kubernetes.apiserverPort", k.APIServerPort)
	for path, comp := range map[string]ComponentConfig{
		"kubernetes.apiserver": k.APIServer, "kubernetes.scheduler": k.Scheduler,
		"kubernetes.controllerManager": k.ControllerManager,
	} {
		for flag := range comp.ExtraArgs {
			if strings.HasPrefix(flag, "-") || flag == "" || strings.ContainsAny(flag, "= ") {
				bad(path+".extraArgs."+flag, "give the flag name without dashes or '=' (e.g. v: \"2\")")
			}
		}
	}
}

// maxEncryptionKeys bounds kubernetes.encryption.keys: a rotation needs two
// generations at once; a few more leave room for a rotation started before
// the last one's old key was dropped.
const maxEncryptionKeys = 4

// validateEncryptionAndAudit checks at load what writeAPIServerFiles and
// kube-apiserver's command line would otherwise refuse only when masterd
// starts (managed mode: the other modes write neither).
func (c *Config) validateEncryptionAndAudit(bad func(string, string, ...any)) {
	enc := c.Kubernetes.Encryption
	switch {
	case len(enc.Keys) == 0:
		bad("kubernetes.encryption.keys", "must list at least one key generation (the first encrypts), e.g. [1]")
	case len(enc.Keys) > maxEncryptionKeys:
		bad("kubernetes.encryption.keys", "%d generations: at most %d (a rotation needs two: drop the generations no Secret uses)", len(enc.Keys), maxEncryptionKeys)
	}
	seen := map[int]int{}
	for i, g := range enc.Keys {
		path := fmt.Sprintf("kubernetes.encryption.keys[%d]", i)
		if g < 1 || g > pki.MaxEncryptionKeyGeneration {
			bad(path, "%d is outside 1..%d", g, pki.MaxEncryptionKeyGeneration)
		} else if j, dup := seen[g]; dup {
			bad(path, "generation %d is also kubernetes.encryption.keys[%d]", g, j)
		} else {
			seen[g] = i
		}
	}
	a := c.Kubernetes.Audit
	if !a.Enabled {
		return
	}
	if a.Path == "" {
		bad("kubernetes.audit.path", "is required when kubernetes.audit.enabled is true")
	} else if !filepath.IsAbs(a.Path) {
		bad("kubernetes.audit.path", "%q must be an absolute path", a.Path)
	}
	for _, f := range []struct {
		path string
		v    int
	}{
		{"kubernetes.audit.maxAgeDays", a.MaxAgeDays}, {"kubernetes.audit.maxBackups", a.MaxBackups},
		{"kubernetes.audit.maxSizeMB", a.MaxSizeMB},
	} {
		if f.v < 0 {
			bad(f.path, "%d must not be negative", f.v)
		}
	}
}

// checkTimings reports what election.Timing.Problems finds in t with the
// slack budget of its role, each under path.<field>: the configuration is
// checked with exactly the rules the election enforces.
func checkTimings(bad func(string, string, ...any), path string, t Timings, eps float64, budget election.Slack) {
	for _, p := range electionTiming(t, budget).Problems(eps) {
		bad(path+"."+p.Field, "%s", p.Msg)
	}
}

// portSet reports a port used twice on this node.
type portSet struct {
	bad  func(string, string, ...any)
	seen map[int]string
}

func (s *portSet) add(path string, port int) {
	if port < 1 || port > 65535 {
		s.bad(path, "%d is outside 1..65535", port)
		return
	}
	if s.seen == nil {
		s.seen = map[int]string{}
	}
	if other, ok := s.seen[port]; ok {
		s.bad(path, "port %d is also %s", port, other)
		return
	}
	s.seen[port] = path
}

// electionTiming is t with the slack budget, as the election package takes it.
func electionTiming(t Timings, s election.Slack) election.Timing {
	return election.Timing{
		LeaseDuration: t.LeaseDuration.D(),
		RenewDeadline: t.RenewDeadline.D(),
		RetryPeriod:   t.RetryPeriod.D(),
	}.WithSlack(s)
}
