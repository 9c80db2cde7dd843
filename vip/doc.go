// Package vip holds the floating API address of a masterd cluster on this
// machine: it adds and removes the address through netlink, announces a move
// with gratuitous ARP (IPv4) or unsolicited neighbour advertisements (IPv6),
// puts the address back when something else removes it while this node holds
// it, and reports other hosts answering for it.
//
// # Ownership
//
// The package does not decide who holds the VIP: the agent calls Acquire when
// this node starts leading the `vip` role and Release when it stops (on every
// exit path, before the role's lease deadline). Refresh is called on each
// validated lease renewal and extends the address's valid lifetime; the kernel
// deletes an address whose lifetime ran out, which bounds how long a hung or
// crashed holder keeps the VIP (a backstop with about one second of
// granularity for IPv4, not the fence: see package fence). Cleanup runs once
// at start-up, before the election, and removes a VIP left behind by a crashed
// run from every interface.
//
// # Addresses
//
// IPv4 VIPs are added as /32, IPv6 VIPs as /128 with preferred lifetime 0
// (deprecated, so the kernel never picks the VIP as a source address) and
// IFA_F_NODAD (usable at once, no duplicate address detection delay). The
// interface is Config.Interface, or when empty the interface holding the
// most specific other prefix that contains the VIP (ResolveInterface: the
// one rule, also for the fence the agent hooks on Manager.Interface).
//
// # Announcements
//
// Announcing is an Announcer's job (Config.Announcer; Announce on a move or
// Reannounce, Refresh on a kernel refresh, Stop on release), so another VIP
// mode (a route advertisement) is one new type. The default,
// NewNeighbourAnnouncer, works as follows.
//
// Acquire sends the first announcement before it returns and repeats it in
// the background at the offsets of Config.Announce (by default 0, 0.1, 0.5,
// 1.2 and 2.5 s after the move). Linux clients ignore a gratuitous ARP that
// arrives within the neighbour locktime (1 s) of the entry's last update, so
// the schedule must reach past one second. IPv4 sends an ARP request and an
// ARP reply, both broadcast, with sender and target IP the VIP; IPv6 sends a
// neighbour advertisement to ff02::1 with the override flag and the target
// link-layer address option. Frames go out through an AF_PACKET socket.
// Reannounce repeats the schedule (after a partition heals, or after the
// fence re-arms). With the kernel fence (package fence) installed, frames
// for a VIP that is not armed are dropped at egress and the send fails
// with ENOBUFS (logged): arm the fence before Acquire.
//
// # Watching
//
// Run (one goroutine, until its context ends) subscribes to netlink address
// updates. When the VIP disappears while held (systemd-networkd or
// NetworkManager reconfiguring the interface) it is added again and announced
// (masterd_vip_removed_externally_total). An address whose valid lifetime ran
// out because Refresh was not called is not put back: that is the backstop
// working, the manager then reports Owned() == false.
// While holding, Run also watches ARP (or neighbour advertisements) on the
// interface and probes for the VIP every Config.ConflictProbeInterval with an
// ARP probe (sender 0.0.0.0) or a DAD-style neighbour solicitation; another
// MAC answering for the VIP is a duplicate holder: it is counted in
// masterd_vip_conflicts_total and logged with the other MAC, at most one
// line per other MAC every 10 s and lines for at most 8 MACs per 10 s in all
// (anyone on the LAN can send claims from made-up MACs); the lines not
// written are counted in masterd_vip_conflict_logs_suppressed_total. The
// manager does not act on a conflict: the quorum lease decides who holds the
// VIP.
//
// # Network namespace
//
// New binds the manager to the network namespace of the calling OS thread:
// its sockets are opened there, without setns(2) (masterd has no
// CAP_SYS_ADMIN). Tests create a manager inside a test namespace by calling
// New from a thread locked into it; Run's address subscription enters that
// namespace only when called from a thread in another one (package
// internal/ownns).
//
// # Metrics
//
//	masterd_vip_owned                          gauge, 1 while this node holds the VIP
//	masterd_garp_sent_total                    counter, announcement frames sent
//	masterd_vip_acquire_duration_seconds       histogram, Acquire's netlink add and first announcement
//	masterd_vip_removed_externally_total       counter, held VIP removed by someone else and put back
//	masterd_vip_conflicts_total                counter, another MAC answered for the held VIP
//	masterd_vip_conflict_logs_suppressed_total counter, conflict log lines the rate limit dropped
package vip
