package etcdembed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Membership changes driven from outside the member (masterd member add and
// remove, run by the operator on any master, and the daemons that finish a
// change). They take a client to the running cluster and the local member's
// Config, which gives the URLs a peer advertises.

// MemberState is what etcd knows of one named member.
type MemberState int

const (
	// MemberAbsent: etcd lists no member of that name or peer URL.
	MemberAbsent MemberState = iota
	// MemberUnstarted: registered (as a learner) but never started.
	MemberUnstarted
	// MemberLearner: started, still a learner (catching up).
	MemberLearner
	// MemberVoter: a voting member.
	MemberVoter
)

func (s MemberState) String() string {
	return [...]string{"absent", "unstarted", "learner", "voter"}[s]
}

// PeerURL is the peer URL member p advertises under c's ports.
func (c Config) PeerURL(p Peer) string {
	u := c.peerURL(p)
	return u.String()
}

// findMember returns the member named name, or registered under peerURL and
// not started yet (a member publishes its name when it first starts).
func findMember(list []*etcdserverpb.Member, name, peerURL string) *etcdserverpb.Member {
	for _, mem := range list {
		if mem.Name == name && name != "" {
			return mem
		}
		if peerURL != "" && contains(mem.PeerURLs, peerURL) && mem.Name == "" {
			return mem
		}
	}
	return nil
}

func stateOf(mem *etcdserverpb.Member) MemberState {
	switch {
	case mem == nil:
		return MemberAbsent
	case unstarted(mem):
		return MemberUnstarted
	case mem.IsLearner:
		return MemberLearner
	}
	return MemberVoter
}

// StateOf reports what etcd knows of member p (by name, or by peer URL while
// it has not started).
func StateOf(ctx context.Context, cli *clientv3.Client, c Config, p Peer) (MemberState, error) {
	list, err := cli.MemberList(ctx)
	if err != nil {
		return MemberAbsent, fmt.Errorf("etcdembed: list members: %w", err)
	}
	return stateOf(findMember(list.Members, p.Name, c.PeerURL(p))), nil
}

// AddLearner registers p as a learner, which p's own Start then finds
// (unstarted, by its peer URL), starts and promotes once caught up. It is
// idempotent: a member already registered for p (by name or, unstarted, by
// peer URL) is left as it is. A peer URL used by another started member is
// refused. While etcd calls the cluster unhealthy (a member connected only
// moments ago) it retries until ctx ends.
func AddLearner(ctx context.Context, cli *clientv3.Client, c Config, p Peer) (uint64, error) {
	url := c.PeerURL(p)
	list, err := cli.MemberList(ctx)
	if err != nil {
		return 0, fmt.Errorf("etcdembed: add learner %s: list members: %w", p.Name, err)
	}
	if mem := findMember(list.Members, p.Name, url); mem != nil {
		if !contains(mem.PeerURLs, url) {
			return 0, fmt.Errorf("etcdembed: add learner %s: member %s already exists with peer URLs %v, not %s",
				p.Name, p.Name, mem.PeerURLs, url)
		}
		return mem.ID, nil
	}
	for _, mem := range list.Members {
		if contains(mem.PeerURLs, url) {
			return 0, fmt.Errorf("etcdembed: add learner %s: peer URL %s belongs to member %q", p.Name, url, mem.Name)
		}
	}
	// etcd's strict reconfiguration check refuses a change until every
	// member has been connected for a few seconds (right after a start):
	// wait that out.
	for {
		resp, err := cli.MemberAddAsLearner(ctx, []string{url})
		if err == nil {
			return resp.Member.ID, nil
		}
		// Another master may have registered it meanwhile (the command
		// and the daemons finishing a change both call AddLearner).
		if list, lerr := cli.MemberList(ctx); lerr == nil {
			if mem := findMember(list.Members, p.Name, url); mem != nil && contains(mem.PeerURLs, url) {
				return mem.ID, nil
			}
		}
		if !errors.Is(err, rpctypes.ErrUnhealthy) || ctx.Err() != nil {
			return 0, fmt.Errorf("etcdembed: add learner %s at %s: %w", p.Name, url, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("etcdembed: add learner %s at %s: %w", p.Name, url, err)
		case <-time.After(retryInterval):
		}
	}
}

// RemoveByName removes the member named name (or, unstarted, registered
// under peerURL). It reports whether a member was removed; an absent one is
// not an error (a resumed change may already have removed it).
func RemoveByName(ctx context.Context, cli *clientv3.Client, name, peerURL string) (bool, error) {
	list, err := cli.MemberList(ctx)
	if err != nil {
		return false, fmt.Errorf("etcdembed: remove member %s: list members: %w", name, err)
	}
	mem := findMember(list.Members, name, peerURL)
	if mem == nil {
		return false, nil
	}
	if _, err := cli.MemberRemove(ctx, mem.ID); err != nil {
		if errors.Is(err, rpctypes.ErrMemberNotFound) {
			return false, nil
		}
		return false, fmt.Errorf("etcdembed: remove member %s (%x): %w", name, mem.ID, err)
	}
	return true, nil
}

// statusTimeout bounds the probe of one member in Liveness.
const statusTimeout = 2 * time.Second

// Liveness probes every started member of the cluster on its advertised
// client URL (an etcd Status call through cli's credentials) and returns,
// by name, whether it answered; learners are included and marked by
// learner. It fails only when the member list cannot be read.
func Liveness(ctx context.Context, cli *clientv3.Client) (live map[string]bool, learner map[string]bool, err error) {
	list, err := cli.MemberList(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("etcdembed: list members: %w", err)
	}
	live, learner = map[string]bool{}, map[string]bool{}
	type answer struct {
		name string
		ok   bool
	}
	ch := make(chan answer, len(list.Members))
	n := 0
	for _, mem := range list.Members {
		if unstarted(mem) {
			live[fmt.Sprintf("unstarted-%x", mem.ID)] = false
			learner[fmt.Sprintf("unstarted-%x", mem.ID)] = mem.IsLearner
			continue
		}
		learner[mem.Name] = mem.IsLearner
		n++
		go func() {
			ok := false
			for _, u := range mem.ClientURLs {
				sctx, cancel := context.WithTimeout(ctx, statusTimeout)
				_, err := cli.Status(sctx, u)
				cancel()
				if err == nil {
					ok = true
					break
				}
			}
			ch <- answer{mem.Name, ok}
		}()
	}
	for range n {
		a := <-ch
		live[a.name] = a.ok
	}
	return live, learner, nil
}

// Healthy returns nil when every member is a started voter that answers and
// the cluster has a leader; otherwise an error naming what is wrong (a
// pending learner, a silent member).
func Healthy(ctx context.Context, cli *clientv3.Client) error {
	live, learner, err := Liveness(ctx, cli)
	if err != nil {
		return err
	}
	var problems []string
	for name, ok := range live {
		switch {
		case strings.HasPrefix(name, "unstarted-"):
			problems = append(problems, fmt.Sprintf("member %s was added but never started", strings.TrimPrefix(name, "unstarted-")))
		case !ok:
			problems = append(problems, fmt.Sprintf("member %s does not answer", name))
		case learner[name]:
			problems = append(problems, fmt.Sprintf("member %s is still a learner", name))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("etcdembed: cluster not healthy: %s", strings.Join(problems, "; "))
	}
	// A linearizable read needs a leader and a quorum.
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Get(rctx, "health"); err != nil {
		return fmt.Errorf("etcdembed: cluster not healthy: linearizable read: %w", err)
	}
	return nil
}
