package lb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// checker probes one backend's readiness endpoint. Each check uses a fresh
// TLS connection (keep-alives off): a check must prove that a new client
// connection would work, which an old pooled connection does not.
type checker struct {
	url    string
	client *http.Client
}

// healthTLS builds the TLS client configuration shared by all checkers.
func healthTLS(h HealthCheck) (*tls.Config, error) {
	pool := h.CA
	if pool == nil {
		pem, err := os.ReadFile(h.CAFile)
		if err != nil {
			return nil, fmt.Errorf("lb: read health check ca: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("lb: read health check ca %s: no PEM certificates", h.CAFile)
		}
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	switch {
	case h.ClientCert != nil:
		cfg.Certificates = []tls.Certificate{*h.ClientCert}
	case h.CertFile != "":
		cert, err := tls.LoadX509KeyPair(h.CertFile, h.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("lb: load health check client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func newChecker(b Backend, h HealthCheck, base *tls.Config) *checker {
	tc := base.Clone()
	tc.ServerName = h.ServerName
	if tc.ServerName == "" {
		tc.ServerName = b.Address.Addr().Unmap().WithZone("").String()
	}
	addr := b.Address.String()
	tr := &http.Transport{
		// Always the configured address, whatever the URL says, and never
		// a proxy from the environment.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			// net/http lets a dial outlive the request that started it
			// (to pool the connection): without its own timeout, a dial to
			// a dead master hangs for the kernel's SYN retries, one more
			// per probe.
			d := net.Dialer{Timeout: h.Timeout}
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig:        tc,
		DisableKeepAlives:      true,
		TLSHandshakeTimeout:    h.Timeout,
		ForceAttemptHTTP2:      false,
		MaxResponseHeaderBytes: 16 << 10,
	}
	return &checker{
		url:    "https://" + addr + h.Path,
		client: &http.Client{Transport: tr, Timeout: h.Timeout},
	}
}

// check runs one probe; nil means ready.
func (c *checker) check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// healthState is the rise/fall counter of one backend. Not safe for
// concurrent use; only the backend's health loop touches it.
type healthState struct {
	up      bool
	checked bool // at least one check has completed
	streak  int  // consecutive results contradicting up
}

// observe feeds one check result and reports whether the up state changed.
// A backend starts down and its very first success marks it up.
func (s *healthState) observe(ok bool, rise, fall int) (changed bool) {
	first := !s.checked
	s.checked = true
	if ok == s.up {
		s.streak = 0
		return false
	}
	s.streak++
	need := fall
	if !s.up {
		need = rise
		if first {
			need = 1
		}
	}
	if s.streak < need {
		return false
	}
	s.up = ok
	s.streak = 0
	return true
}

// markDown takes the backend down at once, as after a failed connect, and
// reports whether it was up. It comes back after Rise passing checks.
func (s *healthState) markDown() bool {
	if !s.up {
		return false
	}
	s.up, s.streak = false, 0
	return true
}

// Reasons a backend is marked down between checks, the "reason" label of
// masterd_lb_marked_down_total.
const (
	// reasonConnect: a connect to it failed (passive check).
	reasonConnect = "connect"
	// reasonDead: the agent reported its master dead (MarkDown).
	reasonDead = "dead"
)

// MarkDown takes backend name out of rotation at once, before MarkDown
// returns: no connection is dialled to it from then on, until Rise health
// checks started after this call have passed (a check already running
// does not count). The agent calls it the moment the election hears that
// the backend's master died or was cut off (its heartbeats stopped, its
// gossip state went dead), so no client of the VIP waits out a dial to a
// dead master. why says what was seen (logged and in Status). It reports
// whether name is a backend of this balancer.
func (lb *Balancer) MarkDown(name, why string) bool {
	for _, b := range lb.list() {
		if b.cfg.Name == name {
			lb.markDown(b, reasonDead, errors.New(why))
			return true
		}
	}
	return false
}

// markDown takes b down now and voids the checks running meanwhile.
func (lb *Balancer) markDown(b *backend, reason string, err error) {
	now := time.Now()
	b.mu.Lock()
	b.marks++
	changed := b.health.markDown()
	b.up.Store(false)
	b.lastErr = err.Error()
	if changed {
		b.lastChange = now
	}
	b.mu.Unlock()
	lb.m.marked.WithLabelValues(b.cfg.Name, reason).Inc()
	if changed {
		b.mUp.Set(0)
		lb.log.Info("backend down", "backend", b.cfg.Name, "address", b.cfg.Address.String(), "reason", reason, "error", err.Error())
	}
}

// healthLoop checks b every Interval until ctx ends.
func (lb *Balancer) healthLoop(ctx context.Context, b *backend) {
	h := lb.cfg.HealthCheck
	t := time.NewTimer(0) // first check at once
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		marks := b.marks
		b.mu.Unlock()
		start := time.Now()
		err := b.checker.check(ctx)
		d := time.Since(start)
		if ctx.Err() != nil {
			return
		}
		result := "success"
		if err != nil {
			result = "failure"
		}
		lb.m.checkDur.WithLabelValues(b.cfg.Name, result).Observe(d.Seconds())
		up, counted := lb.record(b, marks, start, err)
		if lb.onCheck != nil && counted {
			lb.onCheck(b.cfg.Name, err == nil, up)
		}
		next := h.Interval - time.Since(start)
		if next < 0 {
			next = 0
		}
		t.Reset(next)
	}
}

// record feeds one check result, started when b had seen marks mark-downs,
// into b's rise/fall state and, when its up state changed, sets the metric
// and logs the change. A result of a check that a mark-down overtook is
// dropped (counted false): it may predate the master's death.
func (lb *Balancer) record(b *backend, marks uint64, at time.Time, err error) (up, counted bool) {
	h := lb.cfg.HealthCheck
	b.mu.Lock()
	if b.marks != marks {
		up = b.health.up
		b.mu.Unlock()
		return up, false
	}
	changed := b.health.observe(err == nil, h.Rise, h.Fall)
	up = b.health.up
	b.up.Store(up)
	b.lastCheck = at
	b.lastErr = errString(err)
	if changed {
		b.lastChange = at
	}
	b.mu.Unlock()
	if !changed {
		return up, true
	}
	if up {
		b.mUp.Set(1)
		lb.log.Info("backend up", "backend", b.cfg.Name, "address", b.cfg.Address.String())
	} else {
		b.mUp.Set(0)
		lb.log.Info("backend down", "backend", b.cfg.Name, "address", b.cfg.Address.String(), "error", errString(err))
	}
	return up, true
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
