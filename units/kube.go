package units

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Unit names of the control-plane components in managed mode.
const (
	APIServerUnit         = "kube-apiserver.service"
	SchedulerUnit         = "kube-scheduler.service"
	ControllerManagerUnit = "kube-controller-manager.service"
)

// LeaseTimings are a leader-elected component's own lease settings
// (--leader-elect stays on as a second fence behind masterd's election).
// They do not follow masterd's role timing: the agent hands the Lease over
// at a takeover, so its length delays nothing, and kube's 15s/10s/2s keep
// a component on a slow apiserver from giving up its Lease.
type LeaseTimings struct {
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// KubeConfig is what the managed units' command lines are generated from.
// Paths are as seen by systemd (the pki package provides them).
type KubeConfig struct {
	// BinDir holds kube-apiserver, kube-scheduler, kube-controller-manager.
	BinDir string

	// AdvertiseAddress is this master's address, announced in the
	// kubernetes service's endpoints.
	AdvertiseAddress string
	// BindAddress is where the apiserver listens (all addresses by default:
	// the balancer on the VIP holder forwards to each master's address).
	BindAddress string
	// SecurePort is the apiserver's port.
	SecurePort int
	// EtcdServers are the masters' etcd client URLs.
	EtcdServers []string
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile authenticate the apiserver to
	// etcd (mutual TLS); empty for plain http (tests only).
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// ServiceClusterIPRange is the service CIDR.
	ServiceClusterIPRange string
	// ClusterCIDR is the pod CIDR; empty leaves node CIDR allocation off.
	ClusterCIDR string
	// ClusterName names the cluster in the controller-manager.
	ClusterName string

	// CAFile and CAKeyFile are the cluster CA: client CA of the apiserver,
	// signer and root CA of the controller-manager.
	CAFile, CAKeyFile string
	// APIServerCertFile and APIServerKeyFile are the apiserver's serving pair.
	APIServerCertFile, APIServerKeyFile string
	// KubeletClientCertFile and KubeletClientKeyFile (optional) let the
	// apiserver reach kubelets.
	KubeletClientCertFile, KubeletClientKeyFile string
	// ServiceAccountKeyFile verifies and ServiceAccountSigningKeyFile signs
	// service-account tokens (the controller-manager signs legacy token
	// Secrets with the latter in either case).
	ServiceAccountKeyFile, ServiceAccountSigningKeyFile string
	// ServiceAccountSigningEndpoint, when set, is the Unix socket of the
	// external token signer (package tokensigner) the apiserver signs and
	// verifies with instead of the two files, whose keys it reads only at
	// start (--service-account-signing-endpoint).
	ServiceAccountSigningEndpoint string
	// ServiceAccountIssuer is the tokens' issuer.
	ServiceAccountIssuer string
	// SchedulerKubeconfig and ControllerManagerKubeconfig are the
	// components' credentials to the apiserver.
	SchedulerKubeconfig, ControllerManagerKubeconfig string

	// EncryptionConfigFile is kube-apiserver's EncryptionConfiguration
	// (--encryption-provider-config, reloaded when it changes); empty leaves
	// Secrets in plain text in etcd.
	EncryptionConfigFile string
	// AuditPolicyFile and AuditLogPath turn the audit log on (both or
	// neither); the log is rotated at AuditLogMaxSize MB, keeping
	// AuditLogMaxBackups files for AuditLogMaxAge days.
	AuditPolicyFile, AuditLogPath                       string
	AuditLogMaxAge, AuditLogMaxBackups, AuditLogMaxSize int

	// MaxRequestsInflight and MaxMutatingRequestsInflight bound the
	// apiserver's concurrent requests.
	MaxRequestsInflight, MaxMutatingRequestsInflight int

	// SchedulerLease and ControllerManagerLease are the components' own
	// leader-election timings (kube's defaults unless changed).
	SchedulerLease, ControllerManagerLease LeaseTimings

	// Extra args per component, "--flag=value" or "--flag"; a flag given
	// here replaces the generated flag of the same name, others are appended.
	APIServerExtraArgs, SchedulerExtraArgs, ControllerManagerExtraArgs []string
}

// DefaultKubeConfig returns the defaults; node addresses, etcd servers and
// certificate paths are left for the agent to fill in.
func DefaultKubeConfig() KubeConfig {
	lease := LeaseTimings{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	return KubeConfig{
		// Where the Makefile's kube build and most manual installs put them.
		BinDir:      "/usr/local/bin",
		BindAddress: "0.0.0.0",
		SecurePort:  6443,
		// kubeadm's default service CIDR.
		ServiceClusterIPRange: "10.96.0.0/12",
		ClusterName:           "kubernetes",
		ServiceAccountIssuer:  "https://kubernetes.default.svc.cluster.local",
		// kube-apiserver's own defaults, spelled out so the unit shows them.
		MaxRequestsInflight:         400,
		MaxMutatingRequestsInflight: 200,
		// The 15s/10s/2s defaults of the components' own leader election.
		SchedulerLease:         lease,
		ControllerManagerLease: lease,
	}
}

// Validate reports every problem at once.
func (k KubeConfig) Validate() error {
	var errs []error
	req := func(field, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("units: kube %s: required", field))
		}
	}
	if !filepath.IsAbs(k.BinDir) {
		errs = append(errs, fmt.Errorf("units: kube bin_dir %q: must be an absolute path", k.BinDir))
	}
	if net.ParseIP(k.AdvertiseAddress) == nil {
		errs = append(errs, fmt.Errorf("units: kube advertise_address %q: not an IP address", k.AdvertiseAddress))
	}
	if net.ParseIP(k.BindAddress) == nil {
		errs = append(errs, fmt.Errorf("units: kube bind_address %q: not an IP address", k.BindAddress))
	}
	if k.SecurePort < 1 || k.SecurePort > 65535 {
		errs = append(errs, fmt.Errorf("units: kube secure_port %d: must be in [1, 65535]", k.SecurePort))
	}
	if len(k.EtcdServers) == 0 {
		errs = append(errs, errors.New("units: kube etcd_servers: at least one required"))
	}
	for _, s := range k.EtcdServers {
		if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
			errs = append(errs, fmt.Errorf("units: kube etcd_servers %q: want an http(s) URL", s))
		}
	}
	if _, _, err := net.ParseCIDR(k.ServiceClusterIPRange); err != nil {
		errs = append(errs, fmt.Errorf("units: kube service_cluster_ip_range %q: not a CIDR", k.ServiceClusterIPRange))
	}
	if k.ClusterCIDR != "" {
		if _, _, err := net.ParseCIDR(k.ClusterCIDR); err != nil {
			errs = append(errs, fmt.Errorf("units: kube cluster_cidr %q: not a CIDR", k.ClusterCIDR))
		}
	}
	req("ca_file", k.CAFile)
	req("ca_key_file", k.CAKeyFile)
	req("apiserver_cert_file", k.APIServerCertFile)
	req("apiserver_key_file", k.APIServerKeyFile)
	if k.ServiceAccountSigningEndpoint == "" {
		req("service_account_key_file", k.ServiceAccountKeyFile)
	}
	req("service_account_signing_key_file", k.ServiceAccountSigningKeyFile)
	req("service_account_issuer", k.ServiceAccountIssuer)
	req("scheduler_kubeconfig", k.SchedulerKubeconfig)
	req("controller_manager_kubeconfig", k.ControllerManagerKubeconfig)
	for _, p := range []struct{ name, path string }{
		{"encryption_config_file", k.EncryptionConfigFile}, {"audit_policy_file", k.AuditPolicyFile}, {"audit_log_path", k.AuditLogPath},
	} {
		if p.path != "" && !filepath.IsAbs(p.path) {
			errs = append(errs, fmt.Errorf("units: kube %s %q: must be an absolute path", p.name, p.path))
		}
	}
	if (k.AuditPolicyFile == "") != (k.AuditLogPath == "") {
		errs = append(errs, errors.New("units: kube audit_policy_file and audit_log_path: set both or neither"))
	}
	if k.AuditLogMaxAge < 0 || k.AuditLogMaxBackups < 0 || k.AuditLogMaxSize < 0 {
		errs = append(errs, errors.New("units: kube audit_log_max_age, audit_log_max_backups and audit_log_max_size: must not be negative"))
	}
	if k.MaxRequestsInflight < 0 || k.MaxMutatingRequestsInflight < 0 {
		errs = append(errs, errors.New("units: kube max_requests_inflight and max_mutating_requests_inflight: must not be negative"))
	}
	for _, l := range []struct {
		name string
		t    LeaseTimings
	}{{"scheduler_lease", k.SchedulerLease}, {"controller_manager_lease", k.ControllerManagerLease}} {
		// kube's own validation: lease > renew > 1.2 x retry ... and positive.
		if l.t.RetryPeriod <= 0 || l.t.RenewDeadline <= 0 || l.t.LeaseDuration <= l.t.RenewDeadline ||
			float64(l.t.RenewDeadline) <= 1.2*float64(l.t.RetryPeriod) {
			errs = append(errs, fmt.Errorf("units: kube %s %+v: want lease_duration > renew_deadline > 1.2 x retry_period > 0", l.name, l.t))
		}
	}
	for _, e := range []struct {
		name string
		args []string
	}{{"apiserver_extra_args", k.APIServerExtraArgs}, {"scheduler_extra_args", k.SchedulerExtraArgs}, {"controller_manager_extra_args", k.ControllerManagerExtraArgs}} {
		for _, a := range e.args {
			if _, _, err := splitFlag(a); err != nil {
				errs = append(errs, fmt.Errorf("units: kube %s: %w", e.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// APIServer returns the managed kube-apiserver definition.
func (k KubeConfig) APIServer() (Definition, error) {
	f := flags{}
	f.set("advertise-address", k.AdvertiseAddress)
	f.set("bind-address", k.BindAddress)
	f.set("secure-port", strconv.Itoa(k.SecurePort))
	f.set("etcd-servers", strings.Join(k.EtcdServers, ","))
	f.setIf("etcd-cafile", k.EtcdCAFile)
	f.setIf("etcd-certfile", k.EtcdCertFile)
	f.setIf("etcd-keyfile", k.EtcdKeyFile)
	f.set("service-cluster-ip-range", k.ServiceClusterIPRange)
	f.set("client-ca-file", k.CAFile)
	f.set("tls-cert-file", k.APIServerCertFile)
	f.set("tls-private-key-file", k.APIServerKeyFile)
	f.setIf("kubelet-client-certificate", k.KubeletClientCertFile)
	f.setIf("kubelet-client-key", k.KubeletClientKeyFile)
	// kubeadm's choice: the apiserver reaches kubelets (logs, exec) by the
	// Node's InternalIP, so node names need not resolve through DNS.
	f.set("kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname")
	if k.ServiceAccountSigningEndpoint != "" {
		f.set("service-account-signing-endpoint", k.ServiceAccountSigningEndpoint)
	} else {
		f.set("service-account-key-file", k.ServiceAccountKeyFile)
		f.set("service-account-signing-key-file", k.ServiceAccountSigningKeyFile)
	}
	f.set("service-account-issuer", k.ServiceAccountIssuer)
	f.set("authorization-mode", "Node,RBAC")
	// NodeRestriction limits a kubelet to its own Node and its pods (the
	// Node authorizer alone lets it modify any Node); bootstrap tokens let
	// new kubelets join (kube-system Secrets of type bootstrap.kubernetes.io/token).
	f.set("enable-admission-plugins", "NodeRestriction")
	f.set("enable-bootstrap-token-auth", "true")
	if k.EncryptionConfigFile != "" {
		f.set("encryption-provider-config", k.EncryptionConfigFile)
		// A rotation step is a new file on every master, no restart.
		f.set("encryption-provider-config-automatic-reload", "true")
	}
	if k.AuditLogPath != "" {
		f.set("audit-policy-file", k.AuditPolicyFile)
		f.set("audit-log-path", k.AuditLogPath)
		f.set("audit-log-format", "json")
		f.set("audit-log-maxage", strconv.Itoa(k.AuditLogMaxAge))
		f.set("audit-log-maxbackup", strconv.Itoa(k.AuditLogMaxBackups))
		f.set("audit-log-maxsize", strconv.Itoa(k.AuditLogMaxSize))
	}
	f.set("allow-privileged", "true")
	f.set("max-requests-inflight", strconv.Itoa(k.MaxRequestsInflight))
	f.set("max-mutating-requests-inflight", strconv.Itoa(k.MaxMutatingRequestsInflight))
	if err := f.override(k.APIServerExtraArgs); err != nil {
		return Definition{}, fmt.Errorf("units: kube-apiserver: %w", err)
	}
	return Definition{
		Description:    "Kubernetes API server (managed by masterd)",
		ExecStart:      append([]string{filepath.Join(k.BinDir, "kube-apiserver")}, f.args()...),
		After:          []string{"network-online.target"},
		RestartDelay:   2 * time.Second,
		LimitNOFILE:    65536,
		OOMScoreAdjust: -900,
	}, nil
}

// Scheduler returns the managed kube-scheduler definition.
func (k KubeConfig) Scheduler() (Definition, error) {
	f := flags{}
	f.set("kubeconfig", k.SchedulerKubeconfig)
	f.set("authentication-kubeconfig", k.SchedulerKubeconfig)
	f.set("authorization-kubeconfig", k.SchedulerKubeconfig)
	f.set("bind-address", "127.0.0.1")
	f.lease(k.SchedulerLease)
	if err := f.override(k.SchedulerExtraArgs); err != nil {
		return Definition{}, fmt.Errorf("units: kube-scheduler: %w", err)
	}
	return Definition{
		Description:    "Kubernetes scheduler (managed by masterd, runs on the scheduler role's holder)",
		ExecStart:      append([]string{filepath.Join(k.BinDir, "kube-scheduler")}, f.args()...),
		RestartDelay:   time.Second,
		OOMScoreAdjust: -500,
	}, nil
}

// ControllerManager returns the managed kube-controller-manager definition.
func (k KubeConfig) ControllerManager() (Definition, error) {
	f := flags{}
	f.set("kubeconfig", k.ControllerManagerKubeconfig)
	f.set("authentication-kubeconfig", k.ControllerManagerKubeconfig)
	f.set("authorization-kubeconfig", k.ControllerManagerKubeconfig)
	f.set("bind-address", "127.0.0.1")
	f.lease(k.ControllerManagerLease)
	f.set("service-cluster-ip-range", k.ServiceClusterIPRange)
	f.set("cluster-name", k.ClusterName)
	f.set("cluster-signing-cert-file", k.CAFile)
	f.set("cluster-signing-key-file", k.CAKeyFile)
	f.set("root-ca-file", k.CAFile)
	f.set("service-account-private-key-file", k.ServiceAccountSigningKeyFile)
	f.set("use-service-account-credentials", "true")
	f.set("controllers", "*,bootstrapsigner,tokencleaner")
	if k.ClusterCIDR != "" {
		f.set("allocate-node-cidrs", "true")
		f.set("cluster-cidr", k.ClusterCIDR)
	}
	if err := f.override(k.ControllerManagerExtraArgs); err != nil {
		return Definition{}, fmt.Errorf("units: kube-controller-manager: %w", err)
	}
	return Definition{
		Description:    "Kubernetes controller manager (managed by masterd, runs on the controller-manager role's holder)",
		ExecStart:      append([]string{filepath.Join(k.BinDir, "kube-controller-manager")}, f.args()...),
		RestartDelay:   time.Second,
		OOMScoreAdjust: -500,
	}, nil
}

// flags is an ordered flag list where a later set of a name replaces it.
type flags struct {
	names []string
	vals  map[string]*string // nil value: a bare "--flag"
}

func (f *flags) put(name string, v *string) {
	if f.vals == nil {
		f.vals = map[string]*string{}
	}
	if _, ok := f.vals[name]; !ok {
		f.names = append(f.names, name)
	}
	f.vals[name] = v
}

func (f *flags) set(name, v string) { f.put(name, &v) }

func (f *flags) setIf(name, v string) {
	if v != "" {
		f.set(name, v)
	}
}

func (f *flags) lease(t LeaseTimings) {
	f.set("leader-elect", "true")
	f.set("leader-elect-lease-duration", t.LeaseDuration.String())
	f.set("leader-elect-renew-deadline", t.RenewDeadline.String())
	f.set("leader-elect-retry-period", t.RetryPeriod.String())
}

func (f *flags) override(extra []string) error {
	for _, a := range extra {
		name, v, err := splitFlag(a)
		if err != nil {
			return err
		}
		f.put(name, v)
	}
	return nil
}

func (f *flags) args() []string {
	out := make([]string, 0, len(f.names))
	for _, n := range f.names {
		if v := f.vals[n]; v != nil {
			out = append(out, "--"+n+"="+*v)
		} else {
			out = append(out, "--"+n)
		}
	}
	return out
}

// splitFlag parses "--name=value" or "--name".
func splitFlag(a string) (string, *string, error) {
	if !strings.HasPrefix(a, "--") || len(a) < 3 || a[2] == '=' || a[2] == '-' {
		return "", nil, fmt.Errorf("argument %q: want --flag=value or --flag", a)
	}
	if strings.ContainsAny(a, "\n\x00") {
		return "", nil, fmt.Errorf("argument %q: contains a newline or NUL", a)
	}
	name, v, ok := strings.Cut(a[2:], "=")
	if !ok {
		return name, nil, nil
	}
	return name, &v, nil
}
