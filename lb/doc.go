// Package lb is masterd's built-in TCP balancer for the Kubernetes API: the
// haproxy/nginx layer of the classic HA recipes. Whoever holds the VIP
// balances the connections arriving on VIP:6443 over every master whose
// kube-apiserver is ready. TLS passes through untouched: the balancer never
// sees keys or plaintext, clients verify the apiserver's certificate (which
// must carry the VIP as a SAN) end to end.
//
// # Why a package of its own
//
// vip decides who answers for an address; lb decides where the bytes that
// arrive on it go. They share nothing but the address: the balancer runs on
// every master all the time, bound to the VIP with IP_FREEBIND before this
// node holds it (see below), and needs no callback from vip. Kept apart, the
// agent can run either without the other — an external load balancer (cloud
// LB, F5) means neither is constructed.
//
// # Listening before the VIP arrives
//
// New binds Config.Listen with IP_FREEBIND (IPV6_FREEBIND), which lets a
// socket bind an address no interface holds. When vip adds the VIP, the
// kernel delivers connections to the already-open listener: a failover costs
// no listener start, and a master that does not hold the VIP simply receives
// nothing. No sysctl (net.ipv4.ip_nonlocal_bind) is needed.
//
// # Choosing a backend: least connections
//
// A new connection goes to the ready backend with the fewest active
// connections; ties rotate round-robin. Least connections rather than power
// of two choices because the balancer is one process with exact, current
// counts over three to five backends: scanning all of them costs nothing,
// and the exact minimum is what long-lived watch connections need (their
// number, not their rate, is what loads an apiserver; a random pair can
// leave one apiserver with a lasting surplus of watches). Power of two
// choices earns its place when counts are stale or backends many, neither of
// which holds here.
//
// # Readiness
//
// Each backend gets an HTTPS GET of HealthCheck.Path (/readyz) every
// Interval on a fresh TLS connection verified against the cluster CA. Fall
// consecutive failures take an up backend out of rotation; Rise consecutive
// successes put it back; a fresh backend's first success marks it up. A
// backend that goes down gets no new connections; its existing connections
// are left alone to finish (kube-apiserver drains them itself on shutdown).
// If no backend is up, a client connection is closed at once.
//
// A failed dial (refused, timed out after DialTimeout, 500 ms by default) is
// retried on the next-best ready backend, each backend at most once per client
// connection, and marks the failed backend down at once (a passive check, as
// haproxy's "observe layer4" with on-error mark-down): after a master crashes
// or is cut off, the new VIP holder's clients pay one short dial timeout, not
// one per connection until Fall active checks have failed. The backend comes
// back after Rise passing checks.
//
// Faster still, the agent tells every master's balancer when the election
// hears a master die (its heartbeats or acknowledgements stopped for three
// retry periods — 0.3 s with the default VIP timings, before its lease
// lapses — or gossip lists it dead): MarkDown takes its backend out of
// rotation before it returns, so no client of the new VIP holder waits out
// a dial to the dead master. A mark-down (MarkDown or a failed connect)
// voids the checks running at that moment: the backend comes back only
// after Rise checks started after it have passed.
//
// # Connection caps
//
// The balancer runs inside masterd's process, so connections are capped:
// MaxConns in all (20,000 by default) and MaxConnsPerSource from one source
// address (1,000). A connection past a cap is reset as soon as it is
// accepted, before any goroutine or dial is spent on it, and counted; the
// log says so at most once per reason every 10 s, with the number it left
// out. Other clients are served as before.
//
// # The copy path
//
// Each direction is an io.Copy between two *net.TCPConn, which Go turns into
// splice(2) on Linux: bytes go socket→pipe→socket inside the kernel. The
// copy runs in rounds of at most ChunkSize bytes only so the byte counters
// move during long streams.
//
// There is no idle timeout: a watch may stay silent for many minutes, and
// nothing here ever cuts it for being quiet. Dead peers are found by TCP
// keepalive (KeepAlive, KeepAliveCount) on both legs, which a live peer's
// kernel answers even when the application is idle, and TCP_USER_TIMEOUT
// with the same bound, for a peer that vanishes while data is in flight
// (keepalive does not run then, and Linux would retransmit for about 15
// minutes). A clean EOF in one
// direction is propagated as a half-close (shutdown(SHUT_WR)) to the other
// side and the other direction keeps flowing; an error (reset, keepalive or
// user timeout) in either direction resets both connections (SO_LINGER 0),
// so a client whose backend died mid-stream sees an error promptly instead
// of hanging or mistaking the cut for a clean end. A backend process that
// dies is closed by its kernel with a FIN (or a RST if data was unread), and
// that is what the client sees.
//
// # API
//
//	b, err := lb.New(cfg, registry, logger) // validates, binds with freebind
//	go b.Run(ctx)                           // health checks + proxying
//	b.Status()                              // for `masterd status`
//	b.MarkDown(name, why)                   // the election reports the master dead
//	b.Close()                               // listener and connections closed
//
// # Metrics
//
//	masterd_lb_backend_up{backend}                          1 if ready, else 0
//	masterd_lb_connections_active{backend}                  proxied now
//	masterd_lb_connections_total{backend,result}            result: ok, dial_error, no_backend (backend="none")
//	masterd_lb_bytes_total{backend,direction}               direction: to_backend, to_client
//	masterd_lb_health_check_duration_seconds{backend,result} result: success, failure
//	masterd_lb_marked_down_total{backend,reason}            reason: connect (failed dial), dead (MarkDown)
//	masterd_lb_connections_rejected_total{reason}           reason: global, per_source (a cap reached)
package lb
