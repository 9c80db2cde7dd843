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

// probeTimeout bounds one attempt to reach a peer's client or peer port.
const probeTimeout = 2 * time.Second

// plan decides how a member with an empty data dir enters the cluster, and
// adds it as a learner (after removing a stale member of the same name) when
// it joins a running one. It retries until one of these holds:
//
//   - a peer serves etcd clients: join the running cluster;
//   - a quorum of the configured masters (this one included) answer on their
//     peer ports and every one of them is empty: first boot, state "new".
//
// Otherwise it waits, and says for whom: a peer whose data holds a formed
// cluster that serves no client means that cluster lacks quorum, and
// bootstrapping "new" beside it with an empty data dir could vote away
// committed writes; peers that do not answer yet may be such members still
// restarting. While it waits, answerEmpty tells the other empty members that
// this one is empty too.
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
	stopAnswering, err := m.answerEmpty()
	if err != nil {
		return plan{}, err
	}
	defer stopAnswering()

	n := len(m.cfg.Members)
	quorum := n/2 + 1
	join := false
	var lastWait error
	lastState := ""
	err = m.retry(ctx, "decide how to enter the etcd cluster", func(ctx context.Context) (bool, error) {
		// Both probes at once: a peer that runs without quorum keeps the
		// client probe waiting for the whole timeout.
		var serving []string
		done := make(chan struct{})
		go func() {
			defer close(done)
			serving = servingPeers(ctx, m.cfg, cli, m.logNotServing)
		}()
		s, err := surveyPeers(ctx, m.cfg, m.logSilent)
		<-done
		if len(serving) > 0 {
			join = true
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if ctx.Err() != nil && lastWait != nil {
			// Cut short by the deadline: the previous, complete attempt
			// says better what this member waits for.
			return false, lastWait
		}
		var wait error
		switch {
		case len(s.formed) > 0:
			wait = fmt.Errorf("wait for quorum of the existing etcd cluster (%s) before joining it: no member serves clients",
				peerList(s.formed, s.detail))
		case 1+len(s.empty) >= quorum:
			m.log.Info("no peer serves etcd and a quorum of the masters is empty, bootstrapping new etcd cluster",
				"empty", strings.Join(append([]string{m.cfg.Name}, s.empty...), ","), "silent", strings.Join(s.silent, ","))
			return true, nil
		default:
			wait = fmt.Errorf("waiting for %s: a new etcd cluster needs %d of the %d masters answering with empty data, %d do (%s)",
				peerList(s.silent, s.detail), quorum, n, 1+len(s.empty), strings.Join(append([]string{m.cfg.Name}, s.empty...), ", "))
		}
		// Log when the peers' states change; retry logs progress meanwhile.
		if state := fmt.Sprint(s.formed, s.empty, s.silent); state != lastState {
			lastState = state
			m.log.Warn("etcd member with empty data dir waits before entering the cluster",
				"formed", strings.Join(s.formed, ","), "empty", strings.Join(s.empty, ","), "silent", strings.Join(s.silent, ","),
				"reason", wait.Error())
		}
		lastWait = wait
		return false, wait
	})
	if err != nil {
		return plan{}, err
	}
	if !join {
		return first, nil
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

// logNotServing and logSilent log a peer that does not serve etcd clients
// or whose peer port does not answer, at Debug.
func (m *Member) logNotServing(peer string, err error) {
	m.log.Debug("peer does not serve etcd clients", "peer", peer, "error", err)
}

func (m *Member) logSilent(peer string, err error) {
	m.log.Debug("peer port does not answer", "peer", peer, "error", err)
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
