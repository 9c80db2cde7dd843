package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/masterd/masterd/internal/atomicfile"
	"github.com/masterd/masterd/pki"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Gossip key rotation.
//
// The gossip keys are generations (pki.Secret.GossipKeyGen): 0 is the
// cluster secret's own key, g ≥ 1 derived from the secret, so every master
// computes the same keys and a rotation only has to agree on numbers. The
// agreed keyring is a record in etcd (GossipKeysKey: the generations
// installed and the primary), as the membership is; every daemon applies
// each new revision of it to its memberlist keyring (election.SetKeys: add,
// then switch the primary, then remove), keeps it in dataDir/gossip-keys.json
// so a restart starts with it, and acknowledges the revision under
// GossipKeysAckPrefix+name.
//
// `masterd keys rotate-gossip` (RotateGossipKey) rolls from primary P to a
// new generation N in three records, each published only after every master
// of the membership acknowledged the one before: install {P, N} primary P;
// use {P, N} primary N; remove {N}. No two masters ever lack a common key:
// while some use N, all hold N; P goes only once nobody encrypts with it.
//
// A master that was down during a roll starts with its old keyring and
// cannot gossip; its etcd member still reaches the others (etcd has its own
// TLS), so the component reads the record when it starts and installs the
// current keys before anything else needs gossip, and the election's
// periodic re-join brings it in.

// Keys of the gossip keyring record and its acknowledgements in etcd.
const (
	GossipKeysKey       = "/masterd/gossip-keys"
	GossipKeysAckPrefix = "/masterd/gossip-keys-ack/"
)

// gossipKeysFile is the keyring last applied, in dataDir.
const gossipKeysFile = "gossip-keys.json"

// gossipKeysPoll is how often the component reads the record: one small
// linearizable read.
const gossipKeysPoll = time.Second

// Steps of a roll, as GossipKeysRecord.Step says.
const (
	GossipStepIdle    = 0
	GossipStepInstall = 1
	GossipStepUse     = 2
	GossipStepRemove  = 3
)

// GossipKeysRecord is the agreed gossip keyring.
type GossipKeysRecord struct {
	// Generations are the key generations every master holds.
	Generations []int `json:"generations"`
	// Primary is the generation that encrypts; one of Generations.
	Primary int `json:"primary"`
	// Step is where a roll stands (GossipStep*); Next is the generation it
	// rolls to (both informational for the daemons, which only apply
	// Generations and Primary; the command resumes from them).
	Step int `json:"step"`
	Next int `json:"next,omitempty"`
}

// initialGossipKeys is the keyring before any rotation: the secret's key.
var initialGossipKeys = GossipKeysRecord{Generations: []int{0}, Primary: 0}

// validate checks r can be applied.
func (r GossipKeysRecord) validate() error {
	if len(r.Generations) == 0 || !slices.Contains(r.Generations, r.Primary) {
		return fmt.Errorf("gossip keys: primary generation %d not among %v", r.Primary, r.Generations)
	}
	return nil
}

func (r GossipKeysRecord) String() string {
	gens := make([]string, len(r.Generations))
	for i, g := range r.Generations {
		gens[i] = strconv.Itoa(g)
	}
	return fmt.Sprintf("generations [%s], primary %d", strings.Join(gens, " "), r.Primary)
}

// ReadGossipKeys reads the record and its revision; a cluster that never
// rotated has none (the initial keyring, revision 0).
func ReadGossipKeys(ctx context.Context, cli *clientv3.Client) (GossipKeysRecord, int64, error) {
	resp, err := cli.Get(ctx, GossipKeysKey)
	if err != nil {
		return GossipKeysRecord{}, 0, fmt.Errorf("gossip keys: read %s: %w", GossipKeysKey, err)
	}
	if len(resp.Kvs) == 0 {
		return initialGossipKeys, 0, nil
	}
	var r GossipKeysRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return r, 0, fmt.Errorf("gossip keys: decode %s: %w", GossipKeysKey, err)
	}
	return r, resp.Kvs[0].ModRevision, r.validate()
}

// GossipKeyAcks returns, by master name, the record revision each master
// applied last.
func GossipKeyAcks(ctx context.Context, cli *clientv3.Client) (map[string]int64, error) {
	resp, err := cli.Get(ctx, GossipKeysAckPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("gossip keys: read acknowledgements: %w", err)
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		rev, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err == nil {
			out[strings.TrimPrefix(string(kv.Key), GossipKeysAckPrefix)] = rev
		}
	}
	return out, nil
}

// publishGossipKeys writes r if the record still has revision rev (0:
// absent) and returns the new revision.
func publishGossipKeys(ctx context.Context, cli *clientv3.Client, rev int64, r GossipKeysRecord) (int64, error) {
	if err := r.validate(); err != nil {
		return 0, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	cmp := clientv3.Compare(clientv3.ModRevision(GossipKeysKey), "=", rev)
	resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(GossipKeysKey, string(b))).Commit()
	if err != nil {
		return 0, fmt.Errorf("gossip keys: publish: %w", err)
	}
	if !resp.Succeeded {
		return 0, errors.New("gossip keys: the record changed concurrently (another rotation?); run the command again")
	}
	return resp.Header.Revision, nil
}

// GossipRollStep is one published step of a roll, for the command's output.
type GossipRollStep struct {
	Step     int
	Record   GossipKeysRecord
	Acked    []string
	Duration time.Duration
}

// RotateGossipKey rolls the cluster to a new gossip key generation, or
// finishes a roll an earlier run left (the steps are idempotent). Each step
// waits, at most wait, for every master of the membership to acknowledge;
// on a timeout the roll stays where it is (safe: every master shares a key)
// and the error names who did not answer. progress, if set, gets each step.
func RotateGossipKey(ctx context.Context, cli *clientv3.Client, wait time.Duration, progress func(GossipRollStep)) (GossipKeysRecord, error) {
	r, rev, err := ReadGossipKeys(ctx, cli)
	if err != nil {
		return r, err
	}
	if r.Step == GossipStepIdle {
		next := slices.Max(r.Generations) + 1
		if next > pki.MaxGossipKeyGeneration {
			return r, fmt.Errorf("gossip keys: generation %d is the last", next-1)
		}
		r = GossipKeysRecord{Generations: append(slices.Clone(r.Generations), next), Primary: r.Primary, Step: GossipStepInstall, Next: next}
		if rev, err = publishGossipKeys(ctx, cli, rev, r); err != nil {
			return r, err
		}
	}
	for {
		start := time.Now()
		acked, err := waitGossipAcks(ctx, cli, rev, wait)
		if progress != nil {
			progress(GossipRollStep{Step: r.Step, Record: r, Acked: acked, Duration: time.Since(start)})
		}
		if err != nil {
			return r, err
		}
		switch r.Step {
		case GossipStepInstall:
			r.Primary, r.Step = r.Next, GossipStepUse
		case GossipStepUse:
			r.Generations, r.Step = []int{r.Next}, GossipStepRemove
		case GossipStepRemove:
			r.Step, r.Next = GossipStepIdle, 0
			if rev, err = publishGossipKeys(ctx, cli, rev, r); err != nil {
				return r, err
			}
			// The same keyring, marked finished; wait so that
			// `keys status` shows every master current.
			_, err := waitGossipAcks(ctx, cli, rev, wait)
			return r, err
		default:
			return r, fmt.Errorf("gossip keys: unknown step %d in %s", r.Step, GossipKeysKey)
		}
		if rev, err = publishGossipKeys(ctx, cli, rev, r); err != nil {
			return r, err
		}
	}
}

// waitGossipAcks waits until every master of the membership acknowledged
// revision rev, and returns those that did.
func waitGossipAcks(ctx context.Context, cli *clientv3.Client, rev int64, wait time.Duration) ([]string, error) {
	deadline := time.Now().Add(wait)
	for {
		m, _, ok, err := ReadMembership(ctx, cli)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errors.New("gossip keys: no membership record in etcd yet")
		}
		acks, err := GossipKeyAcks(ctx, cli)
		if err != nil {
			return nil, err
		}
		var done, missing []string
		for _, name := range slices.Sorted(maps.Keys(m.all())) {
			if acks[name] >= rev {
				done = append(done, name)
			} else {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return done, nil
		}
		if time.Now().After(deadline) {
			return done, fmt.Errorf("gossip keys: %s did not apply the keyring within %s; the roll stops here (every master still shares a key): start them, then run the command again to finish", strings.Join(missing, ", "), wait)
		}
		select {
		case <-ctx.Done():
			return done, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// gossipKeysState is what dataDir/gossip-keys.json holds.
type gossipKeysState struct {
	Record   GossipKeysRecord `json:"record"`
	Revision int64            `json:"revision"`
}

func (n *node) gossipKeysPath() string { return filepath.Join(n.cfg.DataDir, gossipKeysFile) }

// loadGossipKeys returns the keyring this master applied last, or the
// initial one.
func (n *node) loadGossipKeys() gossipKeysState {
	data, err := os.ReadFile(n.gossipKeysPath())
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			n.log.Warn("gossip keyring state unreadable; starting with the cluster secret's key", "component", "gossip-keys", "err", err)
		}
		return gossipKeysState{Record: initialGossipKeys}
	}
	var st gossipKeysState
	if err := json.Unmarshal(data, &st); err != nil || st.Record.validate() != nil {
		n.log.Warn("gossip keyring state invalid; starting with the cluster secret's key", "component", "gossip-keys", "file", n.gossipKeysPath())
		return gossipKeysState{Record: initialGossipKeys}
	}
	return st
}

// gossipKeys are the keys the election starts with (primary first): the
// keyring applied last, which etcd's record then brings up to date.
func (n *node) gossipKeys() ([][]byte, error) {
	st := n.loadGossipKeys()
	return n.secret.GossipKeyring(st.Record.Generations, st.Record.Primary)
}

// gossipKeysComponent applies the record to the running keyring (see above).
type gossipKeysComponent struct {
	n    *node
	etcd func() *clientv3.Client
	el   func() interface{ SetKeys([][]byte) error }

	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	st      gossipKeysState
	acked   int64
	lastErr string
}

func newGossipKeysComponent(n *node, etcdC *etcdComponent, el *electionComponent) *gossipKeysComponent {
	return &gossipKeysComponent{n: n,
		etcd: func() *clientv3.Client {
			if etcdC.m == nil {
				return nil
			}
			return etcdC.m.Client()
		},
		el: func() interface{ SetKeys([][]byte) error } {
			if el.d == nil {
				return nil
			}
			return el.d
		},
	}
}

func (c *gossipKeysComponent) Name() string { return "gossip-keys" }

// Start applies the record once (a master that missed a roll gets the
// current keys before anything else) and then follows it.
func (c *gossipKeysComponent) Start(ctx context.Context) error {
	cli := c.etcd()
	if cli == nil {
		return errors.New("gossip keys: etcd not running")
	}
	c.st = c.n.loadGossipKeys()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := c.sync(rctx, cli)
	cancel()
	if err != nil {
		return err
	}
	bg, stop := context.WithCancel(context.Background())
	c.cancel, c.done = stop, make(chan struct{})
	go c.loop(bg, cli)
	return nil
}

func (c *gossipKeysComponent) Stop(ctx context.Context) error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gossip keys: stop: %w", ctx.Err())
	}
}

func (c *gossipKeysComponent) loop(ctx context.Context, cli *clientv3.Client) {
	defer close(c.done)
	t := time.NewTicker(gossipKeysPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.sync(sctx, cli)
		cancel()
		c.mu.Lock()
		prev := c.lastErr
		c.lastErr = ""
		if err != nil {
			c.lastErr = err.Error()
		}
		c.mu.Unlock()
		if err != nil && err.Error() != prev && ctx.Err() == nil {
			c.n.log.Warn("gossip keyring not applied", "component", "gossip-keys", "err", err)
		}
	}
}

// sync applies a newer record and acknowledges the applied revision.
func (c *gossipKeysComponent) sync(ctx context.Context, cli *clientv3.Client) error {
	r, rev, err := ReadGossipKeys(ctx, cli)
	if err != nil {
		return err
	}
	c.mu.Lock()
	cur := c.st
	acked := c.acked
	c.mu.Unlock()
	if rev != cur.Revision || !slices.Equal(r.Generations, cur.Record.Generations) || r.Primary != cur.Record.Primary {
		keys, err := c.n.secret.GossipKeyring(r.Generations, r.Primary)
		if err != nil {
			return err
		}
		el := c.el()
		if el == nil {
			return errors.New("gossip keys: election not running")
		}
		if err := el.SetKeys(keys); err != nil {
			return err
		}
		st := gossipKeysState{Record: r, Revision: rev}
		data, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(c.n.gossipKeysPath(), data, 0o600); err != nil {
			return fmt.Errorf("gossip keys: save: %w", err)
		}
		if !slices.Equal(r.Generations, cur.Record.Generations) || r.Primary != cur.Record.Primary {
			c.n.log.Info("gossip keyring applied", "component", "gossip-keys", "generations", fmt.Sprint(r.Generations), "primary", r.Primary, "revision", rev)
		}
		c.mu.Lock()
		c.st = st
		c.mu.Unlock()
	}
	if rev > 0 && acked != rev {
		if _, err := cli.Put(ctx, GossipKeysAckPrefix+c.n.cfg.Name, strconv.FormatInt(rev, 10)); err != nil {
			return fmt.Errorf("gossip keys: acknowledge: %w", err)
		}
		c.mu.Lock()
		c.acked = rev
		c.mu.Unlock()
	}
	return nil
}

// GossipKeysStatus is the "gossip-keys" section of /status.
type GossipKeysStatus struct {
	Generations []int  `json:"generations"`
	Primary     int    `json:"primary"`
	Revision    int64  `json:"revision"`
	Error       string `json:"error,omitempty"`
}

func (c *gossipKeysComponent) Status() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	gens := slices.Clone(c.st.Record.Generations)
	sort.Ints(gens)
	return GossipKeysStatus{Generations: gens, Primary: c.st.Record.Primary, Revision: c.st.Revision, Error: c.lastErr}
}
