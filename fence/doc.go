// Package fence keeps a node that no longer holds the VIP from answering for
// it, in the kernel, even when masterd itself is dead or stalled.
//
// # The fence
//
// Install creates, in the network namespace New was called in, three
// nftables tables named Config.Table:
//
//	arp    <table>: sets vips4, live4; chain output (hook output, priority 0)
//	       drops ARP whose sender IP is in @vips4 and not in @live4
//	       (the kernel's ARP replies, on every interface).
//	netdev <table>: sets vips4, live4, vips6, live6; chain egress (hook egress
//	       on Config.Interface, priority 0) drops the same ARP and IPv6
//	       neighbour advertisements whose target is in @vips6 and not in
//	       @live6: gratuitous ARP / NA sent from user space through packet
//	       sockets bypass the arp and inet hooks but not egress.
//	inet   <table>: sets vips4, live4, vips6, live6; chains input and output
//	       (priority -300, before conntrack) drop IPv4/IPv6 to or from a VIP
//	       not in its live set on non-loopback interfaces, and neighbour
//	       advertisements for such a VIP.
//
// The live sets have `flags timeout`. ArmUntil(vip, end) puts the VIP in
// every live set with timeout and expiration end - now: the kernel lets the
// VIP's traffic through until then and silences it on its own, whatever
// happens to this process. The holder calls it only on the code path that
// has just validated a lease renewal, with end = lease deadline - margin,
// never from a timer of its own: a stalled holder then goes silent before
// its lease deadline. The margin covers the netlink round trip (about 0.1 ms
// measured) and the kernel's jiffy; 10 ms silenced a SIGKILLed holder
// 10.9-13 ms before its deadline in the tests. Arm(vip, d) is ArmUntil(vip,
// now + d). Disarm removes the element at once (graceful release). Check
// never delays Arm: they use different sockets and locks.
//
// # Refresh: never revive a lapsed element
//
// ArmUntil adds the element, creating it when it is absent: right for the
// first arm of a term, when the VIP's address is not on yet (the agent
// adds it only after that arm), wrong for every later arm. A refresh
// delayed past the element's end (a stall between computing the timeout
// and the send, longer than what was left) would re-create an expired
// element and let the VIP answer after the lease deadline, while another
// master may hold it. RefreshUntil therefore sends, per table, a
// DELSETELEM and a NEWSETELEM in one batch: the kernel does not find an
// expired element (ENOENT), processes the rest of the batch and aborts
// all of it, so the element stays absent, and RefreshUntil returns an
// error wrapping ErrExpired (counted in
// masterd_vip_fence_expired_refreshes_total). ENOENT on a NEWSETELEM
// means a table or set is gone: ErrMissing, as for ArmUntil. Verified on
// kernel 6.18 against an element 50 ms past its end, and with a 150 ms
// stall injected before the send of a refresh of a 60 ms element: the
// element is absent right after (read back and `nft list`). The caller
// must treat ErrExpired as the end of the fence for that term (the agent
// keeps the VIP silent and steps the role down). The read-back's shorter
// re-arm is a refresh too, and an element found gone by a refresh's
// read-back is ErrExpired. Cost (BenchmarkRefresh, 2 loaded cores): the
// batch alone 0.08-0.17 ms median, 1.2-3.2 ms p99, for 0.025-0.05 ms
// median, 0.23-0.65 ms p99 for the in-place add; a whole RefreshUntil
// with its read-back 0.27-0.33 ms on average against 0.22-0.27 ms for
// ArmUntil: far inside the fast profile's 30 ms retry period. (The ~11 ms
// measured once for delete+add does not reproduce here: google/nftables'
// add+delete+add batch takes 0.23 ms too.)
//
// # Read-back
//
// The timeout is relative and the kernel counts it from when it processes
// the message, so a stall between computing it and sending it (SIGSTOP,
// throttling, preemption) pushes the expiry past end by the stall: 298 ms
// past for a 300 ms stall, measured. After every arm (and every repair)
// the element's expiry is read back from the kernel (one GETSETELEM dump
// per table) and compared with end on a clock read after the dump; more
// than ExpirySlack past end, it is re-armed shorter, and deleted when the
// re-arm overshoots too (counted in
// masterd_vip_fence_expiry_corrections_total). The read-back adds about
// 0.15-0.2 ms to an arm (0.12 -> 0.3 ms for IPv4, three tables).
//
// # Expiration, not only timeout
//
// The kernel extends a live element on a re-add only when the update carries
// an expiration or a changed timeout (kernel >= 6.12; a re-add with an
// unchanged timeout keeps the old expiry). github.com/google/nftables sends
// the timeout but not NFTA_SET_ELEM_EXPIRATION, so Arm builds its own
// nfnetlink batch (one NEWSETELEM per table, timeout and expiration equal,
// in milliseconds rounded down) on a lasting netfilter socket. A timeout of
// zero would make the element permanent: durations under a millisecond
// disarm instead.
//
// # Checking
//
// `nft flush ruleset` (Debian's nftables.service does it) removes the fence.
// Check lists the tables, chains, rules and the vips sets and returns an
// error wrapping ErrMissing when anything is gone, counting it in
// masterd_vip_fence_missing_total; Repair reinstalls the tables atomically
// and re-arms each VIP with what remains of its last armed duration (it
// never extends one). Run does both: at once when nftables' netlink change
// notifications (group NFNLGRP_NFTABLES) announce a deletion in the
// fence's tables or an Arm finds them gone (a flush was repaired 3-11 ms
// after `nft flush ruleset` returned, measured), and every
// Config.CheckInterval as a backstop. Between its Events.Missing and
// Events.Repaired nothing fences the VIP: the agent drops the VIP for that
// time rather than hold it unfenced.
//
// # Metrics
//
//	masterd_vip_fence_missing_total      counter, checks that found the fence (partly) missing
//	masterd_vip_fence_repairs_total      counter, successful repairs
//	masterd_vip_fence_arm_duration_seconds histogram, Arm's netlink round trip
//	masterd_vip_fence_expiry_corrections_total counter, arms read back past their end and corrected
//	masterd_vip_fence_expired_refreshes_total counter, refreshes refused: the element had expired (not revived)
package fence
