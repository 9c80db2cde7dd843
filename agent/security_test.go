package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/masterd/masterd/etcdembed"
	"github.com/masterd/masterd/pki"
	"github.com/masterd/masterd/units"
	"github.com/prometheus/client_golang/prometheus"
)

// secKubeBinDir finds the kube binaries the Makefile builds (KUBE_BIN_DIR,
// or the cache of integration/kube/build.sh).
func secKubeBinDir(t *testing.T) string {
	t.Helper()
	dirs := []string{os.Getenv("KUBE_BIN_DIR"), os.Getenv("MASTERD_KUBE_BIN")}
	cache := os.Getenv("MASTERD_CACHE")
	if cache == "" {
		if h, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(h, ".cache", "masterd")
		}
	}
	dirs = append(dirs, filepath.Join(cache, "kube", "v1.37.2", "bin"))
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "kube-apiserver")); err == nil {
			return d
		}
	}
	t.Skipf("kube-apiserver not built (looked in %v): run `make kube` or set KUBE_BIN_DIR", dirs)
	return ""
}

func secFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// secLab is one master as the daemon sets it up: pki.Ensure's files, the
// apiserver files of the pki component, the embedded etcd member, and
// kube-apiserver started from the command line kubeConfig generates.
type secLab struct {
	t      *testing.T
	n      *node
	member *etcdembed.Member
	api    *exec.Cmd
	exited <-chan struct{} // closes when api exits
	argv   []string        // kube-apiserver's command line, as its unit runs it
	starts int             // kube-apiserver starts so far (names its logs)
	dir    string
	base   string
	admin  *http.Client
	signer *signerComponent
}

func newSecLab(t *testing.T, ctx context.Context) *secLab {
	t.Helper()
	bin := secKubeBinDir(t)
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Name = "m1"
	cfg.Address = netip.MustParseAddr("127.0.0.1")
	cfg.Peers = []Peer{{Name: "m1", Address: cfg.Address}}
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.VIP.Enabled = false
	cfg.Etcd.ClientPort, cfg.Etcd.PeerPort = secFreePort(t), secFreePort(t)
	cfg.Etcd.SnapshotInterval = 0
	cfg.Kubernetes.BinDir = bin
	cfg.Kubernetes.APIServerPort = secFreePort(t)
	cfg.Kubernetes.Audit.Path = filepath.Join(dir, "log", "audit.log")
	// kube-apiserver refuses to announce a loopback address in the
	// kubernetes Service's endpoints; a documentation address, announced
	// only, keeps everything on the host's loopback.
	cfg.Kubernetes.APIServer.ExtraArgs = map[string]string{"advertise-address": "192.0.2.10"}
	quiet := slog.New(slog.DiscardHandler)
	n := &node{cfg: cfg, log: quiet, reg: prometheus.NewRegistry()}
	s, err := pki.GenerateSecret(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n.secret = s
	if n.files, err = ensurePKI(n.pkiDir(), s, pkiParams(cfg), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := writeAPIServerFiles(n, s); err != nil {
		t.Fatal(err)
	}
	l := &secLab{t: t, n: n, dir: dir,
		base: "https://127.0.0.1:" + strconv.Itoa(cfg.Kubernetes.APIServerPort)}

	ecfg := etcdConfig(n)
	m, err := etcdembed.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = m.Stop(sctx)
	})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	l.member = m
	// The token signer the apiserver calls (sakeys.go), as the daemon
	// starts it before the kube component.
	if _, _, err := EnsureMembership(ctx, m.Client(), cfg); err != nil {
		t.Fatal(err)
	}
	sc, err := newSignerComponent(n, &etcdComponent{n: n, m: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sc.Stop(sctx)
	})
	l.signer = sc

	k := kubeConfig(n)
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	def, err := k.APIServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver %s", strings.Join(def.ExecStart[1:], " "))
	l.argv = def.ExecStart
	l.admin = l.client(n.files.APIServerKubeletClient.Cert, n.files.APIServerKubeletClient.Key, "")
	l.startAPIServer(ctx)
	return l
}

// startAPIServer starts kube-apiserver from its unit's command line and
// waits until it is ready, as the kube component's Start does.
func (l *secLab) startAPIServer(ctx context.Context) {
	l.t.Helper()
	l.starts++
	name := "kube-apiserver"
	if l.starts > 1 {
		name += "-" + strconv.Itoa(l.starts)
	}
	l.api, l.exited = l.run(name, l.argv)
	l.waitFor(ctx, name+" ready", func() bool {
		select {
		case <-l.exited:
			l.t.Fatalf("%s exited: %v", name, l.api.ProcessState)
		default:
		}
		code, _ := l.do(ctx, l.admin, http.MethodGet, "/readyz", "")
		return code == http.StatusOK
	})
}

// stopAPIServer stops kube-apiserver as the units supervisor stops its
// unit: SIGTERM, SIGKILL after the unit's grace (units.Config.StopGrace).
func (l *secLab) stopAPIServer() {
	l.t.Helper()
	if err := l.api.Process.Signal(syscall.SIGTERM); err != nil {
		l.t.Fatalf("stop kube-apiserver: %v", err)
	}
	select {
	case <-l.exited:
	case <-time.After(units.DefaultConfig().StopGrace):
		l.t.Logf("kube-apiserver still running %s after SIGTERM: SIGKILL", units.DefaultConfig().StopGrace)
		_ = l.api.Process.Kill()
		<-l.exited
	}
}

// run starts a kube binary with its output in dir/name.log, killed (by its
// PID) at cleanup; on failure the log's encryption and error lines and its
// tail are shown. The channel closes when the process exits.
func (l *secLab) run(name string, argv []string) (*exec.Cmd, <-chan struct{}) {
	t := l.t
	t.Helper()
	path := filepath.Join(l.dir, name+".log")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(path)
			var keep []string
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "ncryption") || strings.HasPrefix(line, "E") {
					keep = append(keep, line)
				}
			}
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log, encryption and error lines:\n%s\ntail:\n%s", name, strings.Join(keep, "\n"), b)
		}
	})
	return cmd, exited
}

// client authenticates with a certificate pair or, when token is set, a
// bearer token.
func (l *secLab) client(cert, key, token string) *http.Client {
	l.t.Helper()
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(l.n.files.KubeCA.Cert)
	if err != nil {
		l.t.Fatal(err)
	}
	pool.AppendCertsFromPEM(caPEM)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			l.t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	var rt http.RoundTripper = &http.Transport{TLSClientConfig: tc}
	if token != "" {
		rt = bearer{token: token, next: rt}
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: rt}
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// do sends a request with a JSON body (POST, PUT) or a merge patch (PATCH)
// and returns the status and the body.
func (l *secLab) do(ctx context.Context, c *http.Client, method, path, body string) (int, string) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, rd)
	if err != nil {
		l.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// must is do that fails the test unless the status is want.
func (l *secLab) must(ctx context.Context, want int, method, path, body string) string {
	l.t.Helper()
	code, out := l.do(ctx, l.admin, method, path, body)
	if code != want {
		l.t.Fatalf("%s %s: %d %s, want %d", method, path, code, out, want)
	}
	return out
}

func (l *secLab) waitFor(ctx context.Context, what string, cond func() bool) {
	l.t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			l.t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// raw is a key's value as stored in etcd.
func (l *secLab) raw(ctx context.Context, key string) []byte {
	l.t.Helper()
	resp, err := l.member.Client().Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		l.t.Fatalf("etcd get %s: %v (%d keys)", key, err, len(resp.Kvs))
	}
	return resp.Kvs[0].Value
}

func secretJSON(name, value string) string {
	return fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":%q},"data":{"password":%q}}`,
		name, base64.StdEncoding.EncodeToString([]byte(value)))
}

// readsBack says whether the Secret reads through the API with value.
func (l *secLab) readsBack(ctx context.Context, name, value string) bool {
	code, out := l.do(ctx, l.admin, http.MethodGet, "/api/v1/namespaces/default/secrets/"+name, "")
	return code == http.StatusOK && strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(value)))
}

// setKeys is one rotation step as the README tells operators to do it:
// edit kubernetes.encryption and restart masterd. A restart stops
// kube-apiserver's unit (kubeComponent.Stop), the pki component rewrites
// the EncryptionConfiguration (writeAPIServerFiles) and the kube component
// starts the unit again, which reads the new file at its start; nothing
// waits for kube-apiserver's automatic reload (52-61 s).
func (l *secLab) setKeys(ctx context.Context, keys []int, enabled bool) {
	l.t.Helper()
	t0 := time.Now()
	l.stopAPIServer()
	l.n.cfg.Kubernetes.Encryption = EncryptionConfig{Enabled: enabled, Keys: keys}
	if err := writeAPIServerFiles(l.n, l.n.secret); err != nil {
		l.t.Fatal(err)
	}
	l.startAPIServer(ctx)
	l.t.Logf("keys %v enabled=%v: kube-apiserver restarted in %s", keys, enabled, time.Since(t0).Round(100*time.Millisecond))
}

// A real kube-apiserver started with the flags kubeConfig generates, on the
// daemon's embedded etcd: Secrets are encrypted in etcd and in a snapshot
// (a ConfigMap with the same kind of value shows the checks find plain
// text), survive a key rotation done as the README says, and still read
// with encryption switched off; the audit log has the requests' metadata
// and no Secret's value.
func TestSecretsAreEncryptedAtRestRotateAndAreAudited(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := newSecLab(t, ctx)

	const secret1, plain = "s3cr3t-value-one-7a1f", "configmap-value-9c2e"
	l.must(ctx, http.StatusCreated, http.MethodPost, "/api/v1/namespaces/default/secrets", secretJSON("s1", secret1))
	l.must(ctx, http.StatusCreated, http.MethodPost, "/api/v1/namespaces/default/configmaps",
		fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c1"},"data":{"v":%q}}`, plain))

	v := l.raw(ctx, "/registry/secrets/default/s1")
	if !bytes.HasPrefix(v, []byte("k8s:enc:secretbox:v1:gen1:")) || bytes.Contains(v, []byte(secret1)) {
		t.Fatalf("secret s1 in etcd: %q, want the secretbox gen1 prefix and no plain value", v[:min(len(v), 80)])
	}
	if c := l.raw(ctx, "/registry/configmaps/default/c1"); !bytes.Contains(c, []byte(plain)) {
		t.Fatalf("the ConfigMap's value is not found in etcd: the plain-text check cannot see anything")
	}
	snap := filepath.Join(t.TempDir(), "snap.db")
	if err := l.member.Snapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(db, []byte("/registry/secrets/default/s1")) || !bytes.Contains(db, []byte(plain)) {
		t.Fatal("the snapshot lacks the Secret's key or the ConfigMap's plain value")
	}
	if bytes.Contains(db, []byte(secret1)) || bytes.Contains(db, []byte(base64.StdEncoding.EncodeToString([]byte(secret1)))) {
		t.Fatal("the snapshot holds the Secret's value in plain text")
	}
	t.Logf("snapshot %d bytes: Secret key present, value absent; ConfigMap value present", len(db))

	// Rotation: add generation 2 (decrypt only), make it the first, rewrite
	// the Secrets, drop generation 1.
	l.setKeys(ctx, []int{1, 2}, true)
	l.must(ctx, http.StatusCreated, http.MethodPost, "/api/v1/namespaces/default/secrets", secretJSON("s2", "s2-value"))
	if v := l.raw(ctx, "/registry/secrets/default/s2"); !bytes.HasPrefix(v, []byte("k8s:enc:secretbox:v1:gen1:")) {
		t.Fatalf("with keys [1, 2] a new Secret is stored as %q, want gen1", v[:40])
	}
	l.setKeys(ctx, []int{2, 1}, true)
	if !l.readsBack(ctx, "s1", secret1) {
		t.Fatal("s1 (gen1) does not read with keys [2, 1]")
	}
	// kubectl get secrets -A -o json | kubectl replace -f -, for our two.
	for _, name := range []string{"s1", "s2"} {
		cur := l.must(ctx, http.StatusOK, http.MethodGet, "/api/v1/namespaces/default/secrets/"+name, "")
		l.must(ctx, http.StatusOK, http.MethodPut, "/api/v1/namespaces/default/secrets/"+name, cur)
		if v := l.raw(ctx, "/registry/secrets/default/"+name); !bytes.HasPrefix(v, []byte("k8s:enc:secretbox:v1:gen2:")) {
			t.Fatalf("%s after the rewrite: %q, want gen2", name, v[:40])
		}
	}
	l.setKeys(ctx, []int{2}, true)
	if !l.readsBack(ctx, "s1", secret1) || !l.readsBack(ctx, "s2", "s2-value") {
		t.Fatal("a rewritten Secret does not read with keys [2]")
	}

	// Switched off: new Secrets in plain text, encrypted ones still read.
	l.setKeys(ctx, []int{2}, false)
	l.must(ctx, http.StatusCreated, http.MethodPost, "/api/v1/namespaces/default/secrets", secretJSON("s3", "s3-value"))
	if v := l.raw(ctx, "/registry/secrets/default/s3"); bytes.HasPrefix(v, []byte("k8s:enc:")) {
		t.Fatalf("with encryption off a new Secret is stored encrypted: %q", v[:40])
	}
	if !l.readsBack(ctx, "s1", secret1) {
		t.Fatal("an encrypted Secret does not read with encryption off")
	}

	// The audit log: the create of s1 at Metadata level, once (no
	// RequestReceived stage), and no Secret value anywhere in it.
	audit, err := os.ReadFile(l.n.cfg.Kubernetes.Audit.Path)
	if err != nil {
		t.Fatal(err)
	}
	creates := 0
	for _, line := range bytes.Split(audit, []byte("\n")) {
		var ev struct {
			Level, Stage, Verb string
			User               struct{ Username string }
			ObjectRef          struct{ Resource, Namespace, Name string }
			RequestObject      json.RawMessage
		}
		if len(line) == 0 || json.Unmarshal(line, &ev) != nil {
			continue
		}
		if ev.Stage == "RequestReceived" {
			t.Errorf("audit event at stage RequestReceived: %s", line)
		}
		if ev.Verb == "create" && ev.ObjectRef.Resource == "secrets" && ev.ObjectRef.Name == "s1" {
			creates++
			if ev.Level != "Metadata" || ev.Stage != "ResponseComplete" || ev.User.Username != pki.KubeletClientName || ev.RequestObject != nil {
				t.Errorf("audit event of the create: %s", line)
			}
		}
	}
	if creates != 1 {
		t.Errorf("%d audit events for the create of s1, want 1", creates)
	}
	if bytes.Contains(audit, []byte(secret1)) || bytes.Contains(audit, []byte(base64.StdEncoding.EncodeToString([]byte(secret1)))) {
		t.Error("the audit log holds a Secret's value")
	}
	t.Logf("audit log: %d bytes, %d lines", len(audit), bytes.Count(audit, []byte("\n")))
}

// nodeClient is a kubelet's client certificate (system:node:name in
// system:nodes) issued by the cluster CA.
func (l *secLab) nodeClient(name string) *http.Client {
	l.t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		l.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}},
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	ca := l.n.secret.KubeCA
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &k.PublicKey, ca.Key)
	if err != nil {
		l.t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		l.t.Fatal(err)
	}
	dir := l.t.TempDir()
	cert, key := filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		l.t.Fatal(err)
	}
	return l.client(cert, key, "")
}

// The admission and authentication flags kubeConfig generates are in
// effect in a real kube-apiserver: NodeRestriction refuses a kubelet's
// change to another Node (its own goes through), and a bootstrap token
// Secret authenticates as system:bootstrap:<id>; a real
// kube-controller-manager with its generated flags runs the bootstrap
// signer and the token cleaner.
func TestNodeRestrictionAndBootstrapTokensAreOn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := newSecLab(t, ctx)
	for _, name := range []string{"worker-a", "worker-b"} {
		l.must(ctx, http.StatusCreated, http.MethodPost, "/api/v1/nodes",
			fmt.Sprintf(`{"apiVersion":"v1","kind":"Node","metadata":{"name":%q}}`, name))
	}
	a := l.nodeClient("worker-a")
	patch := `{"metadata":{"labels":{"tampered":"yes"}}}`
	code, out := l.do(ctx, a, http.MethodPatch, "/api/v1/nodes/worker-b", patch)
	t.Logf("worker-a patches worker-b: %d %s", code, strings.TrimSpace(out))
	var status struct{ Message string }
	_ = json.Unmarshal([]byte(out), &status)
	if code != http.StatusForbidden || !strings.Contains(status.Message, `node "worker-a" is not allowed to modify node "worker-b"`) {
		t.Errorf("worker-a patching worker-b: %d %s, want 403 from NodeRestriction", code, out)
	}
	if code, out := l.do(ctx, a, http.MethodPatch, "/api/v1/nodes/worker-a", `{"metadata":{"annotations":{"own":"yes"}}}`); code != http.StatusOK {
		t.Errorf("worker-a patching its own Node: %d %s, want 200", code, out)
	}

	review := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	tok := l.client("", "", "abcdef.0123456789abcdef")
	if code, _ := l.do(ctx, tok, http.MethodPost, "/apis/authentication.k8s.io/v1/selfsubjectreviews", review); code != http.StatusUnauthorized {
		t.Fatalf("an unknown bootstrap token: %d, want 401", code)
	}
	l.must(ctx, http.StatusCreated, http.MethodPost, "/api/v1/namespaces/kube-system/secrets", `{"apiVersion":"v1","kind":"Secret",
		"metadata":{"name":"bootstrap-token-abcdef","namespace":"kube-system"},"type":"bootstrap.kubernetes.io/token",
		"stringData":{"token-id":"abcdef","token-secret":"0123456789abcdef","usage-bootstrap-authentication":"true","usage-bootstrap-signing":"true",
		"auth-extra-groups":"system:bootstrappers:kubeadm:default-node-token"}}`)
	// The authenticator reads token Secrets through an informer: wait for it.
	l.waitFor(ctx, "the bootstrap token authenticates", func() bool {
		code, out = l.do(ctx, tok, http.MethodPost, "/apis/authentication.k8s.io/v1/selfsubjectreviews", review)
		return code != http.StatusUnauthorized
	})
	t.Logf("bootstrap token review: %d %s", code, strings.TrimSpace(out))
	if code != http.StatusCreated || !strings.Contains(out, `"username":"system:bootstrap:abcdef"`) {
		t.Errorf("bootstrap token: %d %s, want 201 as system:bootstrap:abcdef", code, out)
	}

	// kube-controller-manager with the generated flags: the bootstrap
	// signer signs cluster-info for the token, the token cleaner deletes an
	// expired token. (Its serving port: a free one, off the default.)
	l.n.cfg.Kubernetes.ControllerManager.ExtraArgs = map[string]string{"secure-port": strconv.Itoa(secFreePort(t))}
	cm, err := kubeConfig(l.n).ControllerManager()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-controller-manager %s", strings.Join(cm.ExecStart[1:], " "))
	_, cmExited := l.run("kube-controller-manager", cm.ExecStart)
	l.must(ctx, http.StatusCreated, http.MethodPost, "/api/v1/namespaces/kube-public/configmaps",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cluster-info"},"data":{"kubeconfig":"apiVersion: v1\nkind: Config\nclusters: []\n"}}`)
	l.must(ctx, http.StatusCreated, http.MethodPost, "/api/v1/namespaces/kube-system/secrets", `{"apiVersion":"v1","kind":"Secret",
		"metadata":{"name":"bootstrap-token-old000","namespace":"kube-system"},"type":"bootstrap.kubernetes.io/token",
		"stringData":{"token-id":"old000","token-secret":"0123456789abcdef","expiration":"2001-01-01T00:00:00Z","usage-bootstrap-authentication":"true"}}`)
	alive := func() {
		select {
		case <-cmExited:
			t.Fatal("kube-controller-manager exited")
		default:
		}
	}
	l.waitFor(ctx, "the bootstrap signer signs cluster-info", func() bool {
		alive()
		code, out := l.do(ctx, l.admin, http.MethodGet, "/api/v1/namespaces/kube-public/configmaps/cluster-info", "")
		return code == http.StatusOK && strings.Contains(out, `"jws-kubeconfig-abcdef"`)
	})
	l.waitFor(ctx, "the token cleaner deletes the expired token", func() bool {
		alive()
		code, _ := l.do(ctx, l.admin, http.MethodGet, "/api/v1/namespaces/kube-system/secrets/bootstrap-token-old000", "")
		return code == http.StatusNotFound
	})
	t.Log("cluster-info signed for token abcdef; expired token old000 deleted")
}
