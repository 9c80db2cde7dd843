package agent

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masterd/masterd/election"
	"github.com/masterd/masterd/lb"
	"github.com/prometheus/client_golang/prometheus"
)

// apiBackend stands in for one master's kube-apiserver: TLS, /readyz
// answering 200 or 503, and /work counting the client requests that reach
// it (each on a connection of its own, so one request is one dial by the
// balancer).
type apiBackend struct {
	srv    *httptest.Server
	ready  atomic.Bool
	work   atomic.Int64
	checks atomic.Int64
}

func startAPIBackend(t *testing.T) *apiBackend {
	t.Helper()
	b := &apiBackend{}
	b.ready.Store(true)
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			b.checks.Add(1)
			if !b.ready.Load() {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok")
		case "/work":
			b.work.Add(1)
			_, _ = io.WriteString(w, "done")
		}
	}))
	b.srv.StartTLS()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *apiBackend) addr() netip.AddrPort {
	return b.srv.Listener.Addr().(*net.TCPAddr).AddrPort()
}

// Three masters, each with a real election driver over memberlist and a
// real balancer over the three "apiservers", the drivers' reports fed to
// the balancers through lbComponent.peerDown as the agent wires them. The
// VIP holder crashes (its driver killed: no Release, no Leave): both
// survivors' balancers mark its backend down at once, dial it never again
// (its apiserver still accepts, so any dial would be counted), and take it
// back only once its /readyz passes again.
func TestBalancersDialNoMasterTheElectionReportsDead(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	names := []string{"m1", "m2", "m3"}
	backends := map[string]*apiBackend{}
	for _, name := range names {
		backends[name] = startAPIBackend(t)
	}
	pool := backends["m1"].srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	var peers []election.Peer
	for _, name := range names {
		peers = append(peers, election.Peer{Name: name, Addr: fmt.Sprintf("127.0.0.1:%d", freeUDPTCPPort(t))})
	}
	lbs := map[string]*lbComponent{}
	drivers := map[string]*election.Driver{}
	var mu sync.Mutex
	reported := map[string]map[string]bool{} // by -> peers reported down
	var holder atomic.Value
	holder.Store("")
	for i, name := range names {
		lc := lb.DefaultConfig()
		lc.Listen = netip.MustParseAddrPort("127.0.0.1:0")
		for _, n := range names {
			lc.Backends = append(lc.Backends, lb.Backend{Name: n, Address: backends[n].addr()})
		}
		lc.HealthCheck.CA = pool
		lc.HealthCheck.ServerName = "127.0.0.1"
		b, err := lb.New(lc, prometheus.NewRegistry(), quiet)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = b.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		lbc := &lbComponent{n: &node{cfg: Config{Name: name}, log: quiet}, b: b}
		lbs[name] = lbc

		dc := election.DefaultDriverConfig()
		dc.Name = name
		dc.BindAddr, dc.AdvertiseAddr = "127.0.0.1", "127.0.0.1"
		fmt.Sscanf(peers[i].Addr, "127.0.0.1:%d", &dc.BindPort)
		dc.Peers = peers
		dc.Keys = [][]byte{key}
		dc.Label = "lb-test"
		dc.StateDir = t.TempDir()
		dc.Roles = map[string]election.Timing{election.RoleVIP: election.DefaultVIPTiming()}
		dc.RejoinInterval = 200 * time.Millisecond
		dc.Registerer = prometheus.NewRegistry()
		d, err := election.NewDriver(dc, election.Callbacks{
			OnStartedLeading: func(context.Context, string, uint64) { holder.Store(name) },
			OnPeerDown: func(peer, reason string) {
				lbc.peerDown(peer, reason) // what the agent's wiring does
				mu.Lock()
				if reported[name] == nil {
					reported[name] = map[string]bool{}
				}
				reported[name][peer] = true
				mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		drivers[name] = d
		t.Cleanup(d.Kill)
	}
	waitUntil(t, "a VIP holder", func() bool { return holder.Load().(string) != "" })
	for _, name := range names {
		waitUntil(t, name+"'s balancer sees every backend up", func() bool { return allUp(lbs[name].b) })
	}
	time.Sleep(500 * time.Millisecond) // every driver hears the holder
	dead := holder.Load().(string)
	mu.Lock()
	clear(reported) // gossip's start-up reports of members not joined yet
	mu.Unlock()

	// The crash: the holder's daemon dies and its apiserver goes unready
	// (it still accepts connections, so a dial to it would be counted).
	backends[dead].ready.Store(false)
	drivers[dead].Kill()
	var survivors []string
	for _, name := range names {
		if name != dead {
			survivors = append(survivors, name)
		}
	}
	waitUntil(t, "both survivors report the dead holder", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return reported[survivors[0]][dead] && reported[survivors[1]][dead]
	})
	before := backends[dead].work.Load()
	checksBefore := backends[dead].checks.Load()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: backends["m1"].srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone(), DisableKeepAlives: true}}
	client.Transport.(*http.Transport).TLSClientConfig.ServerName = "127.0.0.1"
	for _, name := range survivors {
		for range 30 {
			getWork(t, client, lbs[name].b.Addr())
		}
		for _, s := range lbs[name].b.Status() {
			if s.Name == dead && s.Up {
				t.Fatalf("%s's balancer has the dead master %s up", name, dead)
			}
		}
	}
	// Failing checks keep it out: wait for a few more to run.
	waitUntil(t, "three more failing checks of the dead backend", func() bool { return backends[dead].checks.Load() >= checksBefore+6 })
	for _, name := range survivors {
		for range 10 {
			getWork(t, client, lbs[name].b.Addr())
		}
	}
	if n := backends[dead].work.Load() - before; n != 0 {
		t.Fatalf("%d client connections reached the master reported dead", n)
	}
	// It comes back with passing checks, and only then gets clients.
	backends[dead].ready.Store(true)
	for _, name := range survivors {
		waitUntil(t, name+"'s balancer takes "+dead+" back", func() bool { return allUp(lbs[name].b) })
		for range 30 {
			getWork(t, client, lbs[name].b.Addr())
		}
	}
	if n := backends[dead].work.Load() - before; n == 0 {
		t.Fatalf("the master back with passing checks got no client connection")
	}
}

func allUp(b *lb.Balancer) bool {
	for _, s := range b.Status() {
		if !s.Up {
			return false
		}
	}
	return true
}

func getWork(t *testing.T, c *http.Client, addr netip.AddrPort) {
	t.Helper()
	resp, err := c.Get("https://" + addr.String() + "/work")
	if err != nil {
		t.Fatalf("request through the balancer %s: %v", addr, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("request through the balancer %s: status %d", addr, resp.StatusCode)
	}
}

// waitUntil polls cond; the deadline guards against hangs only.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// freeUDPTCPPort is a port free for both TCP and UDP on 127.0.0.1
// (memberlist binds both).
func freeUDPTCPPort(t *testing.T) int {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return port
		}
	}
}

// The balancer follows the membership record: after m3 is replaced by m4
// (new name, new address), the backends are m1, m2 and m4 at the
// apiserver port, during the joint change all four.
func TestBalancerBackendsFollowTheMembershipRecord(t *testing.T) {
	lc := lb.DefaultConfig()
	lc.Listen = netip.MustParseAddrPort("127.0.0.1:0")
	for i, n := range []string{"m1", "m2", "m3"} {
		lc.Backends = append(lc.Backends, lb.Backend{Name: n, Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(11 + i)}), 6443)})
	}
	lc.HealthCheck.CA = x509.NewCertPool()
	b, err := lb.New(lc, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	cfg := Config{Name: "m1"}
	cfg.Kubernetes.APIServerPort = 6443
	c := &lbComponent{n: &node{cfg: cfg, log: slog.New(slog.DiscardHandler)}, b: b}
	names := func() string {
		var out []string
		for _, s := range b.Status() {
			out = append(out, s.Name+"="+s.Address.String())
		}
		return strings.Join(out, " ")
	}
	c.setMasters(MembershipRecord{Epoch: 5,
		Voters: map[string]string{"m1": "127.0.0.11", "m2": "127.0.0.12", "m4": "127.0.0.14"},
		Old:    map[string]string{"m1": "127.0.0.11", "m2": "127.0.0.12", "m3": "127.0.0.13"}})
	if got, want := names(), "m1=127.0.0.11:6443 m2=127.0.0.12:6443 m3=127.0.0.13:6443 m4=127.0.0.14:6443"; got != want {
		t.Errorf("joint change: backends %s, want %s", got, want)
	}
	c.setMasters(MembershipRecord{Epoch: 6, Voters: map[string]string{"m1": "127.0.0.11", "m2": "127.0.0.12", "m4": "127.0.0.14"}})
	if got, want := names(), "m1=127.0.0.11:6443 m2=127.0.0.12:6443 m4=127.0.0.14:6443"; got != want {
		t.Errorf("after the change: backends %s, want %s", got, want)
	}
}
