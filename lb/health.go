package lb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
			var d net.Dialer
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

// healthLoop checks b every Interval until ctx ends.
func (lb *Balancer) healthLoop(ctx context.Context, b *backend) {
	h := lb.cfg.HealthCheck
	var st healthState
	t := time.NewTimer(0) // first check at once
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-b.dialFailed:
			// A backend that refuses or does not answer a connect is down
			// now: a crashed or cut-off master would otherwise get new
			// connections (each waiting DialTimeout first) until Fall
			// checks failed. It comes back after Rise passing checks.
			if st.markDown() {
				lb.record(b, time.Now(), fmt.Errorf("connect failed: %w", err), false, true)
			}
			continue
		case <-t.C:
		}
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
		changed := st.observe(err == nil, h.Rise, h.Fall)
		lb.record(b, start, err, st.up, changed)
		if lb.onCheck != nil {
			lb.onCheck(b.cfg.Name, err == nil, st.up)
		}
		next := h.Interval - time.Since(start)
		if next < 0 {
			next = 0
		}
		t.Reset(next)
	}
}

// record stores a result (a check's, or a failed connect's) on b and, when
// its up state changed, sets the metric and logs the change.
func (lb *Balancer) record(b *backend, at time.Time, err error, up, changed bool) {
	b.recordCheck(at, err, up, changed)
	if !changed {
		return
	}
	if up {
		b.mUp.Set(1)
		lb.log.Info("backend up", "backend", b.cfg.Name, "address", b.cfg.Address.String())
		return
	}
	b.mUp.Set(0)
	lb.log.Info("backend down", "backend", b.cfg.Name, "address", b.cfg.Address.String(), "error", errString(err))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
