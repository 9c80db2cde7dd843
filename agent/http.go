package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// checkTimeout bounds one readiness check.
const checkTimeout = 2 * time.Second

// listen binds the metrics address and serves the endpoints in the background.
func (a *Agent) listen() (*http.Server, error) {
	ln, err := net.Listen("tcp", a.cfg.Metrics.Listen)
	if err != nil {
		return nil, fmt.Errorf("http: listen on %s (metrics.listen): %w", a.cfg.Metrics.Listen, err)
	}
	srv := &http.Server{
		Addr:              ln.Addr().String(),
		Handler:           a.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			a.log.Error("http server failed", "err", err)
		}
	}()
	return srv, nil
}

// Handler returns the agent's HTTP endpoints.
func (a *Agent) Handler() http.Handler {
	g := a.opts.Gatherer
	if g == nil {
		g = a.reg
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(a.reg,
		promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: slogPrinter{a}, Registry: a.reg})))
	mux.HandleFunc("GET /healthz", a.serveHealthz)
	mux.HandleFunc("GET /readyz", a.serveReadyz)
	mux.HandleFunc("GET /status", a.serveStatus)
	if a.cfg.Metrics.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// serveHealthz answers whether the process should be restarted: it fails when
// the liveness check (the election loop believes it leads but has not renewed)
// fails.
func (a *Agent) serveHealthz(w http.ResponseWriter, r *http.Request) {
	if a.opts.Liveness != nil {
		if err := a.opts.Liveness(); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

// serveReadyz lists every check and fails with 503 when any fails.
func (a *Agent) serveReadyz(w http.ResponseWriter, r *http.Request) {
	failed, lines := a.readiness(r.Context())
	a.metrics.ready.Set(boolFloat(failed == 0))
	if failed > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprint(w, strings.Join(lines, "\n")+"\n")
	if failed > 0 {
		fmt.Fprintf(w, "readyz check failed: %d failing\n", failed)
	} else {
		fmt.Fprintln(w, "ok")
	}
}

// readiness runs every check and returns the number failing and one line per
// check, "[+]name ok" or "[-]name: reason", as kube-apiserver does.
func (a *Agent) readiness(ctx context.Context) (int, []string) {
	failed := 0
	var lines []string
	if a.isReady() {
		lines = append(lines, "[+]started ok")
	} else {
		failed++
		lines = append(lines, "[-]started: components still starting or stopping")
	}
	for _, c := range a.opts.Components {
		ch, ok := c.(Checker)
		if !ok {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := ch.Check(cctx)
		cancel()
		if err != nil {
			failed++
			lines = append(lines, fmt.Sprintf("[-]%s: %v", c.Name(), err))
		} else {
			lines = append(lines, fmt.Sprintf("[+]%s ok", c.Name()))
		}
	}
	return failed, lines
}

func (a *Agent) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(a.Status()); err != nil {
		a.log.Warn("status encode failed", "err", err)
	}
}

// Status returns the node's status document.
func (a *Agent) Status() Status {
	a.mu.Lock()
	st := Status{
		Node:       a.cfg.Name,
		Build:      a.opts.Build,
		Ready:      a.ready,
		Components: make(map[string]string, len(a.states)),
		Sections:   map[string]json.RawMessage{},
	}
	if !a.started.IsZero() {
		st.Uptime = time.Since(a.started).Seconds()
	}
	for k, v := range a.states {
		st.Components[k] = v
	}
	a.mu.Unlock()
	for _, c := range a.opts.Components {
		if sr, ok := c.(StatusReporter); ok {
			b, err := json.Marshal(sr.Status())
			if err != nil {
				b, _ = json.Marshal(map[string]string{"error": err.Error()})
			}
			st.Sections[c.Name()] = b
		}
	}
	return st
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// slogPrinter adapts the agent's logger to promhttp's ErrorLog.
type slogPrinter struct{ a *Agent }

func (p slogPrinter) Println(v ...any) { p.a.log.Error("metrics", "err", fmt.Sprint(v...)) }

var _ promhttp.Logger = slogPrinter{}
