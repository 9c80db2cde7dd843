package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/masterd/masterd/election"
	"github.com/masterd/masterd/internal/skew"
	"github.com/masterd/masterd/units"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Versions and the skew policy. Each master publishes what it runs in etcd
// at VersionsPrefix+name, beside the membership record: its masterd build
// and wire version, its kube binaries' versions, the components the policy
// refuses here and whether masterd runs. etcd, not gossip metadata: the
// record must reach every master and the commands (`masterd upgrade plan`
// reads it from any master), it must outlive a stopped master (whose
// binaries still count when it comes back) and every decision must see the
// others' (a compare-and-swap on the whole prefix serialises them, so two
// masters starting at once with apiservers two minors apart cannot both
// start). Gossip metadata is 512 bytes, lost with the member and not
// readable by a command; the membership record is written by membership
// changes, compare-and-swap, and would make every start contend with them.
//
// The policy (internal/skew) over the masters of the membership record:
//
//   - kube-apiserver starts only within one minor of every other running
//     apiserver (checked before its start; a running one is never stopped
//     for it). Refused, it waits, re-checked at every change of a record:
//     the etcd member runs, the master is not ready and campaigns for no
//     role ahead of a fit master.
//   - kube-scheduler and kube-controller-manager: a master whose binary is
//     newer than the oldest running apiserver (or more than one minor
//     older than the newest) is unfit for their role (it campaigns after
//     every fit master, and a holder that becomes unfit hands over after a
//     lease); if it holds the role anyway (no master is fit), it does not
//     start the unit until the policy allows it.
//
// Every refusal is logged once (error level, naming the versions and the
// masters), shown in /status ("versions" section, and each kube unit's
// "refused"), and exported as masterd_kube_skew_refused{component}.

// VersionsPrefix + name is a master's VersionsRecord.
const VersionsPrefix = "/masterd/versions/"

// VersionsRecord is what one master runs.
type VersionsRecord struct {
	Name        string    `json:"name"`
	Masterd     BuildInfo `json:"masterd"`
	WireVersion int       `json:"wireVersion"`
	// Kube holds the kube binaries' versions by component
	// ("kube-apiserver": "v1.37.2"); empty in existing and none modes.
	Kube map[string]string `json:"kube,omitempty"`
	// Refused holds, by component, why the skew policy refuses it here.
	Refused map[string]string `json:"refused,omitempty"`
	// Running is false once masterd stopped gracefully (its apiserver
	// stopped with it).
	Running bool      `json:"running"`
	Updated time.Time `json:"updated"`
}

// same reports whether r and o differ only in Updated.
func (r VersionsRecord) same(o VersionsRecord) bool {
	r.Updated, o.Updated = time.Time{}, time.Time{}
	a, _ := json.Marshal(r)
	b, _ := json.Marshal(o)
	return string(a) == string(b)
}

// ReadVersions returns every published record by master name, and the
// revision of the read.
func ReadVersions(ctx context.Context, cli *clientv3.Client) (map[string]VersionsRecord, int64, error) {
	resp, err := cli.Get(ctx, VersionsPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("versions: read %s: %w", VersionsPrefix, err)
	}
	out := map[string]VersionsRecord{}
	for _, kv := range resp.Kvs {
		var r VersionsRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, 0, fmt.Errorf("versions: decode %s: %w", kv.Key, err)
		}
		out[strings.TrimPrefix(string(kv.Key), VersionsPrefix)] = r
	}
	return out, resp.Header.Revision, nil
}

// SkewMasters turns the records of the members of r into the policy's
// input (masters without a record are left out: unknown).
func SkewMasters(r MembershipRecord, recs map[string]VersionsRecord) []skew.Master {
	var out []skew.Master
	for name := range r.all() {
		v, ok := recs[name]
		if !ok {
			continue
		}
		_, refused := v.Refused[skew.APIServer]
		out = append(out, skew.Master{Name: name, Versions: v.Kube, APIServerDown: refused || !v.Running})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// unitComponent maps the managed units to the policy's component names.
var unitComponent = map[string]string{
	units.APIServerUnit: skew.APIServer, units.SchedulerUnit: skew.Scheduler, units.ControllerManagerUnit: skew.ControllerManager,
}

// roleComponent maps the leader-only roles to their component.
var roleComponent = map[string]string{RoleScheduler: skew.Scheduler, RoleControllerManager: skew.ControllerManager}

// versionsComponent publishes this master's record and keeps the policy's
// decisions for this master current.
type versionsComponent struct {
	n    *node
	etcd func() *clientv3.Client

	refusedGauge *prometheus.GaugeVec

	mu         sync.Mutex
	build      BuildInfo
	kube       map[string]string // by unit name, read at Start (managed mode)
	apiStarted bool              // the apiserver started: never re-checked
	rec        VersionsRecord    // last published
	changed    chan struct{}     // closed and replaced at every decision
	lastErr    string

	bg bgLoop // loop
}

func newVersionsComponent(n *node, etcdC *etcdComponent) *versionsComponent {
	return &versionsComponent{n: n, changed: make(chan struct{}),
		etcd: func() *clientv3.Client {
			if etcdC.m == nil {
				return nil
			}
			return etcdC.m.Client()
		},
	}
}

func (c *versionsComponent) Name() string { return "versions" }

// setBuild receives the binary's build (agent.New).
func (c *versionsComponent) setBuild(b BuildInfo) {
	c.mu.Lock()
	c.build = b
	c.mu.Unlock()
}

// versionsRetry is the pause after a failed decision or watch.
const versionsRetry = time.Second

// versionsResync re-decides even without a change seen (a missed watch).
const versionsResync = 30 * time.Second

func (c *versionsComponent) Start(ctx context.Context) error {
	cli := c.etcd()
	if cli == nil {
		return errors.New("versions: etcd not running")
	}
	c.refusedGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "masterd", Subsystem: "kube", Name: "skew_refused",
		Help: "1 while the version skew policy refuses the component on this master (its log line and /status say why)."}, []string{"component"})
	if err := c.n.reg.Register(c.refusedGauge); err != nil {
		return fmt.Errorf("versions: register metrics: %w", err)
	}
	if c.n.cfg.Kubernetes.Mode == "managed" {
		kube := readKubeVersions(ctx, c.n.cfg.Kubernetes.BinDir, c.n.log)
		c.mu.Lock()
		c.kube = kube
		c.mu.Unlock()
		for _, comp := range unitComponent {
			c.refusedGauge.WithLabelValues(comp).Set(0)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := c.decide(dctx, cli, true)
	cancel()
	if err != nil {
		return err
	}
	c.bg.start(func(ctx context.Context) { c.loop(ctx, cli) })
	return nil
}

// Stop marks the record not running (best effort: the others then no
// longer compare with this master's apiserver, stopped before).
func (c *versionsComponent) Stop(ctx context.Context) error {
	if !c.bg.running() {
		return nil
	}
	c.bg.stop()
	cli := c.etcd()
	if cli == nil {
		return nil
	}
	c.mu.Lock()
	r := c.rec
	c.mu.Unlock()
	r.Running, r.Updated = false, time.Now().UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := cli.Put(pctx, VersionsPrefix+c.n.cfg.Name, string(b)); err != nil {
		c.n.log.Warn("versions record not marked stopped", "component", "versions", "err", err)
	}
	return nil
}

// loop re-decides at every change of a record or of the membership.
func (c *versionsComponent) loop(ctx context.Context, cli *clientv3.Client) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		vw := cli.Watch(wctx, VersionsPrefix, clientv3.WithPrefix())
		mw := cli.Watch(wctx, MembershipKey)
		resync := time.NewTimer(versionsResync)
		for ok := true; ok; {
			select {
			case <-ctx.Done():
				ok = false
			case r, open := <-vw:
				ok = open && r.Err() == nil
			case r, open := <-mw:
				ok = open && r.Err() == nil
			case <-resync.C:
				resync.Reset(versionsResync)
			}
			if ctx.Err() != nil {
				break
			}
			dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
			if err := c.decide(dctx, cli, false); err != nil && ctx.Err() == nil {
				c.setErr(err)
			}
			dcancel()
		}
		resync.Stop()
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(versionsRetry):
		}
	}
}

func (c *versionsComponent) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err.Error() != c.lastErr {
		c.n.log.Warn("versions: decision failed", "component", "versions", "err", err)
	}
	c.lastErr = err.Error()
}

// decide reads every record and the membership, applies the policy to this
// master and publishes its record when it changed, compare-and-swap on the
// whole prefix (a record written since the read makes it start over).
func (c *versionsComponent) decide(ctx context.Context, cli *clientv3.Client, first bool) error {
	for {
		recs, rev, err := ReadVersions(ctx, cli)
		if err != nil {
			return err
		}
		mem, _, ok, err := ReadMembership(ctx, cli)
		if err != nil {
			return err
		}
		if !ok {
			mem = SeedMembership(c.n.cfg)
		}
		self := c.n.cfg.Name
		delete(recs, self)
		c.mu.Lock()
		r := VersionsRecord{Name: self, Masterd: c.build, WireVersion: election.WireVersion, Running: true, Updated: time.Now().UTC()}
		for unit, v := range c.kube {
			if r.Kube == nil {
				r.Kube = map[string]string{}
			}
			r.Kube[unitComponent[unit]] = v
		}
		apiStarted, prev := c.apiStarted, c.rec
		c.mu.Unlock()
		r.Refused = refusals(self, r.Kube, SkewMasters(mem, recs), apiStarted)
		// The leader-only components are compared with this master's own
		// apiserver too, when it runs.
		if r.Kube != nil {
			_, apiRefused := r.Refused[skew.APIServer]
			withSelf := append(SkewMasters(mem, recs), skew.Master{Name: self, Versions: r.Kube, APIServerDown: apiRefused})
			for _, comp := range []string{skew.Scheduler, skew.ControllerManager} {
				delete(r.Refused, comp)
				if v := r.Kube[comp]; v != "" {
					if err := skew.CheckLeaderComponent(self, comp, v, withSelf); err != nil {
						if r.Refused == nil {
							r.Refused = map[string]string{}
						}
						r.Refused[comp] = err.Error()
					}
				}
			}
			if len(r.Refused) == 0 {
				r.Refused = nil
			}
		}
		if !first && r.same(prev) {
			return nil
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(VersionsPrefix).WithPrefix(), "<", rev+1)).
			Then(clientv3.OpPut(VersionsPrefix+self, string(b))).Commit()
		if err != nil {
			return fmt.Errorf("versions: publish %s: %w", VersionsPrefix+self, err)
		}
		if !resp.Succeeded {
			continue // another master published meanwhile: decide again
		}
		c.apply(prev, r)
		return nil
	}
}

// refusals applies the apiserver rule for self (unless it runs already).
func refusals(self string, kube map[string]string, others []skew.Master, apiStarted bool) map[string]string {
	v := kube[skew.APIServer]
	if v == "" || apiStarted {
		return nil
	}
	if err := skew.CheckAPIServer(self, v, others); err != nil {
		return map[string]string{skew.APIServer: err.Error()}
	}
	return nil
}

// apply records the published decision, logs what changed and wakes the
// waiters.
func (c *versionsComponent) apply(prev, r VersionsRecord) {
	log := c.n.log.With("component", "versions")
	for _, comp := range []string{skew.APIServer, skew.Scheduler, skew.ControllerManager} {
		was, now := prev.Refused[comp], r.Refused[comp]
		switch {
		case now != "" && now != was:
			log.Error("version skew policy refuses to run "+comp+" here", "reason", now, "kube_component", comp, "version", r.Kube[comp])
		case now == "" && was != "":
			log.Info("version skew policy allows "+comp+" again", "kube_component", comp, "version", r.Kube[comp])
		}
		if c.refusedGauge != nil && r.Kube[comp] != "" {
			g := 0.0
			if now != "" {
				g = 1
			}
			c.refusedGauge.WithLabelValues(comp).Set(g)
		}
	}
	c.mu.Lock()
	c.rec, c.lastErr = r, ""
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// refusal returns why the policy refuses comp here now, or nil.
func (c *versionsComponent) refusal(comp string) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if why := c.rec.Refused[comp]; why != "" {
		return errors.New(why)
	}
	return nil
}

// waitAllowed blocks until comp is allowed here or ctx ends.
func (c *versionsComponent) waitAllowed(ctx context.Context, comp string) error {
	for {
		c.mu.Lock()
		why, ch := c.rec.Refused[comp], c.changed
		c.mu.Unlock()
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// apiserverStarted records that the apiserver runs: it is never refused
// afterwards.
func (c *versionsComponent) apiserverStarted() {
	c.mu.Lock()
	c.apiStarted = true
	c.mu.Unlock()
}

// kubeVersions returns the kube binaries' versions by unit name.
func (c *versionsComponent) kubeVersions() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.kube)
}

// VersionsStatus is the "versions" section of /status: this master's
// published record and the error of the last decision, if it failed.
type VersionsStatus struct {
	Record VersionsRecord `json:"record"`
	Error  string         `json:"error,omitempty"`
}

func (c *versionsComponent) Status() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return VersionsStatus{Record: c.rec, Error: c.lastErr}
}

// roleFit wraps fit with the policy for a leader-only role: a master the
// policy refuses the role's component is unfit for it.
func roleFit(fit healthSource, v *versionsComponent, role string) healthSource {
	comp, ok := roleComponent[role]
	if !ok || v == nil {
		return fit
	}
	return func(ctx context.Context) error {
		if err := v.refusal(comp); err != nil {
			return err
		}
		return fit(ctx)
	}
}
