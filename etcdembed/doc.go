// Package etcdembed runs the masters' etcd cluster inside masterd: one embedded
// etcd member (go.etcd.io/etcd/server/v3/embed) per master, with mutual TLS on
// the peer and client listeners, so that a masterd install needs no separate
// etcd.
//
// # Lifecycle
//
// [New] validates a [Config] and prepares a [Member]; [Member.Start] decides
// how the member enters the cluster, starts it and returns once it serves
// clients (or returns an error, never hangs silently: it logs progress every
// few seconds while it waits). The decision, made for the operator:
//
//   - the data dir holds a member: restart with that data;
//   - the data dir is empty, no peer serves clients, and a quorum of the
//     configured masters (this one included) answer on their peer ports and
//     are all empty too: first boot, initial cluster state "new" built from
//     Config.Members. While it waits to decide, an empty member answers the
//     others' probe on its own peer port ("not decided"), as etcd would;
//   - the data dir is empty and no peer serves clients, but a peer's data
//     holds a formed cluster (it lacks quorum), or too few masters answer:
//     wait, retrying, and log for whom (a formed cluster's members may still
//     be restarting; bootstrapping beside them could vote away committed
//     writes);
//   - the data dir is empty and a peer serves clients: join the running
//     cluster. The member adds itself as a learner (MemberAddAsLearner
//     through a peer, with masterd's client certificate), starts with state
//     "existing" and promotes itself to a voting member once caught up,
//     retrying while etcd refuses (one learner at a time, learner not in
//     sync). Start returns after the promotion, because a learner does not
//     serve linearizable requests;
//   - the data dir is empty but the cluster still lists a started member of
//     this name (disk replaced): the stale member is removed and the member
//     re-added as a learner, as above. etcd's strict reconfiguration check
//     refuses the removal when it would cost quorum; Start keeps retrying.
//
// Start takes an exclusive flock on <DataDir>.lock (it writes its PID there)
// and holds it until the member is closed; a held lock fails Start and
// [Restore] with a [*DataDirInUseError] naming the holder's PID.
//
// [Member.Stop] closes the member; a leader hands etcd leadership to another
// voter first (etcd's TryTransferLeadershipOnShutdown). [Member.RemoveMember]
// removes a master taken away for good ("masterd etcd remove NAME").
//
// # Health
//
// [Member.Health] reports an error unless the member sees a leader, has no
// alarm raised, answers a linearizable read (quorum reachable) and is not
// stuck applying (applied index not moving while behind the commit index). It
// sets masterd_etcd_member_healthy. The agent feeds it into /readyz and the
// election's eligibility.
//
// # Snapshots and disaster recovery
//
// [Member.Snapshot] (and [SaveSnapshot], for any client of one member) writes
// a consistent snapshot of the keyspace to a file (atomically: temporary
// file, fsync, rename). It first makes a linearizable read through the
// member, so a follower has applied every write acknowledged before the call
// when it snapshots. While running, the member takes
// one every Config.SnapshotInterval into Config.SnapshotDir (default
// <DataDir>/../snapshots) and keeps the newest Config.SnapshotRetention.
// [Restore] turns a snapshot into the data dir of a new one-member cluster;
// the other masters then join it with empty data dirs (see the README). It
// refuses while the data dir's lock is held or, unless forced, while another
// member runs etcd ([RunningPeers]), and restores into a new directory that
// replaces the data dir only at the end: a refused or failed restore changes
// nothing.
//
// # Metrics
//
// On the injected registerer, namespace masterd, subsystem etcd:
//
//	masterd_etcd_member_healthy      gauge    1 when the last health check passed
//	masterd_etcd_is_leader           gauge    1 while this member leads etcd
//	masterd_etcd_snapshots_total     counter  snapshots taken, by result (ok|error)
//
// etcd registers its own metrics (etcd_*, grpc_server_*) on
// prometheus.DefaultRegisterer once per process; the agent gathers both.
//
// # Logging
//
// etcd's zap logger is routed into the injected slog.Logger (attribute
// component=etcd): warnings and errors as such, lifecycle events (start,
// ready, leader changes, membership changes, stop) at Info, everything else
// at Debug.
package etcdembed
