package etcdembed

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// plan is how a member with an empty data dir enters the cluster.
type plan struct {
	state          string // "new" or "existing"
	initialCluster string
}

// retryInterval is the pause between attempts of retry.
const retryInterval = 200 * time.Millisecond

// probeTimeout bounds one attempt to reach a peer's client port.
const probeTimeout = 2 * time.Second

// plan decides between a first boot ("new") and joining a running cluster,
// adding this member as a learner (after removing a stale member of the same
// name) when joining.
func (m *Member) plan(ctx context.Context) (plan, error) {
	first := plan{state: "new", initialCluster: m.cfg.initialClusterFromConfig()}
	eps := m.cfg.peerEndpoints()
	if len(eps) == 0 {
		m.log.Info("single-member cluster, bootstrapping new etcd cluster")
		return first, nil
	}
	cli, err := m.newClient(eps)
	if err != nil {
		return plan{}, err
	}
	defer cli.Close()
	if !m.anyPeerServing(ctx, cli, eps) {
		formed, err := m.formedPeer(ctx)
		if err != nil {
			return plan{}, err
		}
		if formed == "" {
			m.log.Info("no peer serves etcd yet, bootstrapping new etcd cluster", "peers", strings.Join(eps, ","))
			return first, nil
		}
		// A cluster was formed before and has no quorum now: bootstrapping
		// "new" with an empty data dir could vote away committed writes.
		m.log.Warn("etcd cluster exists but serves no client, waiting for its quorum before joining", "peer", formed)
		if err := m.retry(ctx, "wait for quorum of the existing etcd cluster ("+formed+")", func(ctx context.Context) (bool, error) {
			if m.anyPeerServing(ctx, cli, eps) {
				return true, nil
			}
			return false, errors.New("no peer serves clients")
		}); err != nil {
			return plan{}, err
		}
	}
	m.log.Info("etcd cluster running, joining it", "peers", strings.Join(eps, ","))
	var p plan
	err = m.retry(ctx, "join running etcd cluster", func(ctx context.Context) (bool, error) {
		var err error
		p, err = m.joinOnce(ctx, cli)
		return err == nil, err
	})
	return p, err
}

// anyPeerServing reports whether some peer answers a Status call: only a
// member that has joined its cluster serves clients. Peers are asked
// concurrently.
func (m *Member) anyPeerServing(ctx context.Context, cli *clientv3.Client, eps []string) bool {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	ok := make(chan bool, len(eps))
	for _, ep := range eps {
		go func() {
			_, err := cli.Status(ctx, ep)
			if err != nil {
				m.log.Debug("peer does not serve etcd", "endpoint", ep, "error", err)
			}
			ok <- err == nil
		}()
	}
	for range eps {
		if <-ok {
			return true
		}
	}
	return false
}

// joinOnce makes one attempt at registering this member in the cluster.
func (m *Member) joinOnce(ctx context.Context, cli *clientv3.Client) (plan, error) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := cli.MemberList(lctx)
	if err != nil {
		return plan{}, fmt.Errorf("list members: %w", err)
	}
	peerURL := m.cfg.peerURL(m.cfg.self())
	for _, mem := range list.Members {
		byURL := contains(mem.PeerURLs, peerURL.String())
		switch {
		case mem.Name == m.cfg.Name || (mem.Name == "" && byURL):
			if unstarted(mem) {
				// Registered but never started: a previous join (or the
				// initial cluster) already added us.
				m.log.Info("etcd member registered but not started yet, starting it",
					"id", fmt.Sprintf("%x", mem.ID), "learner", mem.IsLearner)
				return plan{state: "existing", initialCluster: initialCluster(list.Members, mem.ID, m.cfg.Name)}, nil
			}
			// Started before, but our data dir is empty: disk replaced.
			m.log.Warn("etcd lists this member but its data dir is empty, replacing the stale member",
				"stale_id", fmt.Sprintf("%x", mem.ID))
			if _, err := cli.MemberRemove(lctx, mem.ID); err != nil {
				return plan{}, fmt.Errorf("remove stale member %x: %w", mem.ID, err)
			}
			m.log.Info("stale etcd member removed", "stale_id", fmt.Sprintf("%x", mem.ID))
			return m.addLearner(lctx, cli, peerURL.String())
		case byURL:
			return plan{}, fmt.Errorf("peer url %s belongs to member %q", peerURL.String(), mem.Name)
		}
	}
	return m.addLearner(lctx, cli, peerURL.String())
}

func (m *Member) addLearner(ctx context.Context, cli *clientv3.Client, peerURL string) (plan, error) {
	resp, err := cli.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return plan{}, fmt.Errorf("add learner %s: %w", peerURL, err)
	}
	m.log.Info("etcd member added as learner", "id", fmt.Sprintf("%x", resp.Member.ID))
	return plan{state: "existing", initialCluster: initialCluster(resp.Members, resp.Member.ID, m.cfg.Name)}, nil
}

// initialCluster builds etcd's initial-cluster flag from a member list; self
// gets name, members not started yet get a placeholder name.
func initialCluster(members []*etcdserverpb.Member, self uint64, name string) string {
	var parts []string
	for _, mem := range members {
		n := mem.Name
		if mem.ID == self {
			n = name
		} else if n == "" {
			n = fmt.Sprintf("unstarted-%x", mem.ID)
		}
		for _, u := range mem.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// unstarted reports whether mem never published itself (a member publishes
// its name and client URLs through raft when it first starts).
func unstarted(mem *etcdserverpb.Member) bool {
	return mem.Name == "" || len(mem.ClientURLs) == 0
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// promote turns this learner into a voting member once it has caught up,
// retrying through the peers until ctx ends.
func (m *Member) promote(ctx context.Context, id uint64) error {
	eps := m.cfg.peerEndpoints()
	cli, err := m.newClient(eps)
	if err != nil {
		return err
	}
	defer cli.Close()
	m.log.Info("etcd member is a learner, promoting it once caught up", "id", fmt.Sprintf("%x", id))
	return m.retry(ctx, "promote learner", func(ctx context.Context) (bool, error) {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := cli.MemberPromote(pctx, id)
		if err == nil || errors.Is(err, rpctypes.ErrMemberNotLearner) {
			m.log.Info("etcd learner promoted to voting member", "id", fmt.Sprintf("%x", id))
			return true, nil
		}
		return false, err
	})
}

// retry calls f every retryInterval until it reports done or ctx ends, logging
// progress (with f's last error) every Config.ProgressInterval.
func (m *Member) retry(ctx context.Context, what string, f func(context.Context) (bool, error)) error {
	start := time.Now()
	lastLog := start
	for {
		done, err := f(ctx)
		if done {
			return nil
		}
		if time.Since(lastLog) >= m.cfg.ProgressInterval {
			lastLog = time.Now()
			m.log.Warn("etcd member still trying", "step", what,
				"waited_seconds", time.Since(start).Seconds(), "error", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcdembed: %s: gave up after %.0fs: %w (quorum unreachable?): %w",
				what, time.Since(start).Seconds(), err, ctx.Err())
		case <-time.After(retryInterval):
		}
	}
}

// RemoveMember removes the named member from the cluster, for a master taken
// away for good. Removing this member itself is refused: stop it and remove
// it from another master.
func (m *Member) RemoveMember(ctx context.Context, name string) error {
	cli := m.Client()
	if cli == nil {
		return fmt.Errorf("etcdembed: remove member %s: local member not running", name)
	}
	if name == m.cfg.Name {
		return fmt.Errorf("etcdembed: remove member %s: refusing to remove the local member", name)
	}
	list, err := cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcdembed: remove member %s: list members: %w", name, err)
	}
	for _, mem := range list.Members {
		if mem.Name == name {
			if _, err := cli.MemberRemove(ctx, mem.ID); err != nil {
				return fmt.Errorf("etcdembed: remove member %s (%x): %w", name, mem.ID, err)
			}
			m.log.Info("etcd member removed", "removed", name, "removed_id", fmt.Sprintf("%x", mem.ID))
			return nil
		}
	}
	return fmt.Errorf("etcdembed: remove member %s: no such member", name)
}

// Members lists the cluster's members as etcd sees them.
func (m *Member) Members(ctx context.Context) ([]*etcdserverpb.Member, error) {
	cli := m.Client()
	if cli == nil {
		return nil, errors.New("etcdembed: list members: local member not running")
	}
	list, err := cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcdembed: list members: %w", err)
	}
	return list.Members, nil
}
