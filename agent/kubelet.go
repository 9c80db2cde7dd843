package agent

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/masterd/masterd/bootstrap"
	"github.com/masterd/masterd/internal/atomicfile"
	"github.com/masterd/masterd/units"
)

// MasterKubelet is nodes.masterKubelet: a kubelet on this master, so that
// webhooks and aggregated APIs served by pods can run on the masters (the
// apiserver reaches them over the pod network). It may differ from master
// to master.
//
// masterd writes the kubelet's configuration and unit (masterd-kubelet.service)
// and issues its client certificate (system:node:<name>, system:nodes) from
// the kube CA itself: no bootstrap token, no CSR. The kubelet talks to this
// master's own apiserver (its address, not the VIP): it shares the master's
// fate anyway, needs neither the VIP nor the balancer to come up (the first
// master starts before anyone holds the VIP), and never talks to an
// apiserver older than itself during a rolling upgrade. kubeadm points
// control-plane kubelets at the local apiserver too.
//
// The Node registers with the node-role.kubernetes.io/control-plane:NoSchedule
// taint; pods that should run there tolerate it. masterd installs no
// container runtime: preflight warns when the runtime's socket is missing,
// and the kubelet unit keeps restarting until it is there.
type MasterKubelet struct {
	Enabled                  bool              `yaml:"enabled" doc:"run a kubelet on this master (masterd writes its unit masterd-kubelet.service, its config and its client certificate), registered with the node-role.kubernetes.io/control-plane:NoSchedule taint and pointed at this master's apiserver; needs a container runtime, which masterd does not install"`
	ContainerRuntimeEndpoint string            `yaml:"containerRuntimeEndpoint" doc:"the CRI socket of the master's container runtime (unix://...)"`
	ExtraArgs                map[string]string `yaml:"extraArgs" doc:"kubelet flags without leading dashes; they override generated ones"`
}

// defaultRuntimeEndpoint is containerd's socket, kubeadm's default runtime.
const defaultRuntimeEndpoint = "unix:///run/containerd/containerd.sock"

// controlPlaneTaint keeps pods without the toleration off a master's Node
// (kubeadm's taint of control-plane nodes).
const controlPlaneTaint = "node-role.kubernetes.io/control-plane"

// kubeletHealthURL is kubelet's healthz (its default healthzBindAddress
// and port).
const kubeletHealthURL = "http://127.0.0.1:10248/healthz"

// validateMasterKubelet reports the problems of nodes.masterKubelet, each
// naming its key.
func validateMasterKubelet(mk MasterKubelet) []error {
	if !mk.Enabled {
		return nil
	}
	var errs []error
	if _, err := runtimeSocket(mk.ContainerRuntimeEndpoint); err != nil {
		errs = append(errs, err)
	}
	for _, k := range sortedKeys(mk.ExtraArgs) {
		if k == "" || strings.HasPrefix(k, "-") || strings.ContainsAny(k, "= \t\n") {
			errs = append(errs, fmt.Errorf("nodes.masterKubelet.extraArgs: %q is not a flag name (no leading dashes, no '=' or spaces)", k))
		}
		if strings.ContainsAny(mk.ExtraArgs[k], "\n\x00") {
			errs = append(errs, fmt.Errorf("nodes.masterKubelet.extraArgs.%s: contains a newline or NUL", k))
		}
	}
	return errs
}

// runtimeSocket returns the path of a unix:// CRI endpoint.
func runtimeSocket(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "unix" || !filepath.IsAbs(u.Path) || u.Host != "" {
		return "", fmt.Errorf("nodes.masterKubelet.containerRuntimeEndpoint: %q is not unix:///absolute/path", endpoint)
	}
	return u.Path, nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// masterKubeletProblems are preflight's warnings about the master kubelet:
// masterd runs it but does not install what it needs.
func masterKubeletProblems(c *Config) []Problem {
	mk := c.Nodes.MasterKubelet
	if !mk.Enabled || c.Kubernetes.Mode != "managed" {
		return nil
	}
	var probs []Problem
	if sock, err := runtimeSocket(mk.ContainerRuntimeEndpoint); err == nil {
		if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
			probs = append(probs, Problem{Warning: true, Key: "nodes.masterKubelet.containerRuntimeEndpoint",
				Message: fmt.Sprintf("no container runtime socket at %s: the master's kubelet restarts until one answers there (masterd does not install a runtime)", sock),
				Fix:     "install and start containerd (or another CRI runtime) and point containerRuntimeEndpoint at its socket, or set nodes.masterKubelet.enabled: false"})
		}
	}
	if _, err := os.Stat(filepath.Join(c.Kubernetes.BinDir, "kubelet")); err != nil {
		probs = append(probs, Problem{Warning: true, Key: "kubernetes.binDir",
			Message: fmt.Sprintf("no kubelet in %s: nodes.masterKubelet.enabled needs it beside kube-apiserver", c.Kubernetes.BinDir),
			Fix:     "install kubelet of the same version into kubernetes.binDir"})
	}
	return probs
}

// kubeletFiles are the master kubelet's files under dataDir/kubelet.
type kubeletFiles struct {
	Dir        string
	Kubeconfig string // kubelet.conf: the server, the CA and the two files below
	Cert, Key  string // kubelet-client.crt/.key (0600): system:node:<name>
	Config     string // config.yaml: the KubeletConfiguration
}

func kubeletFilesIn(dataDir string) kubeletFiles {
	d := filepath.Join(dataDir, "kubelet")
	return kubeletFiles{Dir: d, Kubeconfig: filepath.Join(d, "kubelet.conf"),
		Cert: filepath.Join(d, "kubelet-client.crt"), Key: filepath.Join(d, "kubelet-client.key"),
		Config: filepath.Join(d, "config.yaml")}
}

// kubeletServer is the apiserver the master's kubelet talks to: this
// master's own (see MasterKubelet).
func kubeletServer(cfg Config) string {
	return "https://" + net.JoinHostPort(cfg.Address.String(), strconv.Itoa(cfg.Kubernetes.APIServerPort))
}

// kubeletConfiguration renders the master kubelet's KubeletConfiguration:
// client certificates of the kube CA and webhook authorization (the
// apiserver's kubelet client is in system:masters), the control-plane
// taint at registration, the cluster's DNS, and no certificate rotation
// through CSRs (masterd renews the client certificate in place; kubelet
// reloads it from the file). The serving certificate stays self-signed,
// as on the workers.
func kubeletConfiguration(cfg Config, caFile string) (string, error) {
	dns, err := bootstrap.DNSIP(cfg.Kubernetes.ServiceCIDR)
	if err != nil {
		return "", fmt.Errorf("kubernetes.%w", err)
	}
	return fmt.Sprintf(`# Written by masterd (nodes.masterKubelet); rewritten on every start.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %q
authorization:
  mode: Webhook
cgroupDriver: %s
containerRuntimeEndpoint: %q
clusterDNS:
- %s
clusterDomain: %q
registerNode: true
registerWithTaints:
- key: %s
  effect: NoSchedule
rotateCertificates: false
serverTLSBootstrap: false
`, caFile, cfg.Nodes.CgroupDriver, cfg.Nodes.MasterKubelet.ContainerRuntimeEndpoint, dns, cfg.Kubernetes.ClusterDomain, controlPlaneTaint), nil
}

// kubeletKubeconfig points kubelet at server with the CA and the client
// certificate files (files, not data: client-go reloads them, so a renewal
// reaches the running kubelet without a restart).
func kubeletKubeconfig(server, caFile string, f kubeletFiles, node string) string {
	user := "system:node:" + node
	return fmt.Sprintf(`# Written by masterd (nodes.masterKubelet).
apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster:
    server: %q
    certificate-authority: %q
users:
- name: %q
  user:
    client-certificate: %q
    client-key: %q
contexts:
- name: default
  context:
    cluster: kubernetes
    user: %q
current-context: default
`, server, caFile, user, f.Cert, f.Key, user)
}

// kubeletCertReason says why the client certificate at f must be
// (re)issued at now ("" when it is good): missing, unreadable, another
// subject, not signed by ca, or expiring within renewBefore.
func kubeletCertReason(f kubeletFiles, ca *x509.Certificate, node string, now time.Time, renewBefore time.Duration) string {
	data, err := os.ReadFile(f.Cert)
	if err != nil {
		return "missing"
	}
	cert, err := parseCertPEM(data)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	if _, err := os.Stat(f.Key); err != nil {
		return "key missing"
	}
	if cert.Subject.CommonName != "system:node:"+node || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "system:nodes" {
		return fmt.Sprintf("subject %q, want system:node:%s in system:nodes", cert.Subject.String(), node)
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return "not signed by the current kube CA"
	}
	if now.Add(renewBefore).After(cert.NotAfter) {
		return fmt.Sprintf("expires %s (within %s)", cert.NotAfter.UTC().Format(time.RFC3339), renewBefore)
	}
	return ""
}

// issueKubeletCert signs a client certificate for node with the CA pair
// (PEM files) and writes it and its new key (0600) to f.
func issueKubeletCert(f kubeletFiles, caCertFile, caKeyFile, node string, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	caPEM, err := os.ReadFile(caCertFile)
	if err != nil {
		return nil, fmt.Errorf("kube CA: %w", err)
	}
	ca, err := parseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("kube CA %s: %w", caCertFile, err)
	}
	keyPEM, err := os.ReadFile(caKeyFile)
	if err != nil {
		return nil, fmt.Errorf("kube CA key (a PKI without it cannot run a master kubelet): %w", err)
	}
	caKey, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("kube CA key %s: %w", caKeyFile, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
		NotBefore:    now.Add(-5 * time.Minute), // clock skew between masters
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign the kubelet client certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	// The key first: a certificate never sits beside a key it does not match
	// for longer than the two renames.
	if err := atomicfile.WriteFile(f.Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600, atomicfile.MkdirAll(0o700)); err != nil {
		return nil, fmt.Errorf("write %s: %w", f.Key, err)
	}
	if err := atomicfile.WriteFile(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600, atomicfile.MkdirAll(0o700)); err != nil {
		return nil, fmt.Errorf("write %s: %w", f.Cert, err)
	}
	return x509.ParseCertificate(der)
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

func parseKeyPEM(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
	}
	if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("%s: not a PKCS#8, EC or PKCS#1 private key", b.Type)
}

// kubeletComponent runs the master kubelet (nodes.masterKubelet.enabled,
// managed mode) through the kube component's supervisor. It starts after
// kube (the apiserver it talks to is up) and stops before it.
type kubeletComponent struct {
	n    *node
	kube *kubeComponent
	// now is the clock of certificate checks (time.Now).
	now func() time.Time

	files  kubeletFiles
	bg     bgLoop // run
	mu     sync.Mutex
	notAft time.Time // the client certificate's NotAfter
}

func newKubeletComponent(n *node, kube *kubeComponent) *kubeletComponent {
	return &kubeletComponent{n: n, kube: kube, now: time.Now, files: kubeletFilesIn(n.cfg.DataDir)}
}

func (c *kubeletComponent) Name() string { return "kubelet" }

// Start writes the kubelet's files (issuing its certificate when needed),
// writes and starts its unit and returns without waiting for the kubelet:
// a missing runtime must not keep the master from serving. The start's
// outcome is logged; systemd keeps restarting a kubelet that exits.
func (c *kubeletComponent) Start(ctx context.Context) error {
	n := c.n
	if c.kube.sup == nil || n.files == nil {
		return errors.New("kubelet: the kube component did not start")
	}
	if err := c.ensureCert(); err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	conf, err := kubeletConfiguration(n.cfg, n.files.KubeCA.Cert)
	if err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	for _, w := range []struct {
		path string
		data string
	}{
		{c.files.Config, conf},
		{c.files.Kubeconfig, kubeletKubeconfig(kubeletServer(n.cfg), n.files.KubeCA.Cert, c.files, n.cfg.Name)},
	} {
		if err := atomicfile.WriteFile(w.path, []byte(w.data), 0o600, atomicfile.MkdirAll(0o700)); err != nil {
			return fmt.Errorf("kubelet: write %s: %w", w.path, err)
		}
	}
	def, err := units.KubeletConfig{
		BinDir: n.cfg.Kubernetes.BinDir, NodeName: n.cfg.Name, NodeIP: n.cfg.Address.String(),
		Kubeconfig: c.files.Kubeconfig, ConfigFile: c.files.Config,
		ExtraArgs: extraArgs(n.cfg.Nodes.MasterKubelet.ExtraArgs),
	}.Kubelet()
	if err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	health, err := units.NewHTTPProbe(units.HTTPProbe{URL: kubeletHealthURL})
	if err != nil {
		return err
	}
	if err := c.kube.sup.Register(units.Unit{Name: units.KubeletUnit, Definition: &def, Health: health}); err != nil {
		return err
	}
	c.bg.start(c.run)
	return nil
}

// run starts the unit, then checks the client certificate every
// renewBefore/10 (1 minute to 1 day) and renews it in place.
func (c *kubeletComponent) run(ctx context.Context) {
	log := c.n.log.With("component", "kubelet")
	t0 := time.Now()
	if err := c.kube.sup.Start(ctx, units.KubeletUnit, 0); err != nil {
		if ctx.Err() == nil {
			log.Warn("master kubelet not healthy yet, systemd keeps restarting it", "unit", units.KubeletUnit, "err", err)
		}
	} else {
		log.Info("master kubelet healthy", "unit", units.KubeletUnit, "node", c.n.cfg.Name, "server", kubeletServer(c.n.cfg), "seconds", time.Since(t0).Seconds())
	}
	every := min(max(c.n.cfg.PKI.RenewBefore.D()/10, time.Minute), 24*time.Hour)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := c.ensureCert(); err != nil {
			log.Error("master kubelet client certificate not renewed", "err", err)
		}
	}
}

// ensureCert (re)issues the kubelet's client certificate when
// kubeletCertReason says so.
func (c *kubeletComponent) ensureCert() error {
	n := c.n
	caPEM, err := os.ReadFile(n.files.KubeCA.Cert)
	if err != nil {
		return fmt.Errorf("kube CA: %w", err)
	}
	ca, err := parseCertPEM(caPEM)
	if err != nil {
		return fmt.Errorf("kube CA %s: %w", n.files.KubeCA.Cert, err)
	}
	now := c.now()
	reason := kubeletCertReason(c.files, ca, n.cfg.Name, now, n.cfg.PKI.RenewBefore.D())
	if reason == "" {
		if cert, err := readCert(c.files.Cert); err == nil {
			c.setNotAfter(cert.NotAfter)
		}
		return nil
	}
	cert, err := issueKubeletCert(c.files, n.files.KubeCA.Cert, n.files.KubeCA.Key, n.cfg.Name, now, n.cfg.PKI.LeafValidity.D())
	if err != nil {
		return err
	}
	c.setNotAfter(cert.NotAfter)
	n.log.Info("master kubelet client certificate issued", "component", "kubelet", "reason", reason, "not_after", cert.NotAfter.UTC())
	return nil
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseCertPEM(data)
}

func (c *kubeletComponent) setNotAfter(t time.Time) {
	c.mu.Lock()
	c.notAft = t
	c.mu.Unlock()
}

// Stop stops the kubelet (its pods keep running in the runtime) before
// the kube component stops the apiserver.
func (c *kubeletComponent) Stop(ctx context.Context) error {
	c.bg.stop()
	if c.kube.sup == nil {
		return nil
	}
	return c.kube.sup.Stop(ctx, units.KubeletUnit)
}

// kubeletStatus is the kubelet section of /status.
type kubeletStatus struct {
	Unit       string    `json:"unit"`
	Active     string    `json:"active"`
	Sub        string    `json:"sub"`
	Restarts   uint64    `json:"restarts"`
	Server     string    `json:"server"`
	CertExpiry time.Time `json:"certExpiry,omitzero"`
}

func (c *kubeletComponent) Status() any {
	st := kubeletStatus{Unit: units.KubeletUnit, Server: kubeletServer(c.n.cfg)}
	if c.kube.sup != nil {
		if s, ok := c.kube.sup.Status(units.KubeletUnit); ok {
			st.Active, st.Sub, st.Restarts = s.ActiveState, s.SubState, s.Restarts
		}
	}
	c.mu.Lock()
	st.CertExpiry = c.notAft
	c.mu.Unlock()
	return st
}
