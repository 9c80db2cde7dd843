package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/masterd/masterd/election"
	"github.com/masterd/masterd/etcdembed"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Membership as data: the set of masters is a record in etcd, not the
// peers list of every configuration file (which only seeds epoch 1 on the
// first boot). Every agent watches the record and feeds it to its election
// (voters by epoch, joint while a change runs) and to gossip (addresses).
//
// A change is driven by a command on any master and finished by the daemons:
//
//	add NAME ADDR:   validate → publish joint (Voters old∪{NAME}, Old old, epoch+1,
//	                 Change add) → etcd learner for ADDR → the new master starts
//	                 (empty data dir), its etcd member catches up and promotes
//	                 itself → a quorum of the joint epoch reports Settled →
//	                 publish final (Voters old∪{NAME}, epoch+2)
//	remove NAME:     validate (quorum kept) → publish joint (Voters old−{NAME},
//	                 Old old, epoch+1, Change remove) → a quorum of the joint
//	                 epoch reports Settled → etcd member remove → publish final
//
// Every step is idempotent and its state lives in the record, so a crash of
// the command or of any daemon resumes where it stopped (any daemon takes the
// next step; publications are compare-and-swap on the record's revision).

// MembershipKey is the etcd key of the membership record.
const MembershipKey = "/masterd/membership"

// settledPrefix + name holds the highest epoch that master's election has
// settled (see election.Node.Settled), in decimal.
const settledPrefix = "/masterd/membership-settled/"

// MembershipRecord is the agreed set of masters.
type MembershipRecord struct {
	Epoch uint64 `json:"epoch"`
	// Voters maps each master's name to its address.
	Voters map[string]string `json:"voters"`
	// Old is the previous voter set while a change is in progress.
	Old    map[string]string `json:"old,omitempty"`
	Change *MembershipChange `json:"change,omitempty"`
}

// MembershipChange is the change in progress.
type MembershipChange struct {
	Op      string    `json:"op"` // "add" or "remove"
	Name    string    `json:"name"`
	Address string    `json:"address"`
	Started time.Time `json:"started"`
}

func (c *MembershipChange) String() string {
	return fmt.Sprintf("%s %s (%s), started %s", c.Op, c.Name, c.Address, c.Started.UTC().Format(time.RFC3339))
}

// Election is r as the election core's membership.
func (r MembershipRecord) Election() election.Membership {
	return election.Membership{Epoch: r.Epoch, Voters: slices.Sorted(maps.Keys(r.Voters)), Old: slices.Sorted(maps.Keys(r.Old))}
}

// all is every master of r (Voters and Old) with its address.
func (r MembershipRecord) all() map[string]string {
	m := maps.Clone(r.Old)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, r.Voters)
	return m
}

// Contains reports whether name is a voter of r or of its old set.
func (r MembershipRecord) Contains(name string) bool {
	_, ok := r.all()[name]
	return ok
}

func (r MembershipRecord) String() string {
	s := fmt.Sprintf("epoch %d, voters %s", r.Epoch, strings.Join(slices.Sorted(maps.Keys(r.Voters)), ","))
	if r.Change != nil {
		s += ", change in progress: " + r.Change.String()
	}
	return s
}

// SeedMembership is epoch 1: the configuration's peers.
func SeedMembership(cfg Config) MembershipRecord {
	r := MembershipRecord{Epoch: 1, Voters: map[string]string{}}
	for _, p := range cfg.Peers {
		r.Voters[p.Name] = p.Address.String()
	}
	return r
}

// ReadMembership reads the record (linearizable) and its modification
// revision; ok is false when there is none yet.
func ReadMembership(ctx context.Context, cli *clientv3.Client) (r MembershipRecord, rev int64, ok bool, err error) {
	resp, err := cli.Get(ctx, MembershipKey)
	if err != nil {
		return r, 0, false, fmt.Errorf("membership: read %s: %w", MembershipKey, err)
	}
	if len(resp.Kvs) == 0 {
		return r, 0, false, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return r, 0, false, fmt.Errorf("membership: decode %s: %w", MembershipKey, err)
	}
	return r, resp.Kvs[0].ModRevision, true, nil
}

// errConflict: someone else published first; read again.
var errConflict = errors.New("membership: record changed concurrently")

// publish writes r if the record still has revision rev (0: absent).
func publish(ctx context.Context, cli *clientv3.Client, rev int64, r MembershipRecord) error {
	if err := r.Election().Validate(); err != nil {
		return fmt.Errorf("membership: refusing to publish an invalid record: %w", err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(MembershipKey), "=", rev)).
		Then(clientv3.OpPut(MembershipKey, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("membership: publish epoch %d: %w", r.Epoch, err)
	}
	if !resp.Succeeded {
		return errConflict
	}
	return nil
}

// EnsureMembership returns the record, creating epoch 1 from cfg's peers
// when there is none (first boot of the cluster).
func EnsureMembership(ctx context.Context, cli *clientv3.Client, cfg Config) (MembershipRecord, int64, error) {
	for {
		r, rev, ok, err := ReadMembership(ctx, cli)
		if err != nil || ok {
			return r, rev, err
		}
		err = publish(ctx, cli, 0, SeedMembership(cfg))
		if err != nil && !errors.Is(err, errConflict) {
			return r, 0, err
		}
	}
}

// ChangeInProgressError refuses a change while another one runs.
type ChangeInProgressError struct{ Change *MembershipChange }

func (e *ChangeInProgressError) Error() string {
	return "membership: a change is already in progress: " + e.Change.String() +
		"; wait for it to finish (masterd member list) or abort it (masterd member abort)"
}

// planAdd is the joint record adding name at addr to r; it validates
// everything that does not need the cluster.
func planAdd(r MembershipRecord, cfg Config, name, addr string, now time.Time) (MembershipRecord, error) {
	if r.Change != nil {
		return r, &ChangeInProgressError{r.Change}
	}
	if !nameRE.MatchString(name) {
		return r, fmt.Errorf("membership: add: name %q: must be lowercase letters, digits, '-' and '.', 1 to 63 characters", name)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return r, fmt.Errorf("membership: add %s: address %q: %w", name, addr, err)
	}
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
		return r, fmt.Errorf("membership: add %s: address %s: must be a unicast address without zone", name, addr)
	}
	if cfg.VIP.Enabled && a == cfg.VIP.Address {
		return r, fmt.Errorf("membership: add %s: address %s is the VIP", name, a)
	}
	if _, ok := r.Voters[name]; ok {
		return r, fmt.Errorf("membership: add %s: name already in use by the master at %s", name, r.Voters[name])
	}
	for n, other := range r.Voters {
		if other == a.String() {
			return r, fmt.Errorf("membership: add %s: address %s already in use by master %s", name, a, n)
		}
	}
	if len(r.Voters)+1 > maxMasters {
		return r, fmt.Errorf("membership: add %s: %d masters already, at most %d are supported", name, len(r.Voters), maxMasters)
	}
	j := MembershipRecord{Epoch: r.Epoch + 1, Voters: maps.Clone(r.Voters), Old: maps.Clone(r.Voters),
		Change: &MembershipChange{Op: "add", Name: name, Address: a.String(), Started: now}}
	j.Voters[name] = a.String()
	return j, nil
}

// learnerWait bounds how long AddMaster waits for etcd to accept the
// learner before it leaves that step to the daemons.
const learnerWait = 20 * time.Second

// maxMasters is the election's limit on voters.
const maxMasters = 7

// planRemove is the joint record removing name from r; live says which
// masters' etcd members answer.
func planRemove(r MembershipRecord, cfg Config, name string, live map[string]bool, now time.Time) (MembershipRecord, error) {
	if r.Change != nil {
		return r, &ChangeInProgressError{r.Change}
	}
	addr, ok := r.Voters[name]
	if !ok {
		return r, fmt.Errorf("membership: remove: no master named %q (masters: %s)", name, strings.Join(slices.Sorted(maps.Keys(r.Voters)), ", "))
	}
	if name == cfg.Name {
		return r, fmt.Errorf("membership: remove %s: this is the master the command runs on; run it on another master", name)
	}
	if len(r.Voters) == 1 {
		return r, fmt.Errorf("membership: remove %s: it is the last master", name)
	}
	var liveOld, liveNew []string
	for v := range r.Voters {
		if live[v] {
			liveOld = append(liveOld, v)
			if v != name {
				liveNew = append(liveNew, v)
			}
		}
	}
	n := len(r.Voters)
	if len(liveOld) < n/2+1 {
		return r, fmt.Errorf("membership: remove %s refused: only %d of %d masters answer (%s), a change needs a quorum of %d; recover from a survivor instead (masterd member recover)",
			name, len(liveOld), n, strings.Join(slices.Sorted(slices.Values(liveOld)), ", "), n/2+1)
	}
	if len(liveNew) < (n-1)/2+1 {
		return r, fmt.Errorf("membership: remove %s refused: it would lose quorum: %d of the %d remaining masters answer (%s), %d needed; bring the others back first",
			name, len(liveNew), n-1, strings.Join(slices.Sorted(slices.Values(liveNew)), ", "), (n-1)/2+1)
	}
	j := MembershipRecord{Epoch: r.Epoch + 1, Voters: maps.Clone(r.Voters), Old: maps.Clone(r.Voters),
		Change: &MembershipChange{Op: "remove", Name: name, Address: addr, Started: now}}
	delete(j.Voters, name)
	return j, nil
}

// planFinal is the record that ends the change of joint record j.
func planFinal(j MembershipRecord) MembershipRecord {
	return MembershipRecord{Epoch: j.Epoch + 1, Voters: maps.Clone(j.Voters)}
}

// etcdPeer is master name at addr as an etcd peer under cfg's ports.
func etcdPeer(name, addr string) (etcdembed.Peer, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return etcdembed.Peer{}, fmt.Errorf("membership: address of %s: %w", name, err)
	}
	return etcdembed.Peer{Name: name, Address: a}, nil
}

// AddMaster starts adding master name at addr: it checks the cluster is
// healthy, publishes the joint membership and registers the etcd learner.
// The new master then starts (empty data dir) and the daemons finish the
// change (AdvanceMembership); WaitMembership waits for that. Running it
// again for the same name and address resumes an interrupted add.
func AddMaster(ctx context.Context, cli *clientv3.Client, cfg Config, name, addr string) (MembershipRecord, error) {
	r, rev, err := EnsureMembership(ctx, cli, cfg)
	if err != nil {
		return r, err
	}
	resume := r.Change != nil && r.Change.Op == "add" && r.Change.Name == name && r.Change.Address == addr
	if !resume {
		if r.Change == nil {
			// Validate the input before probing the cluster: bad input
			// gets its own message even on a sick cluster.
			if _, err := planAdd(r, cfg, name, addr, time.Now()); err != nil {
				return r, err
			}
			if err := etcdembed.Healthy(ctx, cli); err != nil {
				return r, fmt.Errorf("membership: add %s refused: %w", name, err)
			}
		}
		j, err := planAdd(r, cfg, name, addr, time.Now())
		if err != nil {
			return r, err
		}
		if err := publish(ctx, cli, rev, j); err != nil {
			if errors.Is(err, errConflict) {
				return r, fmt.Errorf("membership: add %s: the membership changed meanwhile; run the command again", name)
			}
			return r, err
		}
		r = j
	}
	p, err := etcdPeer(name, addr)
	if err != nil {
		return r, err
	}
	lctx, cancel := context.WithTimeout(ctx, learnerWait)
	_, err = etcdembed.AddLearner(lctx, cli, EtcdMemberConfig(cfg, nil), p)
	waited := lctx.Err() != nil
	cancel()
	if err != nil && (errors.Is(err, rpctypes.ErrUnhealthy) || waited) && ctx.Err() == nil {
		// etcd accepts a member only once this member has been connected
		// to every other one for 5 s; the daemons register the learner
		// as soon as it does (AdvanceMembership).
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("membership: add %s: %w (the joint membership epoch %d is published; run the command again to resume, or masterd member abort)", name, err, r.Epoch)
	}
	return r, nil
}

// RemoveMaster starts removing master name: it refuses when the change would
// lose quorum, and publishes the joint membership; the daemons remove the
// etcd member and publish the final membership (WaitMembership waits).
func RemoveMaster(ctx context.Context, cli *clientv3.Client, cfg Config, name string) (MembershipRecord, error) {
	r, rev, err := EnsureMembership(ctx, cli, cfg)
	if err != nil {
		return r, err
	}
	if c := r.Change; c != nil && c.Op == "remove" && c.Name == name {
		return r, nil
	}
	if r.Change != nil {
		return r, &ChangeInProgressError{r.Change}
	}
	if _, ok := r.Voters[name]; !ok {
		return planRemove(r, cfg, name, nil, time.Now())
	}
	live, _, err := etcdembed.Liveness(ctx, cli)
	if err != nil {
		return r, fmt.Errorf("membership: remove %s: %w", name, err)
	}
	j, err := planRemove(r, cfg, name, live, time.Now())
	if err != nil {
		return r, err
	}
	if err := publish(ctx, cli, rev, j); err != nil {
		if errors.Is(err, errConflict) {
			return r, fmt.Errorf("membership: remove %s: the membership changed meanwhile; run the command again", name)
		}
		return r, err
	}
	return j, nil
}

// AbortChange ends the change in progress by going back to the old voter
// set at a new epoch (safe at any time: the old set's quorums intersect the
// joint ones) and undoing its etcd step: the learner of an add is removed.
// A remove whose etcd member is already gone cannot be aborted.
func AbortChange(ctx context.Context, cli *clientv3.Client, cfg Config) (MembershipRecord, error) {
	r, rev, ok, err := ReadMembership(ctx, cli)
	if err != nil {
		return r, err
	}
	if !ok || r.Change == nil {
		return r, errors.New("membership: abort: no change in progress")
	}
	c := r.Change
	p, err := etcdPeer(c.Name, c.Address)
	if err != nil {
		return r, err
	}
	ecfg := EtcdMemberConfig(cfg, nil)
	if c.Op == "remove" {
		st, err := etcdembed.StateOf(ctx, cli, ecfg, p)
		if err != nil {
			return r, err
		}
		if st == etcdembed.MemberAbsent {
			return r, fmt.Errorf("membership: abort: %s is already removed from etcd; the change can only finish", c.Name)
		}
	}
	back := MembershipRecord{Epoch: r.Epoch + 1, Voters: maps.Clone(r.Old)}
	if err := publish(ctx, cli, rev, back); err != nil {
		return r, err
	}
	if c.Op == "add" {
		if _, err := etcdembed.RemoveByName(ctx, cli, c.Name, ecfg.PeerURL(p)); err != nil {
			return back, fmt.Errorf("membership: abort: membership epoch %d published, but the etcd learner %s stays: %w (remove it with masterd etcd remove)", back.Epoch, c.Name, err)
		}
	}
	_, _ = cli.Delete(ctx, settledPrefix+c.Name)
	return back, nil
}

// settledEpochs reads every master's reported settled epoch.
func settledEpochs(ctx context.Context, cli *clientv3.Client) (map[string]uint64, error) {
	resp, err := cli.Get(ctx, settledPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("membership: read settled epochs: %w", err)
	}
	out := map[string]uint64{}
	for _, kv := range resp.Kvs {
		e, err := strconv.ParseUint(string(kv.Value), 10, 64)
		if err == nil {
			out[strings.TrimPrefix(string(kv.Key), settledPrefix)] = e
		}
	}
	return out, nil
}

// settledQuorum reports whether a quorum of every voter set of joint record
// j reports Settled for j's epoch, and which masters are still missing.
func settledQuorum(j MembershipRecord, settled map[string]uint64) (bool, []string) {
	ok := true
	var missing []string
	for _, set := range []map[string]string{j.Voters, j.Old} {
		if len(set) == 0 {
			continue
		}
		k := 0
		for v := range set {
			if settled[v] >= j.Epoch {
				k++
			} else if !slices.Contains(missing, v) {
				missing = append(missing, v)
			}
		}
		if k < len(set)/2+1 {
			ok = false
		}
	}
	slices.Sort(missing)
	return ok, missing
}

// ReportSettled records that master name's election has settled epoch e.
func ReportSettled(ctx context.Context, cli *clientv3.Client, name string, e uint64) error {
	if _, err := cli.Put(ctx, settledPrefix+name, strconv.FormatUint(e, 10)); err != nil {
		return fmt.Errorf("membership: report settled epoch %d: %w", e, err)
	}
	return nil
}

// AdvanceMembership takes the next step of the change in progress, if it
// can: it returns the record after the step, and what the change waits for
// ("" when it took a step or there is no change). Any master may call it at
// any time; concurrent calls are harmless.
func AdvanceMembership(ctx context.Context, cli *clientv3.Client, cfg Config) (MembershipRecord, string, error) {
	r, rev, ok, err := ReadMembership(ctx, cli)
	if err != nil || !ok || r.Change == nil {
		return r, "", err
	}
	c := r.Change
	p, err := etcdPeer(c.Name, c.Address)
	if err != nil {
		return r, "", err
	}
	ecfg := EtcdMemberConfig(cfg, nil)
	st, err := etcdembed.StateOf(ctx, cli, ecfg, p)
	if err != nil {
		return r, "", err
	}
	if c.Op == "add" {
		switch st {
		case etcdembed.MemberAbsent:
			// The command stopped between the joint record and the learner.
			if _, err := etcdembed.AddLearner(ctx, cli, ecfg, p); err != nil {
				return r, "", err
			}
			return r, "", nil
		case etcdembed.MemberUnstarted:
			return r, fmt.Sprintf("the new master %s to start (masterd with an empty data dir)", c.Name), nil
		case etcdembed.MemberLearner:
			return r, fmt.Sprintf("the etcd learner %s to catch up and be promoted", c.Name), nil
		}
	}
	settled, err := settledEpochs(ctx, cli)
	if err != nil {
		return r, "", err
	}
	if ok, missing := settledQuorum(r, settled); !ok {
		return r, fmt.Sprintf("the elections to settle epoch %d (not yet: %s)", r.Epoch, strings.Join(missing, ", ")), nil
	}
	if c.Op == "remove" && st != etcdembed.MemberAbsent {
		if _, err := etcdembed.RemoveByName(ctx, cli, c.Name, ecfg.PeerURL(p)); err != nil {
			return r, "", err
		}
		return r, "", nil
	}
	f := planFinal(r)
	if err := publish(ctx, cli, rev, f); err != nil {
		if errors.Is(err, errConflict) {
			return r, "", nil
		}
		return r, "", err
	}
	if c.Op == "remove" {
		_, _ = cli.Delete(ctx, settledPrefix+c.Name)
	}
	return f, "", nil
}

// WaitMembership waits until no change is in progress at an epoch of at
// least epoch, calling progress with what the change waits for whenever
// that changes. It advances the change itself too (the daemons do as well),
// so it also finishes a change whose daemons are not running this code.
func WaitMembership(ctx context.Context, cli *clientv3.Client, cfg Config, epoch uint64, progress func(string)) (MembershipRecord, error) {
	last := ""
	for {
		r, waiting, err := AdvanceMembership(ctx, cli, cfg)
		if err == nil && r.Change == nil && r.Epoch >= epoch {
			return r, nil
		}
		if err != nil {
			waiting = err.Error()
		}
		if waiting != "" && waiting != last && progress != nil {
			progress(waiting)
			last = waiting
		}
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("membership: gave up waiting (%s): %w; the change goes on, see masterd member list", last, ctx.Err())
		case <-time.After(advanceInterval):
		}
	}
}

// advanceInterval is how often the daemons and WaitMembership try the next
// step of a change.
const advanceInterval = 500 * time.Millisecond

// gossipAddrs are the gossip addresses of every master of r.
func gossipAddrs(r MembershipRecord, port int) map[string]string {
	out := map[string]string{}
	for n, a := range r.all() {
		out[n] = net.JoinHostPort(a, strconv.Itoa(port))
	}
	return out
}

// RecoverSurvivor turns this master's etcd data into a one-member cluster
// (etcdembed.Recover: force-new-cluster) and publishes a membership of this
// master alone at a new epoch, ending any change in progress. masterd must
// be stopped here, and, unless force, no other master may serve etcd. The
// other masters then rejoin as fresh masters through AddMaster, each with
// an empty data dir.
func RecoverSurvivor(ctx context.Context, cfg Config, force bool) (MembershipRecord, error) {
	var out MembershipRecord
	err := etcdembed.Recover(ctx, EtcdMemberConfig(cfg, EtcdFiles(cfg)), etcdembed.RecoverOptions{
		Force: force,
		After: func(ctx context.Context, cli *clientv3.Client) error {
			r, rev, err := EnsureMembership(ctx, cli, cfg)
			if err != nil {
				return err
			}
			out = MembershipRecord{Epoch: r.Epoch + 1, Voters: map[string]string{cfg.Name: cfg.Address.String()}}
			if err := publish(ctx, cli, rev, out); err != nil {
				return err
			}
			if _, err := cli.Delete(ctx, settledPrefix, clientv3.WithPrefix()); err != nil {
				return fmt.Errorf("membership: clear settled epochs: %w", err)
			}
			return nil
		},
	})
	return out, err
}

// alignWithSoleMember handles a cluster made a one-member one by an etcd
// restore from a snapshot: etcd then has this member alone while the
// snapshot's membership record lists every master of the time, whose
// quorum this master could never reach again. When etcd lists this member
// alone as a voter, no change is in progress and the record says otherwise,
// it publishes this master alone at an epoch above both the record's and
// above (the highest epoch this master's election knows). It reports
// whether it published.
func alignWithSoleMember(ctx context.Context, cli *clientv3.Client, cfg Config, above uint64) (MembershipRecord, bool, error) {
	r, rev, err := EnsureMembership(ctx, cli, cfg)
	if err != nil || r.Change != nil {
		return r, false, err
	}
	if len(r.Voters) == 1 && r.Voters[cfg.Name] != "" {
		return r, false, nil
	}
	list, err := cli.MemberList(ctx)
	if err != nil {
		return r, false, fmt.Errorf("membership: list etcd members: %w", err)
	}
	if len(list.Members) != 1 || list.Members[0].Name != cfg.Name || list.Members[0].IsLearner {
		return r, false, nil
	}
	sole := MembershipRecord{Epoch: max(r.Epoch, above) + 1, Voters: map[string]string{cfg.Name: cfg.Address.String()}}
	if err := publish(ctx, cli, rev, sole); err != nil {
		return r, false, err
	}
	return sole, true, nil
}
