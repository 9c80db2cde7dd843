package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/masterd/masterd/election"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// membershipElection is what the membership component needs of the
// election driver.
type membershipElection interface {
	SetMembership(m election.Membership, addrs map[string]string) error
	Status() election.Status
}

// membershipComponent keeps this master's election in step with the
// membership record in etcd: it watches the record and feeds every new epoch
// to the election (voters) and gossip (addresses), reports the epochs its
// election has settled, and takes the next step of a change in progress. It
// starts after the election.
type membershipComponent struct {
	n    *node
	etcd func() *clientv3.Client
	el   func() membershipElection

	bg bgLoop // loop
	// onRecord, if set, follows every record applied (the balancer's
	// backends: wire.go).
	onRecord func(MembershipRecord)

	mu      sync.Mutex
	rec     MembershipRecord
	waiting string
	lastErr string
}

// newMembershipComponent runs beside etcdC and el (wire.go's hook).
func newMembershipComponent(n *node, etcdC *etcdComponent, el *electionComponent) *membershipComponent {
	return &membershipComponent{n: n,
		etcd: func() *clientv3.Client {
			if etcdC.m == nil {
				return nil
			}
			return etcdC.m.Client()
		},
		el: func() membershipElection {
			if el.d == nil {
				return nil
			}
			return el.d
		},
	}
}

func (c *membershipComponent) Name() string { return "membership" }

// Start reads (or seeds) the record and feeds it to the election. A master
// that the record does not list was removed: it refuses to start, and says
// how to bring it back.
func (c *membershipComponent) Start(ctx context.Context) error {
	cli := c.etcd()
	if cli == nil {
		return errors.New("membership: etcd not running")
	}
	var above uint64
	if el := c.el(); el != nil {
		st := el.Status()
		above = max(st.Membership.Epoch, st.EpochFloor)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	r, aligned, err := alignWithSoleMember(rctx, cli, c.n.cfg, above)
	cancel()
	if err != nil {
		return err
	}
	if aligned {
		c.n.log.Warn("etcd has this member alone (restored from a snapshot?): membership set to this master alone",
			"component", "membership", "epoch", r.Epoch)
	}
	if !r.Contains(c.n.cfg.Name) {
		return fmt.Errorf("membership: this master %s is not in the agreed membership (%s): it was removed; to bring it back run 'masterd member add %s %s' on a master of the cluster, then start it with an empty data dir",
			c.n.cfg.Name, r, c.n.cfg.Name, c.n.cfg.Address)
	}
	if err := c.apply(r); err != nil {
		return err
	}
	c.bg.start(func(ctx context.Context) { c.loop(ctx, cli) })
	return nil
}

func (c *membershipComponent) Stop(ctx context.Context) error {
	c.bg.stop()
	return nil
}

// apply feeds r to the election; an older epoch is ignored there.
func (c *membershipComponent) apply(r MembershipRecord) error {
	c.mu.Lock()
	c.rec = r
	c.mu.Unlock()
	if c.onRecord != nil {
		c.onRecord(r)
	}
	el := c.el()
	if el == nil {
		return nil
	}
	if err := el.SetMembership(r.Election(), gossipAddrs(r, c.n.cfg.Gossip.Port)); err != nil {
		return fmt.Errorf("membership: epoch %d: %w", r.Epoch, err)
	}
	return nil
}

func (c *membershipComponent) loop(ctx context.Context, cli *clientv3.Client) {
	log := c.n.log.With("component", "membership")
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), MembershipKey)
	t := time.NewTicker(advanceInterval)
	defer t.Stop()
	reported := uint64(0)
	for {
		select {
		case <-ctx.Done():
			return
		case resp, ok := <-wch:
			if !ok || resp.Err() != nil {
				// The watch broke (no leader, compaction): the ticker's
				// read keeps the election fed; watch again.
				wch = cli.Watch(clientv3.WithRequireLeader(ctx), MembershipKey)
			}
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, _, ok, err := ReadMembership(rctx, cli)
		if err == nil && ok {
			c.mu.Lock()
			prev := c.rec
			c.mu.Unlock()
			if r.Epoch != prev.Epoch {
				log.Info("membership changed", "epoch", r.Epoch, "voters", strings.Join(slices.Sorted(maps.Keys(r.Voters)), ","),
					"joint", len(r.Old) > 0)
				if err := c.apply(r); err != nil {
					c.setErr(err)
					log.Warn("membership not applied", "err", err)
				}
			} else {
				c.mu.Lock()
				c.rec = r // the change's state may have moved
				c.mu.Unlock()
			}
		}
		if el := c.el(); el != nil {
			st := el.Status()
			if st.Settled && st.Membership.Epoch > reported {
				if err := ReportSettled(rctx, cli, c.n.cfg.Name, st.Membership.Epoch); err == nil {
					reported = st.Membership.Epoch
				}
			}
		}
		if err == nil && ok && r.Change != nil {
			_, waiting, err := AdvanceMembership(rctx, cli, c.n.cfg)
			c.mu.Lock()
			c.waiting = waiting
			c.mu.Unlock()
			if err != nil {
				c.setErr(err)
			}
		}
		cancel()
	}
}

func (c *membershipComponent) setErr(err error) {
	c.mu.Lock()
	c.lastErr = err.Error()
	c.mu.Unlock()
}

// MembershipStatus is the membership section of /status: the agreed record
// and, while a change runs, what it waits for.
type MembershipStatus struct {
	Epoch   uint64            `json:"epoch"`
	Voters  map[string]string `json:"voters"`
	Old     map[string]string `json:"old,omitempty"`
	Change  *MembershipChange `json:"change,omitempty"`
	Waiting string            `json:"waitingFor,omitempty"`
	Error   string            `json:"error,omitempty"`
}

func (c *membershipComponent) Status() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return MembershipStatus{Epoch: c.rec.Epoch, Voters: c.rec.Voters, Old: c.rec.Old, Change: c.rec.Change,
		Waiting: c.waiting, Error: c.lastErr}
}

// joinGate runs between pki and etcd: a master whose etcd data dir is empty
// would register itself as an etcd learner with the running cluster (see
// etcdembed's join). If the agreed membership does not list it — a removed
// master started again with a wiped disk, or a new one nobody added — it is
// refused before that, and told what to run. When no peer answers within
// joinGateTimeout (a first boot, every master restarting) it lets etcd
// decide as before.
type joinGate struct{ n *node }

const joinGateTimeout = 2 * time.Second

func (g joinGate) Name() string { return "membership-check" }

func (g joinGate) Start(ctx context.Context) error {
	if g.n.files == nil {
		return errors.New("membership-check: no certificates (pki did not start)")
	}
	ec := etcdConfig(g.n)
	if entries, err := os.ReadDir(filepath.Join(ec.DataDir, "member", "wal")); err == nil && len(entries) > 0 {
		return nil // a member with data restarts as itself
	}
	var eps []string
	for _, p := range g.n.cfg.Peers {
		if p.Name != g.n.cfg.Name {
			eps = append(eps, "https://"+net.JoinHostPort(p.Address.String(), strconv.Itoa(g.n.cfg.Etcd.ClientPort)))
		}
	}
	if len(eps) == 0 {
		return nil
	}
	info := transport.TLSInfo{CertFile: ec.TLS.ClientCertFile, KeyFile: ec.TLS.ClientKeyFile, TrustedCAFile: ec.TLS.CAFile}
	tc, err := info.ClientConfig()
	if err != nil {
		return fmt.Errorf("membership-check: client certificate: %w", err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tc, DialTimeout: joinGateTimeout, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("membership-check: %w", err)
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, joinGateTimeout)
	defer cancel()
	r, _, ok, err := ReadMembership(rctx, cli)
	if err != nil || !ok {
		return nil
	}
	if !r.Contains(g.n.cfg.Name) {
		return fmt.Errorf("membership-check: this master %s is not in the agreed membership (%s): refusing to join etcd; on a master of the cluster run 'masterd member add %s %s' first",
			g.n.cfg.Name, r, g.n.cfg.Name, g.n.cfg.Address)
	}
	return nil
}

func (g joinGate) Stop(context.Context) error { return nil }
