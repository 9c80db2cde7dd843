// Package agent is masterd's daemon: it loads and validates masterd.yaml, builds
// the node's components (pki, the embedded etcd member, the kube units, the
// elections, the VIP and its balancer), starts them in order, serves the HTTP
// endpoints and talks to systemd. It is the only package that knows all the
// others; they report to it through the small interfaces declared here
// (Component, Checker, StatusReporter) and through callbacks it passes in.
//
// # Configuration
//
// Config is the schema of /etc/masterd/masterd.yaml. DecodeConfig is strict: an
// unknown key, a wrong type or an unparsable address is an error naming its key
// path and line (`peers[2].address: "10.0.0.300" is not an IP address (line 9)`).
// Validate then checks the semantics — unique peers, this node among them,
// ports, and every role's lease timings against DESIGN.md's safety inequality
//
//	leaseDuration ≥ renewDeadline·(1+ε)/(1−ε) + (1+ε)·(T_detect + T_release)
//
// with ε = election.clockDriftPPM. All problems are reported at once; `masterd
// run --check` prints them and exits 2.
//
// # Lifecycle
//
// Run starts the components in the order given (pki → etcd → kube-apiserver →
// elections → VIP), each Start returning once the component is ready for the
// next. Then it sends READY=1 to systemd, pings the watchdog at half of
// WatchdogSec while the liveness check passes, and keeps a STATUS= line current.
// On SIGTERM (context cancelled) it sends STOPPING=1 and stops the started
// components in reverse order within a deadline: the elections hand every held
// role to another master before the VIP and units go.
//
// # Endpoints
//
// On metrics.listen: /metrics (one registry for the whole process, Go and
// process collectors, masterd_build_info), /healthz (the process is alive and
// not a stale leader), /readyz (every component check; the body lists the
// failing ones), /status (JSON for `masterd status`), and with metrics.pprof
// (off by default, loopback addresses only) Go's /debug/pprof/.
package agent
