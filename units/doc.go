// Package units runs the Kubernetes control-plane components as systemd
// units: kube-apiserver on every master, kube-scheduler and
// kube-controller-manager only where this node leads their role.
//
// # Talking to systemd
//
// A Supervisor talks to PID 1 over its private socket (/run/systemd/private,
// root only) with github.com/coreos/go-systemd/v22/dbus: no dbus-daemon in
// the path. The connection is opened lazily and re-opened when it dies
// (systemctl daemon-reexec closes it, so does a systemd restart); a call that
// fails because the connection died is retried on the new one. Unit state is
// followed through PropertiesChanged signals plus a periodic re-read
// (Config.ResyncInterval) that also covers signals lost across reconnections.
//
// # Start, Stop, Restart
//
// Start is done when the unit is active/running AND its Probe passes (a job
// result of "done" only means systemd forked the process). It fails early
// when the process exits during the start — the error quotes the unit's
// journal, which is how a flag the component rejects reaches the operator —
// and after Config.StartTimeout otherwise.
//
// A Stop overtakes a Start of the same unit that is still waiting for health
// (a role lost while its unit starts): the Start returns an error at once.
// Healthy runs one check (active + probe) for the agent's eligibility.
//
// Stop of kube-apiserver (a unit that is not leader-only) sends the stop
// job (SIGTERM to the unit's cgroup), waits Config.StopGrace, then
// SIGKILLs every process of the unit's cgroup (KillUnit who=all) and waits
// Config.KillWait for systemd to report it inactive. Stop of a leader-only
// unit gives no grace: it submits the stop job (with a stop job queued
// systemd does not act on Restart= when the main process dies) and at once
// writes "1" to the unit's cgroup.kill, which SIGKILLs every process of
// the group and its sub-groups in one step, whatever the unit's KillMode
// (systemd's KillUnit where the hierarchy has no cgroup.kill: cgroup v1,
// kernels before 5.14); then it waits up to Config.LeaderKillWait for the
// group to be empty (reading cgroup.procs, no D-Bus call) and for systemd
// to report the unit inactive. Either way Stop ends with reset-failed, so
// the unit shows inactive and its next start owes nothing to the kill. It
// never waits systemd's default 90 s, whatever the unit file says, so the
// election can bound a role move.
//
// Kill is the escalation of a Stop that failed or ran out of time: the
// same kill as a leader-only Stop, but it waits up to Config.KillWait, or
// until its context ends, only for the cgroup to be empty, and it does not
// wait for a Stop in progress on the same unit, which may be stuck on a
// systemd that does not answer; when systemd cannot be reached it kills
// the group at systemd's usual path for the unit (system.slice/<name>).
// Processes lists the PIDs in a unit's cgroup and its sub-groups from
// cgroup.procs: unlike the unit's state it also sees processes that an
// installed unit with KillMode=process or none leaves behind, so a caller can
// verify that a stopped unit is really gone.
//
// # Stop budget
//
// A leader-only Stop must fit its role's 1 s release slack
// (election.UnitSlack.Release). The agent (agent/kube.go) sets a kill wait
// of 0.5 s (the package default too), leaving 0.5 s for the D-Bus round
// trips around it (ControlGroup read, stop job, reset-failed) and the
// release's read-back of the cgroup with Processes. When that release
// fails it calls Kill under a deadline of its own (kill wait + 1 s) and
// verifies the cgroup is empty again, even after the lease is left to
// expire.
//
// # Managed and existing units
//
// Managed mode (Unit.Definition set, the default for masterd) writes the unit
// as a runtime unit file under /run/systemd/system and an environment file
// with MASTERD_TERM under /run/masterd/units before each start. Runtime files
// rather than transient units, because: `systemctl status/cat` and the
// journal keep showing the same unit name between starts; the unit survives
// masterd crashing, so masterd.service's ExecStopPost= and the next start-up
// can still stop it by name; systemd keeps it across daemon-reload/reexec; and
// /run is empty after a reboot, so no stale definition outlives masterd. The
// unit file is rewritten (and systemd reloaded) only when its text changes;
// the term changes through the environment file without a reload. Units get
// Restart=always, StartLimitIntervalSec=0, KillMode=control-group and a short
// TimeoutStopSec so that even a manual `systemctl stop` is bounded.
// APIServer, Scheduler and ControllerManager build the command lines from
// KubeConfig; extra args override generated flags of the same name.
//
// Existing-units mode (Definition nil): the operator's installed units are
// only started, stopped and watched; they get no MASTERD_TERM.
//
// # Testing against a lab host
//
// systemd refuses private-socket clients whose PID it cannot see, so a test
// outside a lab host's PID namespace connects through the lab's relay:
// Config.Socket = labhost.PrivateSocketInLab with WithRoot("/proc/<pid1>/root")
// (unit files and the journal are reached through the same root).
//
// # Metrics
//
//	masterd_unit_active{unit}                   1 while ActiveState=active
//	masterd_unit_restarts_total{unit}           automatic restarts (NRestarts)
//	masterd_unit_failures_total{unit}           exits masterd did not ask for
//	masterd_unit_start_duration_seconds{unit}   start request to healthy
//	masterd_unit_stop_duration_seconds{unit}    stop request to inactive
//	masterd_unit_systemd_reconnects_total       connections after the first
package units
