package scenarios

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterd/masterd/bootstrap"
	"github.com/masterd/masterd/integration/lab"
)

// TestRotationUnderTraffic (issue 24): certificates with a short validity
// (pki.leafValidity 12m, renewed 10m30s ahead: due 1.5 minutes after issue,
// checked every 63 s) renew on every master by themselves while a client
// writes and reads a ConfigMap through the VIP every 100 ms; afterwards
// every master's apiserver and etcd (client and peer ports) serve the
// renewed certificate, checked by a TLS handshake on each port, and the
// leader-only units run with theirs. Then, under the same traffic, the
// gossip key is rotated (masterd keys rotate-gossip) with every role
// holder unchanged, sampled every 100 ms, then the service-account key
// (masterd keys rotate-service-account, then --remove-now: no apiserver
// restarted, an old-key token verifies on every apiserver after the switch
// and is refused after the removal), and `masterd certs renew all` on
// the holders of the leader-only roles restarts their units in place.
func TestRotationUnderTraffic(t *testing.T) {
	o := options(t)
	o.Prefix = fmt.Sprintf("rot%d", os.Getpid()%100000)
	o.ExtraYAML = "pki:\n  leafValidity: 12m\n  renewBefore: 10m30s\n"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	s := upLab(t, ctx, o, 8*time.Minute)
	s.needKube(t)
	figure(t, "lab ready in %.1fs", time.Since(start).Seconds())

	issued := map[string]map[string]string{} // master → port → serial served at the start
	for _, m := range s.Masters() {
		issued[m.Name] = servedSerials(t, ctx, m)
	}
	before := map[string][]string{}
	for _, role := range s.roles() {
		end := time.Now().Add(2 * time.Minute)
		for before[role] = s.Holders(ctx, role); len(before[role]) != 1; before[role] = s.Holders(ctx, role) {
			if time.Now().After(end) {
				t.Fatalf("role %s held by %v two minutes after the lab was ready", role, before[role])
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	c := startVIPClient(t, s)
	sampler := s.sampleRoles(ctx)
	holders := sampleHolders(ctx, s)

	// 1. The scheduled renewal, on every master, reaches the wire.
	renewStart := time.Now()
	poll := func(what string, d time.Duration, ok func() string) {
		t.Helper()
		end := time.Now().Add(d)
		for {
			why := ok()
			if why == "" {
				return
			}
			if time.Now().After(end) {
				t.Fatalf("%s: not within %s: %s", what, d, why)
			}
			time.Sleep(time.Second)
		}
	}
	poll("every master serves renewed certificates", 5*time.Minute, func() string {
		for _, m := range s.Masters() {
			now := servedSerials(t, ctx, m)
			files := fileSerials(t, m)
			for port, serial := range now {
				if serial == issued[m.Name][port] {
					return fmt.Sprintf("%s %s still serves serial %s", m.Name, port, serial)
				}
				if serial != files[port] {
					return fmt.Sprintf("%s %s serves %s, the file holds %s", m.Name, port, serial, files[port])
				}
			}
		}
		return ""
	})
	figure(t, "scheduled renewal served on apiserver, etcd client and peer ports of all 3 masters %.1fs after traffic started", time.Since(renewStart).Seconds())

	// The leader-only units run with the certificate of their kubeconfig.
	poll("leader-only units use their renewed kubeconfig", 2*time.Minute, func() string {
		for _, role := range kubeRoles {
			hs := s.Holders(ctx, role)
			if len(hs) != 1 {
				return fmt.Sprintf("%s held by %v", role, hs)
			}
			out, err := s.Master(hs[0]).Exec(ctx, "masterd", "certs", "check-expiration")
			if err != nil {
				return fmt.Sprintf("check-expiration on %s: %v\n%s", hs[0], err, out)
			}
			unit := map[string]string{"scheduler": "kube-scheduler", "controller-manager": "kube-controller-manager"}[role]
			if !strings.Contains(string(out), "same, "+unit+" since its start") || strings.Contains(string(out), "OLD") {
				return fmt.Sprintf("on %s:\n%s", hs[0], out)
			}
		}
		return ""
	})

	// 2. Gossip key rotation in the middle of the traffic.
	rotStart := time.Now()
	out, err := s.Masters()[0].Exec(ctx, "masterd", "keys", "rotate-gossip")
	t.Logf("masterd keys rotate-gossip:\n%s", out)
	if err != nil || !strings.Contains(string(out), "gossip key rotated: generations [1], primary 1") {
		t.Fatalf("rotate-gossip: %v", err)
	}
	figure(t, "gossip key rotated (install, use, remove on 3 masters) in %.1fs", time.Since(rotStart).Seconds())

	// 2b. Service-account key rotation under the same traffic: no
	// apiserver restarts (masterd serves their token signer), the roles
	// stay; a token of the old key verifies after the switch and not after
	// the removal, one of the new key throughout.
	saStart := time.Now()
	s.kubectl(t, ctx, "create", "serviceaccount", "robot", "-n", "default")
	tok0 := strings.TrimSpace(s.kubectl(t, ctx, "create", "token", "robot", "-n", "default", "--duration", "1h"))
	m0 := s.Masters()[0]
	apiPIDs := map[string]string{}
	for _, m := range s.Masters() {
		out, _ := m.Exec(ctx, "systemctl", "show", "-P", "MainPID", "kube-apiserver")
		apiPIDs[m.Name] = strings.TrimSpace(string(out))
	}
	out, err = m0.Exec(ctx, "masterd", "keys", "rotate-service-account")
	t.Logf("masterd keys rotate-service-account:\n%s", out)
	if err != nil || !strings.Contains(string(out), "service-account key switched: generations [0 1], primary 1") ||
		!strings.Contains(string(out), "run the command again after") {
		t.Fatalf("rotate-service-account (switch): %v", err)
	}
	figure(t, "service-account key switched (install, use on 3 masters) in %.1fs", time.Since(saStart).Seconds())
	tok1 := strings.TrimSpace(s.kubectl(t, ctx, "create", "token", "robot", "-n", "default", "--duration", "1h"))
	if tokenKID(t, tok1) == tokenKID(t, tok0) {
		t.Fatalf("a token made after the switch names the old key %s", tokenKID(t, tok0))
	}
	for _, m := range s.Masters() { // every apiserver, each asked directly
		for i, tok := range []string{tok0, tok1} {
			if who := whoami(ctx, m, tok); who != "system:serviceaccount:default:robot" {
				t.Errorf("token %d on %s's apiserver after the switch: %q", i, m.Name, who)
			}
		}
	}
	removeStart := time.Now()
	out, err = m0.Exec(ctx, "masterd", "keys", "rotate-service-account", "--remove-now")
	t.Logf("masterd keys rotate-service-account --remove-now:\n%s", out)
	if err != nil || !strings.Contains(string(out), "service-account key rotated: generations [1], primary 1") {
		t.Fatalf("rotate-service-account --remove-now: %v", err)
	}
	for _, m := range s.Masters() {
		poll("the old token refused by "+m.Name, time.Minute, func() string {
			if who := whoami(ctx, m, tok0); who != "401" {
				return "answers " + who
			}
			return ""
		})
		if who := whoami(ctx, m, tok1); who != "system:serviceaccount:default:robot" {
			t.Errorf("new token on %s after the removal: %q", m.Name, who)
		}
		out, _ := m.Exec(ctx, "systemctl", "show", "-P", "MainPID", "kube-apiserver")
		if pid := strings.TrimSpace(string(out)); pid != apiPIDs[m.Name] {
			t.Errorf("%s's kube-apiserver was restarted (PID %s, was %s)", m.Name, pid, apiPIDs[m.Name])
		}
	}
	figure(t, "service-account old key removed; refused by every apiserver %.1fs after --remove-now", time.Since(removeStart).Seconds())
	if out, err := m0.Exec(ctx, "masterd", "keys", "status"); err != nil || !strings.Contains(string(out), "service-account keys: generations [1], primary 1") {
		t.Errorf("keys status: %v\n%s", err, out)
	}

	// 3. certs renew all where the leader-only units run: restarted in place.
	renewed := map[string]bool{}
	for _, role := range kubeRoles {
		h := s.Holders(ctx, role)[0]
		if renewed[h] {
			continue
		}
		renewed[h] = true
		out, err := s.Master(h).Exec(ctx, "masterd", "certs", "renew", "all")
		t.Logf("masterd certs renew all on %s:\n%s", h, out)
		if err != nil || !strings.Contains(string(out), "apiserver served on") || !strings.Contains(string(out), "restarted with its renewed certificate") {
			t.Fatalf("certs renew all on %s: %v", h, err)
		}
	}
	time.Sleep(2 * time.Second) // traffic after the last restart

	rounds, dual := sampler.Stop()
	changed, hsamples, hmissed := holders.Stop()
	ok, failures := c.Stop()
	for role, hs := range before {
		if now := s.Holders(ctx, role); !equalStrings(now, hs) {
			t.Errorf("role %s: holders %v, were %v", role, now, hs)
		}
	}
	if len(dual) > 0 {
		t.Errorf("two holders in %d of %d samples: %v", len(dual), rounds, dual)
	}
	if len(changed) > 0 {
		t.Errorf("role holders changed during the rotations: %v", changed)
	}
	figure(t, "client through the VIP every 100 ms: %d requests ok, %d failed; holder and term of every role compared in %d samples (%d more with a master not answering its status): unchanged %v",
		ok, len(failures), hsamples-hmissed, hmissed, len(changed) == 0)
	if len(failures) > 0 {
		t.Errorf("%d failed requests: %v", len(failures), failures)
	}
	if ok < 100 {
		t.Errorf("only %d requests succeeded: the client did not run", ok)
	}
	// The in-place restarts of the leader-only units (the gap a role's
	// component is not running), from the journals.
	var gaps []string
	re := regexp.MustCompile(`leader unit healthy after restart.*seconds=([0-9.]+)`)
	for _, m := range s.Masters() {
		for _, g := range re.FindAllStringSubmatch(m.JournalSince(ctx, start), -1) {
			gaps = append(gaps, m.Name+":"+g[1]+"s")
		}
	}
	if len(gaps) == 0 {
		t.Error("no leader unit was restarted for its renewed certificate")
	}
	figure(t, "leader-only unit restarts for renewed certificates (stop, Lease handover, start, healthy): %s", strings.Join(gaps, " "))
	figure(t, "scenario wall time %.1fs", time.Since(start).Seconds())
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

// servedSerials returns the serial served on m's apiserver, etcd client and
// etcd peer ports, read by a handshake from m's own network namespace.
func servedSerials(t *testing.T, ctx context.Context, m *lab.Master) map[string]string {
	t.Helper()
	out := map[string]string{}
	for port, name := range map[string]string{"6443": "apiserver", "2379": "etcd-client", "2380": "etcd-peer"} {
		var got *x509.Certificate
		dial := dialIn(m.Host().NetNS())
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		raw, err := dial(cctx, net.JoinHostPort(m.Addr.String(), port))
		if err == nil {
			conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true,
				VerifyPeerCertificate: func(rc [][]byte, _ [][]*x509.Certificate) error {
					c, err := x509.ParseCertificate(rc[0])
					got = c
					return err
				}})
			conn.HandshakeContext(cctx)
			conn.Close()
		}
		cancel()
		if got == nil {
			out[name] = fmt.Sprintf("none (%v)", err)
			continue
		}
		out[name] = got.SerialNumber.Text(16)
	}
	return out
}

// fileSerials returns the serials of the files behind those ports.
func fileSerials(t *testing.T, m *lab.Master) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, file := range map[string]string{"apiserver": "apiserver.crt", "etcd-client": "etcd-server.crt", "etcd-peer": "etcd-peer.crt"} {
		b, err := os.ReadFile(m.Host().Path("/var/lib/masterd/pki/" + file))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s on %s: no PEM", file, m.Name)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = c.SerialNumber.Text(16)
	}
	return out
}

// holderSampler compares, about every 100 ms (each sample runs masterd
// status on every master, which takes longer on a loaded machine), each
// role's holder and term with the first sample's. A sample in which a
// master does not answer is counted, not compared: it says nothing.
type holderSampler struct {
	stop, done  chan struct{}
	mu          sync.Mutex
	first       map[string]string
	samples     int
	unreachable int
	changes     []string
}

// holdersOf returns role → "holder@term" from every master's own status,
// or false when a master did not answer.
func holdersOf(ctx context.Context, s *scenarioLab) (map[string]string, bool) {
	sts, err := s.Statuses(ctx)
	if err != nil {
		return nil, false
	}
	out := map[string]string{}
	for _, role := range s.roles() {
		var hs []string
		for name, st := range sts {
			if r := st.Roles[role]; r.Leader {
				hs = append(hs, fmt.Sprintf("%s@%d", name, r.Term))
			}
		}
		out[role] = strings.Join(hs, ",")
	}
	return out, true
}

func sampleHolders(ctx context.Context, s *scenarioLab) *holderSampler {
	h := &holderSampler{stop: make(chan struct{}), done: make(chan struct{})}
	for {
		if first, ok := holdersOf(ctx, s); ok {
			h.first = first
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	go func() {
		defer close(h.done)
		for {
			select {
			case <-h.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			now, ok := holdersOf(ctx, s)
			h.mu.Lock()
			h.samples++
			if !ok {
				h.unreachable++
			}
			for role, v := range now {
				if v != h.first[role] {
					h.changes = append(h.changes, fmt.Sprintf("%s %s: %q, was %q", time.Now().Format("15:04:05.000"), role, v, h.first[role]))
				}
			}
			h.mu.Unlock()
		}
	}()
	return h
}

// Stop returns the changes seen, the samples and those left uncompared.
func (h *holderSampler) Stop() (changes []string, samples, unreachable int) {
	close(h.stop)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changes, h.samples, h.unreachable
}

// vipClient writes then reads a ConfigMap through the VIP every 100 ms, as
// kubernetes-admin, from the lab's client namespace.
type vipClient struct {
	stop, done chan struct{}
	mu         sync.Mutex
	ok         int
	failures   []string
}

func startVIPClient(t *testing.T, s *scenarioLab) *vipClient {
	t.Helper()
	cr, err := bootstrap.LoadKubeconfig(s.Masters()[0].Host().Path("/var/lib/masterd/pki/admin.conf"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cr.CAPEM)
	dial := dialIn(s.ClientNS())
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:     func(ctx context.Context, _, addr string) (net.Conn, error) { return dial(ctx, addr) },
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cr.Cert}},
	}}
	base := "https://" + net.JoinHostPort(s.VIP().String(), "6443") + "/api/v1/namespaces/default/configmaps"
	c := &vipClient{stop: make(chan struct{}), done: make(chan struct{})}
	do := func(method, url string, body []byte) error {
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode/100 != 2 && !(method == http.MethodPost && resp.StatusCode == http.StatusConflict) {
			return fmt.Errorf("%s %s: %s", method, url, resp.Status)
		}
		return nil
	}
	cm := func(i int) []byte {
		return fmt.Appendf(nil, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"rotation-probe"},"data":{"n":"%d"}}`, i)
	}
	if err := do(http.MethodPost, base, cm(0)); err != nil {
		t.Fatalf("create the probe ConfigMap: %v", err)
	}
	go func() {
		defer close(c.done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for i := 1; ; i++ {
			select {
			case <-c.stop:
				return
			case <-tk.C:
			}
			for _, r := range []struct {
				method, url string
				body        []byte
			}{{http.MethodPut, base + "/rotation-probe", cm(i)}, {http.MethodGet, base + "/rotation-probe", nil}} {
				err := do(r.method, r.url, r.body)
				c.mu.Lock()
				if err != nil {
					c.failures = append(c.failures, time.Now().Format("15:04:05.000")+" "+err.Error())
				} else {
					c.ok++
				}
				c.mu.Unlock()
			}
		}
	}()
	return c
}

func (c *vipClient) Stop() (int, []string) {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok, c.failures
}

// tokenKID is the key id in a JWT's header.
func tokenKID(t *testing.T, tok string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var hdr struct{ Kid string }
	if err := json.Unmarshal(h, &hdr); err != nil || hdr.Kid == "" {
		t.Fatalf("token header %s: %v", h, err)
	}
	return hdr.Kid
}

// whoami asks m's own apiserver (from m's namespace) who tok is: the user
// name, or the HTTP status when the review was not created.
func whoami(ctx context.Context, m *lab.Master, tok string) string {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := m.Exec(cctx, "curl", "-sS", "--max-time", "5", "--cacert", "/var/lib/masterd/pki/ca.crt",
		"-H", "Authorization: Bearer "+tok, "-H", "Content-Type: application/json", "-w", "\n%{http_code}",
		"-d", `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`,
		"https://"+m.Addr.String()+":6443/apis/authentication.k8s.io/v1/selfsubjectreviews")
	if err != nil {
		return "curl: " + err.Error()
	}
	text := strings.TrimSpace(string(out))
	i := strings.LastIndex(text, "\n")
	body, code := text[:max(i, 0)], text[i+1:]
	if code != "201" {
		return code
	}
	var r struct {
		Status struct {
			UserInfo struct{ Username string } `json:"userInfo"`
		} `json:"status"`
	}
	if json.Unmarshal([]byte(body), &r) != nil {
		return "undecodable: " + body
	}
	return r.Status.UserInfo.Username
}
