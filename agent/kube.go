package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/masterd/masterd/units"
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
	for _, p := range cfg.Peers {
		k.EtcdServers = append(k.EtcdServers, (&url.URL{Scheme: "https", Host: net.JoinHostPort(p.Address.String(), strconv.Itoa(cfg.Etcd.ClientPort))}).String())
	}
	k.EtcdCAFile = f.EtcdCA
	k.EtcdCertFile, k.EtcdKeyFile = f.APIServerEtcdClient.Cert, f.APIServerEtcdClient.Key
	k.ServiceClusterIPRange = cfg.Kubernetes.ServiceCIDR.String()
	k.CAFile, k.CAKeyFile = f.KubeCA.Cert, f.KubeCA.Key
	k.APIServerCertFile, k.APIServerKeyFile = f.APIServer.Cert, f.APIServer.Key
	k.KubeletClientCertFile, k.KubeletClientKeyFile = f.APIServerKubeletClient.Cert, f.APIServerKubeletClient.Key
	k.ServiceAccountKeyFile, k.ServiceAccountSigningKeyFile = f.ServiceAccountPub, f.ServiceAccountKey
	k.ServiceAccountIssuer = "https://kubernetes.default.svc." + cfg.Kubernetes.ClusterDomain
	k.SchedulerKubeconfig, k.ControllerManagerKubeconfig = f.SchedulerConf, f.ControllerManagerConf
	// Written by the pki component (writeAPIServerFiles) beside the certificates.
	k.EncryptionConfigFile = n.encryptionConfigPath()
	if a := cfg.Kubernetes.Audit; a.Enabled {
		k.AuditPolicyFile = n.auditPolicyPath()
		k.AuditLogPath = a.Path
		k.AuditLogMaxAge, k.AuditLogMaxBackups, k.AuditLogMaxSize = a.MaxAgeDays, a.MaxBackups, a.MaxSizeMB
	}
	k.SchedulerLease = leaseTimings(cfg.Roles.Scheduler)
	k.ControllerManagerLease = leaseTimings(cfg.Roles.ControllerManager)
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

func leaseTimings(t Timings) units.LeaseTimings {
	return units.LeaseTimings{LeaseDuration: t.LeaseDuration.D(), RenewDeadline: t.RenewDeadline.D(), RetryPeriod: t.RetryPeriod.D()}
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
// (election.DefaultUnitTiming().ReleaseSlack, 4 s): the units package's
// defaults (grace 1 s + kill wait 3 s) filled it exactly and left nothing
// for the D-Bus round trips around them (StopUnit, the state polls,
// KillUnit, ResetFailed) nor for the release's read-back of the unit's
// cgroup. Here: grace 1.5 s + kill wait 1.5 s = 3 s, leaving 1 s of
// headroom. 1.5 s after SIGTERM is enough for scheduler and
// controller-manager to give up their kube lease; 1.5 s after SIGKILL is
// far more than a process outside uninterruptible sleep needs to die
// (KillWait applies to kube-apiserver's stop too, after its own 20 s grace).
const (
	leaderStopGrace = 1500 * time.Millisecond
	unitKillWait    = 1500 * time.Millisecond
)

// unitsConfig is units.DefaultConfig with the stop budget above.
func unitsConfig() units.Config {
	c := units.DefaultConfig()
	c.LeaderStopGrace = leaderStopGrace
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
	return sup.Start(ctx, c.apiserver, 0)
}

// Stop stops every unit masterd runs, leader-only units first (the election
// already released their roles when it stopped).
func (c *kubeComponent) Stop(ctx context.Context) error {
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
			out = append(out, unitStatus{Name: name, Active: st.ActiveState, Sub: st.SubState, PID: st.MainPID, Restarts: st.Restarts})
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
	starting chan struct{} // closed when the term's start ended
}

func (l *leaderUnit) acquire(ctx context.Context, term uint64) {
	name := l.unit()
	done := make(chan struct{})
	l.mu.Lock()
	l.starting = done
	l.mu.Unlock()
	go func() {
		defer close(done)
		t := time.Now()
		if lease, ok := l.c.leases[name]; ok {
			l.handOver(ctx, lease, name, term)
		}
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
	l.mu.Unlock()
	if starting != nil {
		// The term's context is cancelled already (the election cancels it
		// before release): the start gives up, and no start job can come
		// after the stop below.
		<-starting
	}
	t := time.Now()
	err := l.c.sup.Stop(ctx, name)
	if err == nil {
		err = unitDead(ctx, l.c.sup, name)
	}
	if err == nil {
		l.c.n.log.Info("leader unit stopped", "component", "kube", "unit", name, "term", term, "seconds", time.Since(t).Seconds())
		return nil
	}
	// Escalate: SIGKILL the whole control group and verify it is empty,
	// under a deadline of its own (ctx may be over: the lease is then left
	// to expire, but the unit must still die).
	l.c.n.log.Error("leader unit release failed, killing its cgroup", "component", "kube", "unit", name, "term", term, "err", err)
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
