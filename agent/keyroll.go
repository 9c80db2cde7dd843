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
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Key rolls: the shared keys that rotate online (the gossip key, keys.go;
// the service-account signing key, sakeys.go) are generations derived from
// the cluster secret, so every master computes the same keys and a rotation
// only has to agree on numbers. The agreed key ring is a record in etcd
// (KeyRing: the generations in use and the primary, the one that encrypts
// or signs), as the membership is; every daemon applies each new revision
// of it, keeps it in dataDir so a restart starts with it, and acknowledges
// the revision under the roll's acknowledgement prefix.
//
// A rotation (keyRoll.rotate) rolls from primary P to a new generation N in
// three records, each published only after every master of the membership
// acknowledged the one before: install {P, N} primary P; use {P, N}
// primary N; remove {N}. No two masters ever lack a common key: while some
// use N, all hold N; P goes only once nobody uses it.

// Steps of a roll, as KeyRing.Step says.
const (
	RollStepIdle    = 0
	RollStepInstall = 1
	RollStepUse     = 2
	RollStepRemove  = 3
)

// keyRingPoll is how often a daemon reads a record: one small linearizable
// read.
const keyRingPoll = time.Second

// KeyRing is an agreed set of key generations.
type KeyRing struct {
	// Generations are the key generations every master holds.
	Generations []int `json:"generations"`
	// Primary is the generation that encrypts or signs; one of Generations.
	Primary int `json:"primary"`
	// Step is where a roll stands (RollStep*); Next is the generation it
	// rolls to (both informational for the daemons, which only apply
	// Generations and Primary; the command resumes from them).
	Step int `json:"step"`
	Next int `json:"next,omitempty"`
	// Since is when the roll's use step was published: a service-account
	// key may leave only once every token it signed expired.
	Since time.Time `json:"since,omitzero"`
}

// initialKeyRing is the ring before any rotation: generation 0, the
// cluster secret's own key.
var initialKeyRing = KeyRing{Generations: []int{0}, Primary: 0}

// validate checks r can be applied.
func (r KeyRing) validate() error {
	if len(r.Generations) == 0 || !slices.Contains(r.Generations, r.Primary) {
		return fmt.Errorf("primary generation %d not among %v", r.Primary, r.Generations)
	}
	return nil
}

func (r KeyRing) String() string {
	gens := make([]string, len(r.Generations))
	for i, g := range r.Generations {
		gens[i] = strconv.Itoa(g)
	}
	return fmt.Sprintf("generations [%s], primary %d", strings.Join(gens, " "), r.Primary)
}

// sameKeys reports whether a and b hold the same keys in the same roles.
func (r KeyRing) sameKeys(o KeyRing) bool {
	return slices.Equal(r.Generations, o.Generations) && r.Primary == o.Primary
}

// keyRoll names one rotating key: its record and acknowledgements in etcd.
type keyRoll struct {
	what      string // "gossip keys": errors start with it
	key       string // the record
	ackPrefix string // + master name: the revision it applied
	maxGen    int
}

// read reads the record and its revision; a cluster that never rotated
// has none (the initial ring, revision 0).
func (k keyRoll) read(ctx context.Context, cli *clientv3.Client) (KeyRing, int64, error) {
	resp, err := cli.Get(ctx, k.key)
	if err != nil {
		return KeyRing{}, 0, fmt.Errorf("%s: read %s: %w", k.what, k.key, err)
	}
	if len(resp.Kvs) == 0 {
		return initialKeyRing, 0, nil
	}
	var r KeyRing
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return r, 0, fmt.Errorf("%s: decode %s: %w", k.what, k.key, err)
	}
	if err := r.validate(); err != nil {
		return r, 0, fmt.Errorf("%s: %s: %w", k.what, k.key, err)
	}
	return r, resp.Kvs[0].ModRevision, nil
}

// acks returns, by master name, the record revision each master applied
// last.
func (k keyRoll) acks(ctx context.Context, cli *clientv3.Client) (map[string]int64, error) {
	resp, err := cli.Get(ctx, k.ackPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("%s: read acknowledgements: %w", k.what, err)
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		rev, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err == nil {
			out[strings.TrimPrefix(string(kv.Key), k.ackPrefix)] = rev
		}
	}
	return out, nil
}

// publish writes r if the record still has revision rev (0: absent) and
// returns the new revision.
func (k keyRoll) publish(ctx context.Context, cli *clientv3.Client, rev int64, r KeyRing) (int64, error) {
	if err := r.validate(); err != nil {
		return 0, fmt.Errorf("%s: %w", k.what, err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	cmp := clientv3.Compare(clientv3.ModRevision(k.key), "=", rev)
	resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(k.key, string(b))).Commit()
	if err != nil {
		return 0, fmt.Errorf("%s: publish: %w", k.what, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%s: the record changed concurrently (another rotation?); run the command again", k.what)
	}
	return resp.Header.Revision, nil
}

// KeyRollStep is one published step of a roll, for a command's output.
type KeyRollStep struct {
	Step     int
	Record   KeyRing
	Acked    []string
	Duration time.Duration
}

// errRollPaused is returned by a beforeRemove hook that leaves the roll at
// its use step (safe) for a later run to finish.
var errRollPaused = errors.New("old key kept")

// rotate rolls the cluster to a new key generation, or finishes a roll an
// earlier run left (the steps are idempotent). Each step waits, at most
// wait, for every master of the membership to acknowledge; on a timeout the
// roll stays where it is (safe: every master shares a key) and the error
// names who did not answer. progress, if set, gets each step. beforeRemove,
// if set, may stop the roll at the use step (its error is returned).
func (k keyRoll) rotate(ctx context.Context, cli *clientv3.Client, wait time.Duration, progress func(KeyRollStep), beforeRemove func(KeyRing) error) (KeyRing, error) {
	r, rev, err := k.read(ctx, cli)
	if err != nil {
		return r, err
	}
	if r.Step == RollStepIdle {
		next := slices.Max(r.Generations) + 1
		if next > k.maxGen {
			return r, fmt.Errorf("%s: generation %d is the last", k.what, next-1)
		}
		r = KeyRing{Generations: append(slices.Clone(r.Generations), next), Primary: r.Primary, Step: RollStepInstall, Next: next}
		if rev, err = k.publish(ctx, cli, rev, r); err != nil {
			return r, err
		}
	}
	for {
		start := time.Now()
		acked, err := k.waitAcks(ctx, cli, rev, wait)
		if progress != nil {
			progress(KeyRollStep{Step: r.Step, Record: r, Acked: acked, Duration: time.Since(start)})
		}
		if err != nil {
			return r, err
		}
		switch r.Step {
		case RollStepInstall:
			r.Primary, r.Step, r.Since = r.Next, RollStepUse, time.Now().UTC()
		case RollStepUse:
			if beforeRemove != nil {
				if err := beforeRemove(r); err != nil {
					return r, err
				}
			}
			r.Generations, r.Step = []int{r.Next}, RollStepRemove
		case RollStepRemove:
			r.Step, r.Next, r.Since = RollStepIdle, 0, time.Time{}
			if rev, err = k.publish(ctx, cli, rev, r); err != nil {
				return r, err
			}
			// The same ring, marked finished; wait so that `keys
			// status` shows every master current.
			_, err := k.waitAcks(ctx, cli, rev, wait)
			return r, err
		default:
			return r, fmt.Errorf("%s: unknown step %d in %s", k.what, r.Step, k.key)
		}
		if rev, err = k.publish(ctx, cli, rev, r); err != nil {
			return r, err
		}
	}
}

// waitAcks waits until every master of the membership acknowledged
// revision rev, and returns those that did.
func (k keyRoll) waitAcks(ctx context.Context, cli *clientv3.Client, rev int64, wait time.Duration) ([]string, error) {
	deadline := time.Now().Add(wait)
	for {
		m, _, ok, err := ReadMembership(ctx, cli)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%s: no membership record in etcd yet", k.what)
		}
		acks, err := k.acks(ctx, cli)
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
			return done, fmt.Errorf("%s: %s did not apply the key ring within %s; the roll stops here (every master still shares a key): start them, then run the command again to finish", k.what, strings.Join(missing, ", "), wait)
		}
		select {
		case <-ctx.Done():
			return done, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// keyRingState is what a ring's file in dataDir holds: the ring applied
// last and its record's revision.
type keyRingState struct {
	Record   KeyRing `json:"record"`
	Revision int64   `json:"revision"`
}

// loadKeyRing returns the ring this master applied last (file in dataDir),
// or the initial one.
func (n *node) loadKeyRing(file, what string) keyRingState {
	path := filepath.Join(n.cfg.DataDir, file)
	data, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			n.log.Warn(what+" state unreadable; starting with the cluster secret's key", "file", path, "err", err)
		}
		return keyRingState{Record: initialKeyRing}
	}
	var st keyRingState
	if err := json.Unmarshal(data, &st); err != nil || st.Record.validate() != nil {
		n.log.Warn(what+" state invalid; starting with the cluster secret's key", "file", path)
		return keyRingState{Record: initialKeyRing}
	}
	return st
}

// keyRingComponent applies a roll's record on this master: apply puts a
// ring in use; the applied ring is saved and its revision acknowledged.
type keyRingComponent struct {
	n     *node
	name  string // component and /status section
	roll  keyRoll
	file  string // state in dataDir
	etcd  func() *clientv3.Client
	apply func(KeyRing) error
	// atStart applies the saved ring before the first read of etcd (the
	// service-account signer must serve keys before the apiserver starts);
	// lenient lets Start go on when that read fails (the loop retries).
	atStart, lenient bool

	bg bgLoop // loop

	mu      sync.Mutex
	st      keyRingState
	acked   int64
	lastErr string
}

func (c *keyRingComponent) Name() string { return c.name }

// Start applies the record once (a master that missed a roll gets the
// current keys before anything else) and then follows it.
func (c *keyRingComponent) Start(ctx context.Context) error {
	cli := c.etcd()
	if cli == nil {
		return fmt.Errorf("%s: etcd not running", c.roll.what)
	}
	c.st = c.n.loadKeyRing(c.file, c.roll.what)
	if c.atStart {
		if err := c.apply(c.st.Record); err != nil {
			return err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := c.sync(rctx, cli)
	cancel()
	if err != nil {
		if !c.lenient {
			return err
		}
		c.n.log.Warn(c.roll.what+": record not read at start; serving the ring applied last", "component", c.name, "record", c.st.Record.String(), "err", err)
		c.mu.Lock()
		c.lastErr = err.Error()
		c.mu.Unlock()
	}
	c.bg.start(func(ctx context.Context) { c.loop(ctx, cli) })
	return nil
}

func (c *keyRingComponent) Stop(ctx context.Context) error {
	c.bg.stop()
	return nil
}

func (c *keyRingComponent) loop(ctx context.Context, cli *clientv3.Client) {
	t := time.NewTicker(keyRingPoll)
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
			c.n.log.Warn(c.roll.what+" not applied", "component", c.name, "err", err)
		}
	}
}

// sync applies a newer record and acknowledges the applied revision.
func (c *keyRingComponent) sync(ctx context.Context, cli *clientv3.Client) error {
	r, rev, err := c.roll.read(ctx, cli)
	if err != nil {
		return err
	}
	c.mu.Lock()
	cur := c.st
	acked := c.acked
	c.mu.Unlock()
	if rev != cur.Revision || !r.sameKeys(cur.Record) {
		if err := c.apply(r); err != nil {
			return err
		}
		st := keyRingState{Record: r, Revision: rev}
		data, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(c.n.cfg.DataDir, c.file), data, 0o600); err != nil {
			return fmt.Errorf("%s: save: %w", c.roll.what, err)
		}
		if !r.sameKeys(cur.Record) {
			c.n.log.Info(c.roll.what+" applied", "component", c.name, "generations", fmt.Sprint(r.Generations), "primary", r.Primary, "revision", rev)
		}
		c.mu.Lock()
		c.st = st
		c.mu.Unlock()
	}
	if rev > 0 && acked != rev {
		if _, err := cli.Put(ctx, c.roll.ackPrefix+c.n.cfg.Name, strconv.FormatInt(rev, 10)); err != nil {
			return fmt.Errorf("%s: acknowledge: %w", c.roll.what, err)
		}
		c.mu.Lock()
		c.acked = rev
		c.mu.Unlock()
	}
	return nil
}

// KeyRingStatus is a key ring's section of /status ("gossip-keys",
// "service-account-keys").
type KeyRingStatus struct {
	Generations []int  `json:"generations"`
	Primary     int    `json:"primary"`
	Revision    int64  `json:"revision"`
	Error       string `json:"error,omitempty"`
}

func (c *keyRingComponent) Status() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	gens := slices.Clone(c.st.Record.Generations)
	sort.Ints(gens)
	return KeyRingStatus{Generations: gens, Primary: c.st.Record.Primary, Revision: c.st.Revision, Error: c.lastErr}
}

// etcdClientOf returns a function giving the running member's client.
func etcdClientOf(etcdC *etcdComponent) func() *clientv3.Client {
	return func() *clientv3.Client {
		if etcdC.m == nil {
			return nil
		}
		return etcdC.m.Client()
	}
}
