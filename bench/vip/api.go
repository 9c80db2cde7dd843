package vip

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/masterd/masterd/bench/report"
	"github.com/masterd/masterd/bootstrap"
	"github.com/masterd/masterd/internal/netnsdo"
	"github.com/vishvananda/netns"
)

// apiClient makes Kubernetes API requests from the client namespace as the
// lab's admin, each on a new TCP connection (no keep-alive): a request
// started after a fault says whether a new client is served, not whether
// an old connection survived.
type apiClient struct {
	http   *http.Client
	server string // https://VIP:6443
	seq    atomic.Int64
}

// apiAttemptEvery is how often a new API attempt starts while the probe
// waits; apiAttemptTimeout bounds each attempt (connect, TLS, request).
const (
	apiAttemptEvery   = 100 * time.Millisecond
	apiAttemptTimeout = 3 * time.Second
)

// newAPIClient reads the admin kubeconfig (server, CA and client
// certificate embedded, as masterd writes admin.conf). The apiserver's
// certificate is checked for the name "kubernetes", which every master's
// certificate carries: with vip.enabled false (the keepalived systems)
// masterd issues it without the VIP, as a classic stack would until its
// admin adds the VIP to the SANs.
func newAPIClient(kubeconfig, clientNS string) (*apiClient, error) {
	cr, err := bootstrap.LoadKubeconfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("vip bench: api client: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cr.CAPEM) {
		return nil, fmt.Errorf("vip bench: api client: %s: no CA certificate", kubeconfig)
	}
	ns, err := netns.GetFromName(clientNS)
	if err != nil {
		return nil, fmt.Errorf("vip bench: api client: netns %s: %w", clientNS, err)
	}
	tr := &http.Transport{
		DialContext:       dialIn(ns),
		TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cr.Cert}, ServerName: "kubernetes"},
		DisableKeepAlives: true,
		ForceAttemptHTTP2: false,
	}
	return &apiClient{http: &http.Client{Transport: tr}, server: cr.Server}, nil
}

// dialIn dials from inside the network namespace ns (a socket stays in
// the namespace it was created in).
func dialIn(ns netns.NsHandle) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		derr := netnsdo.Do(ns, func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return nil
		})
		return c, errors.Join(derr, err)
	}
}

// do makes one request to server (the VIP's URL when server is "") and
// returns the status and up to 4 MiB of the body (a list of pods is
// tens of KiB; a cut body would not decode).
func (c *apiClient) do(ctx context.Context, server, method, path, contentType string, body []byte) (int, []byte, error) {
	if server == "" {
		server = c.server
	}
	ctx, cancel := context.WithTimeout(ctx, apiAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, server+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b, nil
}

// readyz is one GET /readyz; ok only for 200 "ok".
func (c *apiClient) readyz(ctx context.Context, server string) error {
	code, body, err := c.do(ctx, server, http.MethodGet, "/readyz", "", nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK || string(bytes.TrimSpace(body)) != "ok" {
		return fmt.Errorf("readyz: %d %s", code, short(body))
	}
	return nil
}

// writeConfigMap is the probe's write: a merge patch of one key of the
// ConfigMap apiWriteName (a write that goes through etcd's quorum).
func (c *apiClient) writeConfigMap(ctx context.Context) error {
	n := c.seq.Add(1)
	patch := []byte(`{"data":{"n":"` + strconv.FormatInt(n, 10) + `"}}`)
	code, body, err := c.do(ctx, "", http.MethodPatch, "/api/v1/namespaces/default/configmaps/"+apiWriteName, "application/merge-patch+json", patch)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("write: %d %s", code, short(body))
	}
	return nil
}

// apiWriteName is the ConfigMap the write probe patches.
const apiWriteName = "masterd-bench-write"

// ensureWriteTarget creates the ConfigMap the write probe patches.
func (c *apiClient) ensureWriteTarget(ctx context.Context) error {
	body := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"` + apiWriteName + `"},"data":{"n":"0"}}`)
	code, out, err := c.do(ctx, "", http.MethodPost, "/api/v1/namespaces/default/configmaps", "application/json", body)
	if err != nil {
		return fmt.Errorf("vip bench: create configmap %s: %w", apiWriteName, err)
	}
	if code != http.StatusCreated && code != http.StatusConflict {
		return fmt.Errorf("vip bench: create configmap %s: %d %s", apiWriteName, code, short(out))
	}
	return nil
}

func short(b []byte) string { return truncate(string(bytes.TrimSpace(b)), 160) }

// truncate cuts s to n bytes, never inside a rune, and marks the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// firstSuccess starts attempt every apiAttemptEvery from now until one
// succeeds or ctx ends, several in flight at once, and returns the time
// from t0 to the end of the first successful attempt (-1 when none
// succeeded). A wait longer than slowAPI is explained through progress:
// the failed attempts' start, length and error.
func (b *bench) firstSuccess(ctx context.Context, t0 time.Time, what string, attempt func(context.Context) error) time.Duration {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan attemptResult, 64)
	inflight := 0
	tick := time.NewTicker(apiAttemptEvery)
	defer tick.Stop()
	var failed []string
	launch := func() {
		inflight++
		go func() {
			start := time.Now()
			err := attempt(ctx)
			results <- attemptResult{start, time.Now(), err}
		}()
	}
	launch()
	for {
		select {
		case r := <-results:
			inflight--
			if r.err == nil {
				d := r.end.Sub(t0)
				if d > slowAPI && b.progress != nil {
					b.progress("slow %s (%v): ok for the attempt started at +%v; failed: %v", what, d.Round(time.Millisecond), r.start.Sub(t0).Round(time.Millisecond), failed)
				}
				return d
			}
			if ctx.Err() == nil && len(failed) < 12 {
				failed = append(failed, r.describe(t0))
			}
		case <-tick.C:
			if inflight < 64 {
				launch()
			}
		case <-ctx.Done():
			for ; inflight > 0; inflight-- {
				<-results
			}
			return -1
		}
	}
}

// apiProbeWindow is how long after the fault serveProbe keeps starting
// attempts: past a classic balancer's fall (3 failed checks 1 s apart) and
// its connect timeout, so a backend still thought up shows.
const apiProbeWindow = 6 * time.Second

// promptLatency: an attempt that took longer counts against servedFrom
// like a failed one (a lost SYN costs Linux's 1 s initial retransmission
// timeout; a classic balancer's dial of a dead backend its connect
// timeout).
const promptLatency = time.Second

// attemptResult is one API attempt of firstSuccess or serveProbe.
type attemptResult struct {
	start, end time.Time
	err        error
}

// describe says when the attempt started (from t0), how long it took and
// how it ended, for the progress line of a slow probe.
func (r attemptResult) describe(t0 time.Time) string {
	how := "ok, slow"
	if r.err != nil {
		how = truncate(r.err.Error(), 120)
	}
	return fmt.Sprintf("+%v for %v: %s", r.start.Sub(t0).Round(time.Millisecond), r.end.Sub(r.start).Round(time.Millisecond), how)
}

// serveProbe starts an attempt every apiAttemptEvery from now until
// t0+apiProbeWindow (each on a new connection, several in flight), waits
// for them and returns
//   - first: from t0 to the end of the first successful attempt;
//   - servedFrom: from t0 to the end of the first attempt from which on
//     every attempt started later succeeded within promptLatency — when
//     every new client is served promptly, not only when the balancer picks
//     a live backend or a SYN's retransmission gets through;
//
// each report.NotWithin when not seen within the window.
func (b *bench) serveProbe(ctx context.Context, t0 time.Time, what string, attempt func(context.Context) error) (first, servedFrom time.Duration) {
	results := make(chan attemptResult, 128)
	n := 0
	tick := time.NewTicker(apiAttemptEvery)
	defer tick.Stop()
	launch := func() {
		n++
		go func() {
			start := time.Now()
			err := attempt(ctx)
			results <- attemptResult{start, time.Now(), err}
		}()
	}
	launch()
	for end := t0.Add(apiProbeWindow); time.Now().Before(end) && ctx.Err() == nil; {
		select {
		case <-tick.C:
			launch()
		case <-ctx.Done():
		}
	}
	var all []attemptResult
	for ; n > 0; n-- {
		all = append(all, <-results)
	}
	first, servedFrom = served(all, t0)
	if (first < 0 || servedFrom > slowAPI || servedFrom < 0) && b.progress != nil {
		var failed []string
		for _, r := range all {
			if (r.err != nil || r.end.Sub(r.start) > promptLatency) && len(failed) < 12 {
				failed = append(failed, r.describe(t0))
			}
		}
		b.progress("slow %s: first ok %v, served from %v; failed or slow attempts: %v", what, first, servedFrom, failed)
	}
	return first, servedFrom
}

// served computes serveProbe's two figures from its attempts.
func served(all []attemptResult, t0 time.Time) (first, servedFrom time.Duration) {
	slices.SortFunc(all, func(a, b attemptResult) int { return a.start.Compare(b.start) })
	first, servedFrom = report.NotWithin, report.NotWithin
	for _, r := range all {
		if r.err == nil && (first == report.NotWithin || r.end.Sub(t0) < first) {
			first = r.end.Sub(t0)
		}
	}
	lastFail := -1
	for i, r := range all {
		if r.err != nil || r.end.Sub(r.start) > promptLatency {
			lastFail = i
		}
	}
	if lastFail+1 < len(all) {
		servedFrom = all[lastFail+1].end.Sub(t0)
	}
	return first, servedFrom
}

// slowAPI is the target for the API through the VIP after a fault.
const slowAPI = 2 * time.Second

// waitAPIServers waits until every master's own apiserver answers /readyz
// (a rebooted master's apiserver must be back before the next fault: two
// of three down would cost etcd its quorum).
func (b *bench) waitAPIServers(ctx context.Context) error {
	var last error
	for {
		last = nil
		for _, m := range b.l.Masters() {
			if err := b.api.readyz(ctx, "https://"+net.JoinHostPort(m.Addr.String(), "6443")); err != nil {
				last = errors.Join(last, fmt.Errorf("%s: %w", m.Name, err))
			}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("apiservers not ready: %v: %w", last, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
