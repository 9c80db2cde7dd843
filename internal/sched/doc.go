// Package sched makes the CPU priority masterd's unit asks for take effect.
//
// masterd.service sets Nice=-10 so that a busy master (a compile, a batch
// job, stress-ng) does not delay the election loop past a renew deadline: a
// stalled loop is a false failover. On kernels with autogroup scheduling
// (CONFIG_SCHED_AUTOGROUP, on in Debian's and most distributions' kernels,
// kernel.sched_autogroup_enabled=1) that nice value alone does little:
// every session (setsid) is its own scheduling group, systemd starts each
// service in a session of its own, and CFS first shares the CPU between the
// groups, equally, and only then between the threads of one group by their
// nice value. A neighbour's session running four busy threads gets as much
// CPU as masterd's whole session.
//
// MatchAutogroup therefore gives the process's autogroup the process's own
// nice value (writing /proc/self/autogroup, see sched(7)). It does nothing
// when the nice value is not negative, when autogroup scheduling is off or
// absent, or when the process runs in a cpu cgroup other than the root one
// (cgroup v2 with the cpu controller: there the unit's CPUWeight= ranks
// masterd and the kernel ignores autogroups). Lowering a group's nice value
// needs CAP_SYS_NICE or an RLIMIT_NICE that allows it; the unit grants the
// capability (LimitNICE= needs a systemd with CAP_SYS_RESOURCE, which
// containers often lack).
package sched
