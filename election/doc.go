// Package election decides which master holds each role (vip, scheduler,
// controller-manager) with quorum leases over memberlist's encrypted packet
// channel. It never lets two masters hold one role at the same instant
// (under the timing model below) and fails over in about one lease.
//
// # Layers
//
// Node (node.go, role.go) is a pure, deterministic state machine in the
// style of etcd's raft package: no goroutines, no time.Now, no I/O,
// randomness injected. Inputs are Step(now, msg), Tick(now) with the local
// monotonic time, Released(now, role, term) and Handover; output is Ready:
// state to persist (fsync before anything is sent), messages to send, and
// role changes (Acquired / Renewed with the lease deadline, Lost). Driver
// (driver.go) is the only code that touches memberlist: one loop goroutine
// owns the Node, one goroutine per role runs the agent's callbacks.
//
// # Messages
//
// PreVote/PreVoteResp (non-binding), Vote, Grant, Nack, Heartbeat, Ack,
// Release, TermQuery/TermReply (non-binding). Each carries sender,
// receiver, the sender's incarnation (grows at every start; older
// incarnations are dropped) and message counter, its membership epoch and
// membership hash, role, term and a hash of the role's timing (a node drops
// messages whose timing hash differs, or whose membership hash differs at
// the same epoch). memberlist authenticates packets but keeps no replay
// cache, so a receiver accepts each (sender, incarnation, counter) once,
// with a 64-message window for reordering (replay.go): a captured
// heartbeat of a dead leader, replayed, does not renew anyone's promise.
// The windows live in memory, so after its own restart a node answers a
// Vote or Heartbeat only from an incarnation that has answered, in this
// run, a TermQuery carrying this run's random nonce (a dead leader never
// does); term replies must carry the nonce too, so none recorded in an
// earlier run can be replayed into term learning.
// The wire format (message.go, version 2) is versioned, length-checked and
// bounded by MaxMessageSize; Decode rejects malformed input with a reason.
//
// # Membership
//
// The voters are a Membership numbered by an epoch (membership.go). Peers
// in the configuration seed epoch 1; later epochs are data the cluster
// agrees on and hands to every node (SetMembership), persisted with the
// node's state. A change from voter set A to B publishes the joint
// membership {B, old A} first — a quorum is then a majority of A and a
// majority of B — and publishes B alone only once a quorum of the joint
// membership reports Settled: adopted for a full lease and not learning.
// A voter refuses binding requests from a sender of an epoch below the
// highest it knows (its floor), so once the joint membership settled no
// quorum of A alone can form any more; only consecutive memberships, whose
// quorums intersect, are ever active together. A node that hears of an
// epoch newer than its own membership campaigns for nothing until it is
// given that membership.
//
// # Voters
//
// A voter that Grants or Acks X promises not to answer anyone else for
// LeaseDuration on its own clock from the moment it answers; an unexpired
// promise beats every term (the Nack says to whom and for how long) and a
// rejected Vote does not raise the voter's term. Per role it persists
// (maxTerm, votedFor) before replying and grants t only if t > maxTerm, or t
// == maxTerm for the same candidate, so terms — the fencing tokens — never
// go backwards. A node's own candidacy and heartbeats are a promise to
// itself. Release{term} from X drops a promise only if it is to X for that
// term, and the released term is remembered so a late Vote or Heartbeat
// cannot re-create it.
//
// # Leaders and candidates
//
// A candidate campaigns only when its own promise expired, after a back-off
// ordered by eligibility (healthy first, then priority, then name; peers'
// eligibility comes from gossiped node meta; the leader it was promised to
// does not count ahead, every other voter does, since a follower hears only
// the leader and cannot tell a quiet peer from a dead one). It sends PreVote
// first (a voter still bound by a promise, quiet period or handover window
// does not answer it, so the candidate asks again a retry period later
// instead of losing its round to a "no" that would be a "yes" a moment
// later), then Vote; its lease starts at the Vote's first send time, counted before
// the message is handed to memberlist. It needs Grants for exactly its term
// from a majority of the configured voters before start + RenewDeadline. A
// leader heartbeats every RetryPeriod; its lease start is the Q-th latest
// acknowledged send time of its term, and it holds the role while now <
// start + RenewDeadline. At that instant (Tick), on a Nack with a higher
// term, or on handover it emits Lost; only after the caller reports the
// release complete (Released) does it send Release, and it never acts on
// that term again. A graceful handover sends Release{term, successor}:
// voters then grant only the successor for a short window and the successor
// campaigns at once, winning in one round trip. Preemption happens only
// through such a handover: an unhealthy leader hands over to a healthy peer
// after a lease of continuous ill health as leader of its term, and a
// leader hands over to a live peer strictly better by (health, priority) —
// never by name alone — once that has held for a lease. Voters never drop a promise because a better
// candidate asks.
//
// # Timing model
//
// Every duration is measured on the local monotonic clock of the node that
// applies it; no clock is compared with another. Clock rates are assumed to
// lie within [1−ε, 1+ε] of true time (Config.Drift, DefaultDrift = 1000
// ppm); clock offsets do not matter. T_detect (Timing.DetectSlack) bounds how
// late the deadline check may run and T_release (Timing.ReleaseSlack) how
// long releasing takes. Timing.Problems (and Validate, and the agent's
// configuration check, which use it) enforces client-go's RenewDeadline >
// 1.2·RetryPeriod and the safety inequality (which implies LeaseDuration >
// RenewDeadline)
//
//	LeaseDuration ≥ RenewDeadline·(1+ε)/(1−ε) + (1+ε)·(T_detect + T_release)
//
// RetryPeriod affects only liveness: RenewDeadline ≥ (k+1)·RetryPeriod + RTT
// tolerates k lost rounds.
//
// Profiles (timing.go, the one definition of roles, profiles and slack):
// DefaultVIPTiming 800ms/500ms/100ms (about 1 s failover), FastVIPTiming
// 250ms/150ms/30ms (its small slack is only honest with the kernel nftables
// fence, which the agent must check is installed), and DefaultUnitTiming
// 3.5s/1.5s/0.3s for scheduler and controller-manager (the unit's control
// group is SIGKILLed at once, no SIGTERM grace, and must be verified empty
// within ReleaseSlack). The slack budgets: VIPSlack 100+150 ms,
// FencedVIPSlack 40+40 ms (the vip role with the fence, whatever the
// profile; RoleSlack picks), UnitSlack 0.5+1 s. Each assumes what its
// numbers say: the holder's masterd runs its deadline check within
// T_detect, and the release (address deleted, or the unit's processes
// dead) completes within T_release; a holder stalled longer, or a unit
// process stuck in uninterruptible sleep, is outside the bound (the VIP's
// kernel fence covers the stalled daemon for the vip role; nothing does for
// a unit but the component's own --leader-elect).
//
// # Safety argument
//
// Suppose X holds at true instant τ. Its lease start s is the send time of a
// message acknowledged by Q voters, each of which received it after s and
// promised X for LeaseDuration on its clock, i.e. until at least s +
// LeaseDuration/(1+ε) in true time. X stops holding by s +
// RenewDeadline/(1−ε) + T_detect + T_release, which the inequality puts
// before the promises end. So at τ, Q voters are promised to X. If Y also
// held at τ, Q voters would be promised to Y too; two majorities share a
// voter, and a voter is promised to one node at a time — except after a
// restart, when it has forgotten its promises: hence the quiet period
// after every start. A Release ends promises early only after the release
// is verified complete. During a membership change "Q voters" means a
// majority of each voter set of the holder's membership, and the epoch
// rules keep the holders' memberships consecutive, so the two majorities
// still share a voter.
//
// The assumptions, all of them: clock rates within [1−ε, 1+ε]; the
// deadline check late by at most DetectSlack and the release (escalation
// included) done within ReleaseSlack, or the kernel fence armed (then a
// stalled holder is silenced in the kernel at its deadline); memberships
// published by the joint-then-settled rule; fewer than N−Q+1 voters
// without state at once (for unique terms only — the quiet period alone
// keeps one holder); messages authenticated by the cluster key (forged
// messages are out of scope, replayed ones are not). A paused VM whose
// monotonic clock stops is outside the model.
//
// # Restart
//
// Every role starts quiet, with or without persisted state: for max(old,
// new LeaseDuration)·(1+2ε) the node sends nothing binding (no Grant, Ack
// or campaign), since it may have promised before it died — and a master
// whose state directory was wiped, reinstalled or re-imaged may have too.
// A role without state also learns its highest term first: it asks every
// voter (TermQuery) and waits, per voter set c, for more than |c|−Q_c
// answers from voters that have their state (a term needs Q_c grants in c,
// at most one of them its own), or for an answer from every other voter (a
// cluster starting with no state anywhere). It persists the maximum as its
// maxTerm with no vote: it never grants or campaigns for a term it may
// have taken part in, so a term — the fencing token — is never won twice,
// under the assumption that at most N−Q voters are without their state
// (wiped, or newly added, and not yet learned) at any one time. The node
// starts as a follower and its first Ready releases the persisted last
// term. The agent must clear what a previous run left (VIP, leader-only
// units) before Driver.Start. The driver persists state with fsync and
// atomic rename in StateDir/election-state.json and bumps the incarnation
// at every start.
//
// # Release
//
// A Lost change asks the agent to let the role go; Driver runs
// OnStoppedLeading with a context that ends ReleaseSlack after the loss.
// Only a release verified complete within that slack (address gone, unit's
// control group empty) lets the node send Release (Node.Released). A
// failed or overrunning release sends none (Node.ReleaseFailed): the
// promises end by expiry, which the safety inequality covers, while the
// agent escalates (SIGKILL the control group, delete the address again);
// masterd_role_release_failures_total{role,reason} counts it.
//
// # Driver
//
// Memberlist binds and advertises the configured addresses (never the VIP),
// encrypts and authenticates with the keyring (Keys[0] primary, the others
// accepted: rotation), binds Label into every packet (two clusters never
// merge), and re-joins configured peers every RejoinInterval. Node meta
// carries per-role eligibility and a version. Election messages go over the
// encrypted packet channel to the configured voter addresses, not to
// memberlist's alive list; NotifyMsg copies the buffer and never blocks (a
// full inbox is counted as queue_full). If the state cannot be persisted,
// nothing is sent.
//
// # Metrics
//
//	masterd_role_leader{role}                        1 while held
//	masterd_role_term{role}                          fencing token
//	masterd_role_transitions_total{role}             acquisitions and losses
//	masterd_election_quorum{role}                    1 while a majority is heard
//	masterd_cluster_members{state}                   alive, suspect, dead, left
//	masterd_election_messages_total{type,direction}  in, out
//	masterd_election_rejected_messages_total{reason} decode reasons, config_hash,
//	                                                 stale_incarnation, decrypt, label, ...
//	masterd_election_wire_version_mismatch_total{peer,version}
//	                                                 messages of another wire version (version.go)
//	masterd_election_renew_latency_seconds{role}     lease-start age at renewal
//	masterd_election_loop_latency_seconds            timer lateness of the loop
//	masterd_role_release_failures_total{role,reason} releases that failed or overran
//
// # Tests
//
// The simulation (sim_test.go) runs the Node under true time with per-node
// clock rates, loss up to 50%, delays beyond LeaseDuration, duplication,
// reordering, one-way and symmetric partitions, crashes and restarts (holder
// state survives the daemon until start-up cleanup, bounded by the fence or
// ExecStopPost), stalls and power cycles, and checks on true time: never two
// effective holders, one node per term and increasing terms, promise
// exclusivity and the quiet period, maxTerm monotonic, and a stable holder
// after a healed period. It also models the faults of operation: state
// directories lost on restart, memberships rolled host by host (joint,
// settled, final; a removed master retired or left running), releases that
// fail or take exactly their slack, late callbacks, and fence arms sent
// after a stall. operation_test.go replays the holes each rule closes; the
// rules can be switched off one by one (rules) and `make mutants` applies
// the protocol mutations of testdata/mutants.txt, which the suite must
// kill. Profiles: default vip (with and without the fence),
// fast (fenced), the unit roles, and "tight" (lease exactly at the safety
// bound with 1% drift). `go test ./election -sim.runs=N` runs more seeds;
// -sim.seed=S replays one with a trace.
package election
