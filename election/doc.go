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
// Release. Each carries sender, receiver, the sender's incarnation (grows at
// every start; older incarnations are dropped), role, term and a hash of
// (voter set, role timing): a node drops messages whose hash differs, so a
// half-rolled configuration change never builds two quorums that do not
// intersect. The wire format (message.go) is versioned, length-checked and
// bounded by MaxMessageSize; Decode rejects malformed input with a reason.
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
// after a lease of continuous ill health, and a leader hands over to a live
// peer strictly better by (health, priority) — never by name alone — once
// that has held for a lease. Voters never drop a promise because a better
// candidate asks.
//
// # Timing model
//
// Every duration is measured on the local monotonic clock of the node that
// applies it; no clock is compared with another. Clock rates are assumed to
// lie within [1−ε, 1+ε] of true time (Config.Drift, DefaultDrift = 1000
// ppm); clock offsets do not matter. T_detect (Timing.DetectSlack) bounds how
// late the deadline check may run and T_release (Timing.ReleaseSlack) how
// long releasing takes. Timing.Validate enforces LeaseDuration >
// RenewDeadline > RetryPeriod and the safety inequality
//
//	LeaseDuration ≥ RenewDeadline·(1+ε)/(1−ε) + (1+ε)·(T_detect + T_release)
//
// RetryPeriod affects only liveness: RenewDeadline ≥ (k+1)·RetryPeriod + RTT
// tolerates k lost rounds.
//
// Profiles: DefaultVIPTiming 800ms/500ms/100ms (about 1 s failover),
// FastVIPTiming 250ms/150ms/30ms (its small slack is only honest with the
// kernel nftables fence, which the agent must check is installed), and
// DefaultUnitTiming 15s/10s/2s for scheduler and controller-manager (the
// unit's control group must be killed within ReleaseSlack).
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
// restart, when it has forgotten its promises: hence the quiet period. A
// Release ends promises early only after the release is complete.
//
// # Restart
//
// A role with persisted state starts quiet: for max(old, new
// LeaseDuration)·(1+2ε) the node sends nothing binding (no Grant, Ack or
// campaign), since it may have promised before it died. It starts as a
// follower and its first Ready releases the persisted last term. The agent
// must clear what a previous run left (VIP, leader-only units) before
// Driver.Start. The driver persists state with fsync and atomic rename in
// StateDir/election-state.json and bumps the incarnation at every start.
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
//	masterd_election_renew_latency_seconds{role}     lease-start age at renewal
//	masterd_election_loop_latency_seconds            timer lateness of the loop
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
// after a healed period. Profiles: default vip (with and without the fence),
// fast (fenced), the unit roles, and "tight" (lease exactly at the safety
// bound with 1% drift). `go test ./election -sim.runs=N` runs more seeds;
// -sim.seed=S replays one with a trace.
package election
