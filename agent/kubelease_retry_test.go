package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"
)

// leaseServer is a stand-in apiserver for one Lease: down answers 503 to
// everything, failPut answers 500 to writes.
type leaseServer struct {
	mu      sync.Mutex
	rv      int
	holder  string
	down    bool
	failPut bool
	puts    []string // holders released
}

func (ls *leaseServer) set(f func(*leaseServer)) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	f(ls)
}

func (ls *leaseServer) released() []string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return append([]string(nil), ls.puts...)
}

func (ls *leaseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	switch r.Method {
	case http.MethodGet:
		spec := map[string]any{"leaseDurationSeconds": 15}
		if ls.holder != "" {
			spec["holderIdentity"] = ls.holder
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
			"metadata": map[string]any{"name": "kube-scheduler", "namespace": "kube-system", "resourceVersion": fmt.Sprint(ls.rv)}, "spec": spec})
	case http.MethodPut:
		if ls.failPut {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var obj map[string]any
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &obj)
		if obj["metadata"].(map[string]any)["resourceVersion"] != fmt.Sprint(ls.rv) {
			w.WriteHeader(http.StatusConflict)
			return
		}
		ls.puts = append(ls.puts, ls.holder)
		ls.holder, ls.rv = "", ls.rv+1
		_, _ = w.Write(b)
	}
}

// waitReleased waits up to d for the server to have released want, or
// checks for d that it released nothing (want "").
func waitReleased(t *testing.T, ls *leaseServer, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if got := ls.released(); len(got) > 0 {
			if want == "" || len(got) != 1 || got[0] != want {
				t.Fatalf("released %q, want %q", got, want)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if want != "" {
		t.Fatalf("%q not released within %s", want, d)
	}
}

// A hand-over that fails before the start because the apiserver does not
// answer goes on in the background: once the apiserver answers, it
// releases the old instance of another host, but never an instance of
// this host (the one just started) and never another holder than the one
// it read before the start; it stops with the term.
func TestLeaseHandOverRetriesInTheBackgroundOnlyForThePreviousHolder(t *testing.T) {
	self, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		before      func(*leaseServer) // the apiserver at the start
		after       func(*leaseServer) // once the start went by
		wantRelease string
	}{
		{"the apiserver comes back, the old instance of another host still holds",
			func(ls *leaseServer) { ls.down, ls.holder = true, "m1_old" },
			func(ls *leaseServer) { ls.down = false }, "m1_old"},
		{"the apiserver comes back, this host's new instance holds",
			func(ls *leaseServer) { ls.down, ls.holder = true, "m1_old" },
			func(ls *leaseServer) { ls.down, ls.holder, ls.rv = false, self+"_new", ls.rv+1 }, ""},
		{"the write failed after a read of m1_old, then m3's instance holds",
			func(ls *leaseServer) { ls.failPut, ls.holder = true, "m1_old" },
			func(ls *leaseServer) { ls.failPut, ls.holder, ls.rv = false, "m3_other", ls.rv+1 }, ""},
		{"the write failed after a read of m1_old, which still holds",
			func(ls *leaseServer) { ls.failPut, ls.holder = true, "m1_old" },
			func(ls *leaseServer) { ls.failPut = false }, "m1_old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := &leaseServer{rv: 7}
			ls.set(tc.before)
			srv := httptest.NewTLSServer(ls)
			defer srv.Close()
			l := componentLease("kube-scheduler", writeTestKubeconfig(t, srv), nil)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if prev, err := l.handOver(ctx); err == nil {
				t.Fatalf("handOver: %q, nil error; want the failure before the start", prev)
			}
			if got := ls.released(); len(got) != 0 {
				t.Fatalf("released %q before the apiserver answered", got)
			}
			ls.set(tc.after)
			wait := 3 * leaseRetryEvery
			if tc.wantRelease != "" {
				wait = leaseHandoverTimeout + 3*leaseRetryEvery
			}
			waitReleased(t, ls, tc.wantRelease, wait)
		})
	}
}

// The term lost: the background hand-over stops.
func TestLeaseHandOverStopsRetryingWhenTheTermEnds(t *testing.T) {
	ls := &leaseServer{rv: 7, down: true, holder: "m1_old"}
	srv := httptest.NewTLSServer(ls)
	defer srv.Close()
	l := componentLease("kube-scheduler", writeTestKubeconfig(t, srv), nil)
	ctx, cancel := context.WithCancel(t.Context())
	if _, err := l.handOver(ctx); err == nil {
		t.Fatal("handOver succeeded against a down apiserver")
	}
	cancel()
	ls.set(func(ls *leaseServer) { ls.down = false })
	waitReleased(t, ls, "", 3*leaseRetryEvery)
}
