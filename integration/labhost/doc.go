// Package labhost boots a real systemd as PID 1 of a private lab host, for
// integration tests that need the real thing (units, deploy, the multi-host lab).
//
// # What a lab host is
//
// A lab host is systemd 252 running in its own PID, mount, UTS, IPC and cgroup
// namespaces, inside a network namespace (an existing one named in
// Options.NetNS, or one created under the host's name). Its root is an overlay
// of the machine's / with a private upper directory on a tmpfs, so anything the
// lab writes (units, dpkg -i, journal) disappears with it. Inside it gets a
// fresh /proc (with /proc/sys read-only except /proc/sys/net), a read-only
// /sys, its own cgroup2 tree at /sys/fs/cgroup, a small /dev, and tmpfs on
// /run and /tmp. It boots lab.target (basic.target and nothing else) with the
// machine's timers and enabled services masked, in container mode
// (container=<name>), without CAP_SYS_MODULE and CAP_SYS_TIME. Options.NoMask
// keeps chosen units (e.g. haproxy.service) unmasked.
//
// Never boot systemd on the machine's own root: it would run tmpfiles over the
// real /tmp and start the real host services. This package never does.
//
// # Using it
//
//	h, err := labhost.Boot(ctx, labhost.Options{Name: "unitst-1234-a"})
//	if err != nil { ... }
//	t.Cleanup(func() { h.Close() })
//	if err := h.WaitRunning(ctx); err != nil { ... }
//	out, err := h.Systemctl(ctx, "start", "foo.service")
//
// Exec runs a command in all of the host's namespaces through nsenter;
// DialContext dials from inside the host's network namespace; PrivateSocket
// is a relay to the lab's systemd private socket usable from the test process
// (systemd refuses private-socket clients outside its PID namespace). Path
// maps a path inside the host to a path the test process can open
// (/proc/<pid1>/root/...), which also reaches the lab's /run and /tmp; the
// lab's systemd private socket is Path("/run/systemd/private").
//
// # Cleanup
//
// Close powers the host off (SIGRTMIN+4 to its PID 1, SIGKILL to its whole
// cgroup after a timeout), unmounts its root, removes its cgroup directories
// deepest first and the network namespace if Boot created it. Close is
// idempotent. Boot first removes whatever a crashed earlier run with the same
// name left behind (processes, mounts, cgroups, namespace), so a name should be
// unique to the test run (include the test's PID).
//
// State lives under /run/masterd-lab/<name> (a tmpfs per host) and the cgroup
// /sys/fs/cgroup/unified/masterd-lab-<name> (the machine's cgroup2 mount).
package labhost
