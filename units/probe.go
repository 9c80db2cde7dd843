package units

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

// Probe tells whether a started unit's component is healthy. Check is called
// repeatedly, never concurrently for one unit, with a context bounded by
// Config.ProbeTimeout; it must return promptly when it is done.
type Probe interface {
	Check(ctx context.Context) error
}

// ProbeFunc adapts a function to Probe.
type ProbeFunc func(ctx context.Context) error

// Check calls f.
func (f ProbeFunc) Check(ctx context.Context) error { return f(ctx) }

// HTTPProbe is healthy when a GET of URL answers 200.
type HTTPProbe struct {
	// URL, e.g. https://10.0.0.1:6443/readyz or https://127.0.0.1:10259/healthz.
	URL string
	// CAFile verifies the server (the cluster CA for kube-apiserver). Empty
	// for https: the certificate is not verified — scheduler and
	// controller-manager serve a self-signed one and /healthz carries no
	// secret.
	CAFile string
	// ServerName overrides the name verified in the certificate.
	ServerName string
	// DialContext replaces the dialer (tests dial into a lab's namespace).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	client *http.Client
}

// NewHTTPProbe builds an HTTPProbe, reading the CA file once.
func NewHTTPProbe(p HTTPProbe) (*HTTPProbe, error) {
	tc := &tls.Config{ServerName: p.ServerName, MinVersion: tls.VersionTLS12}
	if p.CAFile != "" {
		pem, err := os.ReadFile(p.CAFile)
		if err != nil {
			return nil, fmt.Errorf("units: probe %s: read ca: %w", p.URL, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("units: probe %s: no certificate in %s", p.URL, p.CAFile)
		}
		tc.RootCAs = pool
	} else {
		tc.InsecureSkipVerify = true
	}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true, ResponseHeaderTimeout: 10 * time.Second}
	if p.DialContext != nil {
		tr.DialContext = p.DialContext
	}
	p.client = &http.Client{Transport: tr}
	return &p, nil
}

// Check performs one GET.
func (p *HTTPProbe) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", p.URL, resp.Status, body)
	}
	return nil
}
