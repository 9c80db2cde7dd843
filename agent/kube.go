package agent

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/masterd/masterd/units"
	"go.yaml.in/yaml/v3"
)

// kubeComponent runs kube-apiserver on this master and, through roleHandlers,
// kube-scheduler and kube-controller-manager where this node leads their role.
type kubeComponent struct {
	n   *node
	sup *units.Supervisor
	// unit names by role; "" for the apiserver's key.
	apiserver, scheduler, controllerManager string
	// leases are the leader-only units' Leases, by unit name, handed over
	// before the unit starts (managed mode; see kubelease.go).
	leases map[string]kubeLease
	// kubeconfigs are the leader-only units' kubeconfigs, by unit name
	// (managed mode): the credential each unit starts with (credentialLoop).
	kubeconfigs map[string]string
	// keyFiles are further credential files by unit name (managed mode:
	// the controller-manager's service-account key, sa.key, which a
	// rotation rewrites): a unit restarts when one changes, as for its
	// kubeconfig.
	keyFiles map[string]string
	// versions are the kube binaries' versions by unit name, read at Start
	// (managed mode); "" where unknown.
	versions map[string]string
	// skew is the version skew policy's decisions for this master (nil:
	// none); apiWait ends a start of the apiserver that waits for it
	// (versions_kube.go).
	skew    *versionsComponent
	apiWait func()

	mu          sync.Mutex
	leaders     map[string]*leaderUnit // registered at their first acquire
	credentials bgLoop                 // credentialLoop
}

func (c *kubeComponent) Name() string { return "kube" }

// kubeConfig generates the managed units' settings from masterd.yaml and the
// pki files.
func kubeConfig(n *node) units.KubeConfig {
	cfg, f := n.cfg, n.files
	k := units.DefaultKubeConfig()
	k.BinDir = cfg.Kubernetes.BinDir
	k.AdvertiseAddress = cfg.Address.String()
	// The apiserver binds the node address only: VIP:port belongs to the
	// balancer on the VIP holder.
	k.BindAddress = cfg.Address.String()
	k.SecurePort = cfg.Kubernetes.APIServerPort
	// The local etcd member only (kubeadm's stacked etcd does the same): an
	// apiserver given every master's member keeps idle per-resource client
	// connections to a crashed master's member open, which gRPC finds dead
	// only after a request is sent on one (its keepalive pings only
	// connections with a stream open): in the worker failover test the
	// first request of a resource through a survivor after the crash hung
	// past kubectl's 10 s, and the node Lease missed a renewal. With the local member,
	// a master's apiserver fails with its own etcd and readyz (the
	// balancer, role eligibility) says so.
	k.EtcdServers = []string{(&url.URL{Scheme: "https", Host: net.JoinHostPort(cfg.Address.String(), strconv.Itoa(cfg.Etcd.ClientPort))}).String()}
	k.EtcdCAFile = f.EtcdCA
	k.EtcdCertFile, k.EtcdKeyFile = f.APIServerEtcdClient.Cert, f.APIServerEtcdClient.Key
	k.ServiceClusterIPRange = cfg.Kubernetes.ServiceCIDR.String()
	k.CAFile, k.CAKeyFile = f.KubeCA.Cert, f.KubeCA.Key
	k.APIServerCertFile, k.APIServerKeyFile = f.APIServer.Cert, f.APIServer.Key
	k.KubeletClientCertFile, k.KubeletClientKeyFile = f.APIServerKubeletClient.Cert, f.APIServerKubeletClient.Key
	k.ServiceAccountKeyFile, k.ServiceAccountSigningKeyFile = f.ServiceAccountPub, f.ServiceAccountKey
	if externalSigner(cfg) {
		k.ServiceAccountSigningEndpoint = n.signerSocket()
	}
	k.ServiceAccountIssuer = "https://kubernetes.default.svc." + cfg.Kubernetes.ClusterDomain
	k.SchedulerKubeconfig, k.ControllerManagerKubeconfig = f.SchedulerConf, f.ControllerManagerConf
	// Written by the pki component (writeAPIServerFiles) beside the certificates.
	k.EncryptionConfigFile = n.encryptionConfigPath()
	if a := cfg.Kubernetes.Audit; a.Enabled {
		k.AuditPolicyFile = n.auditPolicyPath()
		k.AuditLogPath = a.Path
		k.AuditLogMaxAge, k.AuditLogMaxBackups, k.AuditLogMaxSize = a.MaxAgeDays, a.MaxBackups, a.MaxSizeMB
	}
	// The components' own --leader-elect timing stays at kube's 15s/10s/2s
	// (units.DefaultKubeConfig), whatever the role's: the successor hands
	// their Lease over (kubelease.go), so its length does not delay a
	// takeover, and a renew deadline as short as the role's made
	// kube-controller-manager exit on a loaded apiserver. extraArgs may
	// still set them.
	// The aggregation layer's front proxy; the config's extra args come after
	// these and win.
	k.APIServerExtraArgs = append([]string{
		"--requestheader-client-ca-file=" + f.FrontProxyCA,
		"--proxy-client-cert-file=" + f.FrontProxyClient.Cert,
		"--proxy-client-key-file=" + f.FrontProxyClient.Key,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
	}, extraArgs(cfg.Kubernetes.APIServer.ExtraArgs)...)
	k.SchedulerExtraArgs = extraArgs(cfg.Kubernetes.Scheduler.ExtraArgs)
	k.ControllerManagerExtraArgs = extraArgs(cfg.Kubernetes.ControllerManager.ExtraArgs)
	return k
}

// extraArgs turns the config's flag map into "--flag=value" in a stable order.
func extraArgs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, "--"+k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Leader-only units' stop budget inside their role's release slack
// (election.UnitSlack.Release, 1 s). A leader-only unit is killed at once
// (units.Supervisor.Stop: stop job, SIGKILL to its control group through
// cgroup.kill, no SIGTERM grace), and leaderKillWait bounds the wait from
// the kill until its group is empty and systemd reports it inactive: a
// process outside uninterruptible sleep dies within milliseconds of
// SIGKILL (the whole stop takes 17-100 ms in the units and agent lab tests
// on a quiet machine, up to 0.36 s at a load average of 6-17).
// The other 0.5 s of the slack is for the D-Bus round trips around the
// wait (ControlGroup read, stop job, reset-failed) and the release's
// read-back of the group (unitDead), on a loaded host.
//
// unitKillWait bounds the wait after the SIGKILL that ends kube-apiserver's
// 20 s grace, and an escalated release's wait for the group to be empty.
const (
	leaderKillWait = 500 * time.Millisecond
	unitKillWait   = 1500 * time.Millisecond
)

// unitsConfig is units.DefaultConfig with the stop budget above.
func unitsConfig() units.Config {
	c := units.DefaultConfig()
	c.LeaderKillWait = leaderKillWait
	c.KillWait = unitKillWait
	return c
}

// escalateUnitTimeout bounds an escalated unit release (stop job, SIGKILL
// to the cgroup, wait for it to be empty): it runs past the release's own
// deadline when it must, since the unit has to die even when the lease is
// left to expire.
const escalateUnitTimeout = unitKillWait + time.Second

func (c *kubeComponent) Start(ctx context.Context) error {
	n := c.n
	if n.files == nil {
		return errors.New("kube: no certificates (pki did not start)")
	}
	sup, err := units.New(unitsConfig(), n.reg, n.log)
	if err != nil {
		return err
	}
	c.sup = sup
	var apiserver, scheduler, controllerManager units.Unit
	if n.cfg.Kubernetes.Mode == "existing" {
		apiserver = units.Unit{Name: n.cfg.Kubernetes.APIServer.Unit}
		scheduler = units.Unit{Name: n.cfg.Kubernetes.Scheduler.Unit, LeaderOnly: true}
		controllerManager = units.Unit{Name: n.cfg.Kubernetes.ControllerManager.Unit, LeaderOnly: true}
	} else {
		k := kubeConfig(n)
		defs := map[string]func() (units.Definition, error){
			"kube-apiserver": k.APIServer, "kube-scheduler": k.Scheduler, "kube-controller-manager": k.ControllerManager,
		}
		got := map[string]*units.Definition{}
		for name, f := range defs {
			d, err := f()
			if err != nil {
				return fmt.Errorf("kube: %s: %w", name, err)
			}
			got[name] = &d
		}
		kc := n.cfg.Kubernetes
		c.leases = map[string]kubeLease{
			units.SchedulerUnit:         componentLease("kube-scheduler", n.files.SchedulerConf, kc.Scheduler.ExtraArgs),
			units.ControllerManagerUnit: componentLease("kube-controller-manager", n.files.ControllerManagerConf, kc.ControllerManager.ExtraArgs),
		}
		c.kubeconfigs = map[string]string{
			units.SchedulerUnit:         n.files.SchedulerConf,
			units.ControllerManagerUnit: n.files.ControllerManagerConf,
		}
		c.keyFiles = map[string]string{units.ControllerManagerUnit: n.files.ServiceAccountKey}
		if c.skew != nil {
			c.versions = c.skew.kubeVersions()
		} else {
			c.versions = readKubeVersions(ctx, n.cfg.Kubernetes.BinDir, n.log)
		}
		if err := observeKubeVersions(n.reg, c.versions); err != nil {
			return err
		}
		apiserver = units.Unit{Name: units.APIServerUnit, Definition: got["kube-apiserver"]}
		scheduler = units.Unit{Name: units.SchedulerUnit, LeaderOnly: true, Definition: got["kube-scheduler"]}
		controllerManager = units.Unit{Name: units.ControllerManagerUnit, LeaderOnly: true, Definition: got["kube-controller-manager"]}
	}
	readyz, err := units.NewHTTPProbe(units.HTTPProbe{
		URL:    (&url.URL{Scheme: "https", Host: net.JoinHostPort(n.cfg.Address.String(), strconv.Itoa(n.cfg.Kubernetes.APIServerPort)), Path: "/readyz"}).String(),
		CAFile: n.files.KubeCA.Cert,
	})
	if err != nil {
		return err
	}
	apiserver.Health = readyz
	if scheduler.Health, err = units.NewHTTPProbe(units.HTTPProbe{URL: "https://127.0.0.1:10259/healthz"}); err != nil {
		return err
	}
	if controllerManager.Health, err = units.NewHTTPProbe(units.HTTPProbe{URL: "https://127.0.0.1:10257/healthz"}); err != nil {
		return err
	}
	for _, u := range []units.Unit{apiserver, scheduler, controllerManager} {
		if err := sup.Register(u); err != nil {
			return err
		}
	}
	c.apiserver, c.scheduler, c.controllerManager = apiserver.Name, scheduler.Name, controllerManager.Name
	// Leader-only units a previous run left running are not ours until the
	// election says so.
	for _, name := range []string{c.scheduler, c.controllerManager} {
		if err := sup.Stop(ctx, name); err != nil {
			return fmt.Errorf("kube: clean up %s: %w", name, err)
		}
	}
	if err := c.startAPIServer(ctx); err != nil {
		return err
	}
	if len(c.kubeconfigs) > 0 {
		c.credentials.start(c.credentialLoop)
	}
	return nil
}

// Stop stops every unit masterd runs, leader-only units first (the election
// already released their roles when it stopped).
func (c *kubeComponent) Stop(ctx context.Context) error {
	if c.apiWait != nil {
		c.apiWait()
	}
	c.credentials.stop()
	if c.sup == nil {
		return nil
	}
	var errs []error
	for _, name := range []string{c.scheduler, c.controllerManager, c.apiserver} {
		if name == "" {
			continue
		}
		if err := c.sup.Stop(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.sup.Close())
	return errors.Join(errs...)
}

// Check is the apiserver's readiness.
func (c *kubeComponent) Check(ctx context.Context) error {
	if c.sup == nil || c.apiserver == "" {
		return errors.New("not started")
	}
	if err := c.skew.refusal(skewAPIServer); err != nil {
		return fmt.Errorf("%s not started: %w", c.apiserver, err)
	}
	return c.sup.Healthy(ctx, c.apiserver)
}

// unitStatus is one unit of the kube section of /status (status.go).
type unitStatus = UnitStatus

func (c *kubeComponent) Status() any {
	out := []unitStatus{}
	if c.sup == nil {
		return out
	}
	for _, name := range []string{c.apiserver, c.scheduler, c.controllerManager} {
		if st, ok := c.sup.Status(name); ok {
			u := unitStatus{Name: name, Active: st.ActiveState, Sub: st.SubState, PID: st.MainPID, Restarts: st.Restarts, Version: c.versions[name]}
			if err := c.skew.refusal(unitComponent[name]); err != nil {
				u.Refused = err.Error()
			}
			out = append(out, u)
		}
	}
	return out
}

// leaderUnit is the roleHandler of a leader-only unit. acquire returns at
// once (the election's callbacks for a role are serial, so a loss must never
// wait behind a slow start): the start and its health wait run in the
// background under the term's context, which the election cancels when the
// term is lost, before release; release waits for them to end before it
// kills the unit.
type leaderUnit struct {
	c    *kubeComponent
	unit func() string

	mu       sync.Mutex
	starting chan struct{} // closed when the term's start (or restart) ended
	// held is set from acquire to release; ctx and term are the held term's.
	held bool
	ctx  context.Context
	term uint64
	// startedWith is the client certificate in the unit's kubeconfig when
	// it last started (nil: not started by this term, or no kubeconfig).
	startedWith *x509.Certificate
	// startedKey is the digest of the unit's key file (kubeComponent.
	// keyFiles) when it last started; "" without one.
	startedKey string
}

func (l *leaderUnit) acquire(ctx context.Context, term uint64) {
	name := l.unit()
	done := make(chan struct{})
	l.mu.Lock()
	l.starting = done
	l.held, l.ctx, l.term, l.startedWith = true, ctx, term, nil
	l.mu.Unlock()
	l.c.addLeader(name, l)
	go func() {
		defer close(done)
		if !l.allowed(ctx, name, term) {
			return
		}
		t := time.Now()
		if lease, ok := l.c.leases[name]; ok {
			l.handOver(ctx, lease, name, term)
		}
		l.noteCredential(name)
		if err := l.c.sup.Start(ctx, name, term); err != nil {
			if ctx.Err() == nil {
				l.c.n.log.Error("leader unit start failed", "component", "kube", "unit", name, "term", term, "err", err)
			}
			return
		}
		l.c.n.log.Info("leader unit healthy", "component", "kube", "unit", name, "term", term, "seconds", time.Since(t).Seconds())
		// The controller-manager role's holder publishes what nodes join
		// with and keeps the addons applied, under this term's context:
		// one master writes at a time (a round in flight at the loss is
		// cancelled with it; release does not wait for it).
		if name == units.ControllerManagerUnit && l.c.n.cfg.Kubernetes.Mode == "managed" {
			go runNodes(ctx, l.c.n, l.c.n.cfg.Nodes)
		}
	}()
}

// handOver releases the unit's Lease for its previous instance, dead since
// the role moved, so the instance about to start acquires at once. A
// failure costs only time: the instance then waits the Lease out.
func (l *leaderUnit) handOver(ctx context.Context, lease kubeLease, unit string, term uint64) {
	t := time.Now()
	prev, err := lease.handOver(ctx)
	log := l.c.n.log.With("component", "kube", "unit", unit, "term", term, "lease", lease.namespace+"/"+lease.name)
	switch {
	case err != nil && ctx.Err() == nil:
		log.Warn("kube lease not handed over, the component waits it out", "err", err, "seconds", time.Since(t).Seconds())
	case err == nil && prev != "":
		log.Info("kube lease handed over", "previous_holder", prev, "seconds", time.Since(t).Seconds())
	}
}

func (l *leaderUnit) release(ctx context.Context, term uint64) error {
	name := l.unit()
	l.mu.Lock()
	starting := l.starting
	l.starting = nil
	l.held, l.ctx, l.startedWith = false, nil, nil
	l.mu.Unlock()
	if starting != nil {
		// The term's context is cancelled already (the election cancels it
		// before release): the start gives up, and no start job can come
		// after the stop below.
		<-starting
	}
	// Stop kills a leader-only unit at once (no SIGTERM grace: the
	// successor hands the component's Lease over) and waits for its group
	// to be empty; unitDead reads the group again, on its own.
	t := time.Now()
	err := l.c.sup.Stop(ctx, name)
	if err == nil {
		err = unitDead(ctx, l.c.sup, name)
	}
	if err == nil {
		l.c.n.log.Info("leader unit stopped", "component", "kube", "unit", name, "term", term, "seconds", time.Since(t).Seconds())
		return nil
	}
	// Escalate: SIGKILL the whole control group again and verify it is
	// empty, under a deadline of its own (ctx may be over: the lease is
	// then left to expire, but the unit must still die).
	l.c.n.log.Error("leader unit release failed, killing its cgroup again", "component", "kube", "unit", name, "term", term, "err", err)
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), escalateUnitTimeout)
	defer cancel()
	kerr := l.c.sup.Kill(ectx, name)
	if verr := unitDead(ectx, l.c.sup, name); verr != nil {
		return fmt.Errorf("stop %s: %w; escalated, still not dead: %w", name, err, errors.Join(kerr, verr))
	}
	l.c.n.log.Warn("leader unit release escalated: cgroup empty", "component", "kube", "unit", name, "term", term, "seconds", time.Since(t).Seconds())
	return fmt.Errorf("stop %s: %w (escalated: cgroup SIGKILLed, verified empty)", name, err)
}

// unitDead verifies, from the cgroup, that the unit has no process left.
func unitDead(ctx context.Context, sup *units.Supervisor, name string) error {
	pids, err := sup.Processes(ctx, name)
	if err != nil {
		return fmt.Errorf("verify %s: %w", name, err)
	}
	if len(pids) > 0 {
		return fmt.Errorf("verify %s: %d processes left in its cgroup (%v)", name, len(pids), pids)
	}
	return nil
}

func (l *leaderUnit) renewed(uint64, time.Time) {}

// Credentials of the leader-only units. kube-scheduler and
// kube-controller-manager read the client certificate embedded in their
// kubeconfig once, at start: a renewal that rewrites the file reaches them
// only through a restart. kube-apiserver needs none: it serves a renewed
// --tls-cert-file and presents renewed kubelet and etcd client
// certificates on its next connections, the same process; etcd serves its
// renewed certificate too (pki/reload_kube_test.go, the real binaries).
//
// Each leaderUnit records the certificate its kubeconfig held when it
// started the unit; credentialLoop compares it with the file every
// credentialCheckInterval and restarts a unit this master runs whose file
// now holds another certificate. The restart keeps the role: the unit
// stops, its kube Lease is handed over to the next instance, and it starts
// again under the same term.

// credentialCheckInterval is how often credentialLoop compares: the pki
// component renews 30 days before expiry, so a minute is plenty; reading
// two small files a minute costs nothing.
const credentialCheckInterval = time.Minute

func (c *kubeComponent) credentialLoop(ctx context.Context) {
	t := time.NewTicker(credentialCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.checkCredentials()
	}
}

// checkCredentials starts the restart of every leader-only unit this
// master runs whose kubeconfig's certificate changed since its start, and
// returns the units it restarts. The restarts run in the background under
// their term's context (release waits for them, as for a start).
func (c *kubeComponent) checkCredentials() []string {
	c.mu.Lock()
	leaders := make([]*leaderUnit, 0, len(c.leaders))
	for _, l := range c.leaders {
		leaders = append(leaders, l)
	}
	c.mu.Unlock()
	var out []string
	for _, l := range leaders {
		if l.restartIfStale() {
			out = append(out, l.unit())
		}
	}
	sort.Strings(out)
	return out
}

func (c *kubeComponent) addLeader(name string, l *leaderUnit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leaders == nil {
		c.leaders = map[string]*leaderUnit{}
	}
	c.leaders[name] = l
}

// runningCerts returns, for each leader-only unit this master runs, its
// kubeconfig's name (the pki certificate name, "scheduler.conf") and the
// NotAfter of the certificate the unit started with.
func (c *kubeComponent) runningCerts() map[string]time.Time {
	c.mu.Lock()
	leaders := make([]*leaderUnit, 0, len(c.leaders))
	for _, l := range c.leaders {
		leaders = append(leaders, l)
	}
	c.mu.Unlock()
	out := map[string]time.Time{}
	for _, l := range leaders {
		l.mu.Lock()
		if l.held && l.startedWith != nil {
			out[filepath.Base(l.c.kubeconfigs[l.unit()])] = l.startedWith.NotAfter
		}
		l.mu.Unlock()
	}
	return out
}

// noteCredential records the certificate the unit is about to start with.
func (l *leaderUnit) noteCredential(name string) {
	path, ok := l.c.kubeconfigs[name]
	if !ok {
		return
	}
	cert, err := kubeconfigCert(path)
	if err != nil {
		l.c.n.log.Warn("kubeconfig unreadable before start", "component", "kube", "unit", name, "err", err)
		return
	}
	key := l.keyDigest(name)
	l.mu.Lock()
	l.startedWith, l.startedKey = cert, key
	l.mu.Unlock()
}

// keyDigest is the SHA-256 of the unit's key file, "" without one (or
// unreadable: the unit's own start then fails and says why).
func (l *leaderUnit) keyDigest(name string) string {
	path, ok := l.c.keyFiles[name]
	if !ok {
		return ""
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// restartIfStale restarts the unit when this master holds its role and its
// kubeconfig holds another certificate than the one it started with; it
// reports whether it began a restart.
func (l *leaderUnit) restartIfStale() bool {
	name := l.unit()
	path, ok := l.c.kubeconfigs[name]
	if !ok {
		return false
	}
	cur, err := kubeconfigCert(path)
	if err != nil {
		l.c.n.log.Warn("kubeconfig unreadable", "component", "kube", "unit", name, "err", err)
		return false
	}
	key := l.keyDigest(name)
	l.mu.Lock()
	if !l.held || l.ctx.Err() != nil || l.startedWith == nil || (cur.Equal(l.startedWith) && key == l.startedKey) {
		l.mu.Unlock()
		return false
	}
	ctx, term, prev := l.ctx, l.term, l.starting
	old := l.startedWith
	done := make(chan struct{})
	l.starting = done
	l.mu.Unlock()
	go func() {
		defer close(done)
		if prev != nil {
			<-prev // the term's start, or an earlier restart
		}
		if ctx.Err() != nil {
			return
		}
		t := time.Now()
		log := l.c.n.log.With("component", "kube", "unit", name, "term", term)
		if cur.Equal(old) {
			log.Info("restarting leader unit for its new service-account key")
		} else {
			log.Info("restarting leader unit for its renewed certificate", "old_not_after", old.NotAfter, "new_not_after", cur.NotAfter)
		}
		if err := l.c.sup.Stop(ctx, name); err != nil {
			log.Error("leader unit restart: stop failed", "err", err)
			return
		}
		if lease, ok := l.c.leases[name]; ok {
			l.handOver(ctx, lease, name, term)
		}
		l.noteCredential(name)
		if err := l.c.sup.Start(ctx, name, term); err != nil {
			if ctx.Err() == nil {
				log.Error("leader unit restart: start failed", "err", err)
			}
			return
		}
		log.Info("leader unit healthy after restart", "seconds", time.Since(t).Seconds())
	}()
	return true
}

// kubeconfigCert returns the client certificate embedded in the kubeconfig
// at path (client-certificate-data of its first user, as the pki component
// writes them).
func kubeconfigCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	var kc struct {
		Users []struct {
			User struct {
				CertData string `yaml:"client-certificate-data"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	if len(kc.Users) == 0 || kc.Users[0].User.CertData == "" {
		return nil, fmt.Errorf("kubeconfig %s: no client-certificate-data", path)
	}
	pemData, err := base64.StdEncoding.DecodeString(kc.Users[0].User.CertData)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: client-certificate-data: %w", path, err)
	}
	block, _ := pem.Decode(pemData)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("kubeconfig %s: client-certificate-data holds no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cert, nil
}

// readKubeVersions runs each managed unit's binary with --version
// ("Kubernetes v1.37.2") and returns the versions by unit name; a binary
// that does not answer is logged and left out.
func readKubeVersions(ctx context.Context, binDir string, log *slog.Logger) map[string]string {
	out := map[string]string{}
	for unit, bin := range map[string]string{
		units.APIServerUnit: "kube-apiserver", units.SchedulerUnit: "kube-scheduler", units.ControllerManagerUnit: "kube-controller-manager",
	} {
		v, err := kubeVersion(ctx, filepath.Join(binDir, bin))
		if err != nil {
			log.Warn("kube binary version unknown", "component", "kube", "binary", bin, "err", err)
			continue
		}
		out[unit] = v
	}
	return out
}

// kubeVersionTimeout bounds one `--version` run: the binaries answer at
// once; a hung one must not hold up the start.
const kubeVersionTimeout = 10 * time.Second

// kubeVersion returns the version a kube binary reports ("v1.37.2").
func kubeVersion(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, kubeVersionTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", path, err)
	}
	return parseKubeVersion(string(out))
}

// parseKubeVersion reads "Kubernetes v1.37.2" (what every kube binary
// prints for --version).
func parseKubeVersion(out string) (string, error) {
	f := strings.Fields(out)
	if len(f) != 2 || f[0] != "Kubernetes" || !strings.HasPrefix(f[1], "v") {
		return "", fmt.Errorf("unexpected --version output %q, want \"Kubernetes vX.Y.Z\"", strings.TrimSpace(out))
	}
	return f[1], nil
}
