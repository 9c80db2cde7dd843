package bootstrap_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/addons"
	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/bootstrap"
	"github.com/masterd/masterd/internal/kubetest"
	"github.com/masterd/masterd/pki"
)

// The real kube-apiserver and kube-controller-manager (bootstrap-token
// authentication, bootstrapsigner, tokencleaner and csrapprover on) on an
// embedded etcd, in a network namespace of the test's own with the node
// address 10.10.0.1 and the VIP 10.10.0.100 on its loopback: the parent
// test makes the namespace and re-runs this test binary inside it.

const (
	childEnv   = "BOOTSTRAP_KUBE_TEST_CHILD"
	masterdEnv = "BOOTSTRAP_KUBE_TEST_MASTERD"
)

const (
	nodeAddr = kubetest.NodeAddr
	vipAddr  = kubetest.VIPAddr
)

func TestNodeBootstrapAgainstTheRealAPIServer(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("child process")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	bin := kubetest.BinDir(t)
	// The masterd binary, for the token commands as users run them.
	masterd := filepath.Join(t.TempDir(), "masterd")
	if out, err := exec.Command("go", "build", "-o", masterd, "../cmd/masterd").CombinedOutput(); err != nil {
		t.Fatalf("build masterd: %v\n%s", err, out)
	}
	kubetest.RunChild(t, fmt.Sprintf("bootstrap-%d", os.Getpid()), "TestNodeBootstrapChild", childEnv+"="+bin, masterdEnv+"="+masterd)
}

type env struct {
	t       *testing.T
	dataDir string
	files   *pki.Files
	caPEM   []byte
	admin   *bootstrap.Client
	cluster bootstrap.Cluster
	exited  []<-chan error
}

func TestNodeBootstrapChild(t *testing.T) {
	bin := os.Getenv(childEnv)
	if bin == "" {
		t.Skip("runs only inside TestNodeBootstrapAgainstTheRealAPIServer's network namespace")
	}
	e := startControlPlane(t, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	changed, err := bootstrap.Publish(ctx, e.admin, e.cluster)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("publish applied %d objects", len(changed))
	if again, err := bootstrap.Publish(ctx, e.admin, e.cluster); err != nil || len(again) != 0 {
		t.Errorf("second publish changed %v (%v), want nothing", again, err)
	}

	t.Run("token create, list and delete round-trip as kubeadm's Secret", func(t *testing.T) { testTokens(t, ctx, e) })
	t.Run("cluster-info is readable anonymously, names the VIP and is JWS-signed for each token", func(t *testing.T) { testClusterInfo(t, ctx, e) })
	t.Run("a bootstrap token reads what join reads and gets a node client certificate", func(t *testing.T) { testTLSBootstrap(t, ctx, e) })
	t.Run("an expired token is rejected and cleaned up", func(t *testing.T) { testExpiredToken(t, ctx, e) })
	t.Run("addons applied twice change nothing the second time; a new image is reconciled", func(t *testing.T) { testAddons(t, ctx, e) })
	t.Run("kubeadm token list reads masterd's tokens", func(t *testing.T) { testKubeadmTokenList(t, ctx, e, bin) })
	t.Run("kubeadm join --dry-run discovers the cluster through the VIP", func(t *testing.T) { testKubeadmJoinDryRun(t, ctx, e, bin) })
	t.Run("masterd token create, list and delete as users run them", func(t *testing.T) { testTokenCommands(t, ctx, e) })
	t.Run("the agent's round publishes and reconciles from masterd.yaml, then changes nothing", func(t *testing.T) { testAgentRound(t, ctx, e) })
}

func startControlPlane(t *testing.T, bin string) *env {
	s, err := pki.GenerateSecret(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := pki.DefaultParams()
	p.NodeName, p.NodeAddress, p.VIP = "m1", netip.MustParseAddr(nodeAddr), netip.MustParseAddr(vipAddr)
	p.Peers = []pki.Peer{{Name: "m1", Address: p.NodeAddress}}
	dataDir := t.TempDir()
	f, err := pki.Ensure(filepath.Join(dataDir, "pki"), s, p, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	kubetest.StartEtcd(t, kubetest.EtcdTLS{CA: f.EtcdCA, ServerCert: f.EtcdServer.Cert, ServerKey: f.EtcdServer.Key, PeerCert: f.EtcdPeer.Cert, PeerKey: f.EtcdPeer.Key})

	apiExited := kubetest.StartProc(t, filepath.Join(bin, "kube-apiserver"),
		"--advertise-address="+nodeAddr, "--bind-address=0.0.0.0", "--secure-port=6443",
		"--etcd-servers=https://"+nodeAddr+":2379", "--etcd-cafile="+f.EtcdCA,
		"--etcd-certfile="+f.APIServerEtcdClient.Cert, "--etcd-keyfile="+f.APIServerEtcdClient.Key,
		"--client-ca-file="+f.KubeCA.Cert, "--tls-cert-file="+f.APIServer.Cert, "--tls-private-key-file="+f.APIServer.Key,
		"--service-account-key-file="+f.ServiceAccountPub, "--service-account-signing-key-file="+f.ServiceAccountKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/12", "--authorization-mode=Node,RBAC",
		"--enable-bootstrap-token-auth=true", "--enable-admission-plugins=NodeRestriction", "--allow-privileged=true",
		"--cert-dir="+t.TempDir())
	admin, cr, err := bootstrap.NewClientFromKubeconfig(f.AdminConf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if admin.Server() != "https://"+vipAddr+":6443" {
		t.Fatalf("admin.conf server %s, want the VIP", admin.Server())
	}
	waitFor(t, "kube-apiserver ready through the VIP", apiExited, func() bool {
		return admin.Get(context.Background(), "/readyz", nil) == nil
	})
	cmExited := kubetest.StartProc(t, filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig="+f.ControllerManagerConf, "--authentication-kubeconfig="+f.ControllerManagerConf,
		"--authorization-kubeconfig="+f.ControllerManagerConf,
		"--root-ca-file="+f.KubeCA.Cert, "--cluster-signing-cert-file="+f.KubeCA.Cert, "--cluster-signing-key-file="+f.KubeCA.Key,
		"--service-account-private-key-file="+f.ServiceAccountKey, "--use-service-account-credentials=true",
		"--controllers=*,bootstrapsigner,tokencleaner", "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=10257")
	return &env{t: t, dataDir: dataDir, files: f, caPEM: cr.CAPEM, admin: admin, exited: []<-chan error{apiExited, cmExited},
		cluster: bootstrap.Cluster{Server: admin.Server(), CAPEM: cr.CAPEM, KubernetesVersion: "v1.37.2", ClusterName: "kubernetes",
			ServiceCIDR: p.ServiceCIDR, ClusterDomain: p.ClusterDomain, ImageRepository: "registry.k8s.io", CgroupDriver: "systemd"}}
}

func testTokens(t *testing.T, ctx context.Context, e *env) {
	tok, err := bootstrap.CreateToken(ctx, e.admin, bootstrap.TokenOptions{TTL: time.Hour, Description: "round trip"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var secret struct {
		Type string            `json:"type"`
		Data map[string][]byte `json:"data"`
	}
	if err := e.admin.Get(ctx, "/api/v1/namespaces/kube-system/secrets/bootstrap-token-"+tok.ID, &secret); err != nil {
		t.Fatal(err)
	}
	exp, err := time.Parse(time.RFC3339, string(secret.Data["expiration"]))
	if secret.Type != bootstrap.SecretType || string(secret.Data["token-id"]) != tok.ID || string(secret.Data["token-secret"]) != tok.Secret ||
		string(secret.Data["usage-bootstrap-signing"]) != "true" || string(secret.Data["usage-bootstrap-authentication"]) != "true" ||
		string(secret.Data["auth-extra-groups"]) != bootstrap.NodeBootstrapGroup || err != nil || time.Until(exp) < 58*time.Minute || time.Until(exp) > time.Hour {
		t.Errorf("secret as stored: type %s data %q (expiration %v)", secret.Type, secret.Data, err)
	}
	list, err := bootstrap.ListTokens(ctx, e.admin)
	if err != nil {
		t.Fatal(err)
	}
	var found *bootstrap.TokenInfo
	for i := range list {
		if list[i].ID == tok.ID {
			found = &list[i]
		}
	}
	if found == nil || found.Description != "round trip" || !found.Expires.Equal(exp) || strings.Join(found.Usages, ",") != "authentication,signing" {
		t.Fatalf("list %+v, want %s", list, tok.ID)
	}
	if err := bootstrap.DeleteToken(ctx, e.admin, tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := bootstrap.DeleteToken(ctx, e.admin, tok.ID); err == nil || !strings.Contains(err.Error(), "no token with id") {
		t.Errorf("second delete: %v, want no token with id", err)
	}
	list, _ = bootstrap.ListTokens(ctx, e.admin)
	for _, i := range list {
		if i.ID == tok.ID {
			t.Errorf("token %s still listed after delete", tok.ID)
		}
	}
}

// anonymous is an HTTPS client without credentials that trusts the CA.
func anonymous(caPEM []byte) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func call(c *http.Client, method, url, token string, body []byte) (int, []byte) {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func testClusterInfo(t *testing.T, ctx context.Context, e *env) {
	tok, err := bootstrap.CreateToken(ctx, e.admin, bootstrap.TokenOptions{TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	anon := anonymous(e.caPEM)
	var cm struct {
		Data map[string]string `json:"data"`
	}
	waitFor(t, "cluster-info signed by bootstrapsigner for the new token", nil, func() bool {
		code, body := call(anon, "GET", e.admin.Server()+"/api/v1/namespaces/kube-public/configmaps/cluster-info", "", nil)
		return code == http.StatusOK && json.Unmarshal(body, &cm) == nil && cm.Data["jws-kubeconfig-"+tok.ID] != ""
	}, e.exited...)
	kc := cm.Data["kubeconfig"]
	if !strings.Contains(kc, "server: https://"+vipAddr+":6443\n") || !strings.Contains(kc, base64.StdEncoding.EncodeToString(e.caPEM)) {
		t.Errorf("cluster-info kubeconfig:\n%s", kc)
	}
	// What kubeadm's discovery checks: a detached JWS (HS256, key = the
	// token secret) over the kubeconfig.
	parts := strings.Split(cm.Data["jws-kubeconfig-"+tok.ID], "..")
	if len(parts) != 2 {
		t.Fatalf("signature %q is not a detached JWS", cm.Data["jws-kubeconfig-"+tok.ID])
	}
	mac := hmac.New(sha256.New, []byte(tok.Secret))
	mac.Write([]byte(parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(kc))))
	if want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); parts[1] != want {
		t.Errorf("JWS signature does not verify with the token's secret")
	}
	// Other ConfigMaps are not readable anonymously.
	if code, _ := call(anon, "GET", e.admin.Server()+"/api/v1/namespaces/kube-system/configmaps/kubeadm-config", "", nil); code != http.StatusForbidden {
		t.Errorf("anonymous read of kubeadm-config: %d, want 403", code)
	}
}

func testTLSBootstrap(t *testing.T, ctx context.Context, e *env) {
	tok, err := bootstrap.CreateToken(ctx, e.admin, bootstrap.TokenOptions{TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := anonymous(e.caPEM)
	srv := e.admin.Server()
	// The apiserver authenticates tokens from its informer's cache of
	// Secrets: a token works once the watch has delivered it.
	var code int
	var body []byte
	waitFor(t, "the new token known to the apiserver", nil, func() bool {
		code, body = call(c, "POST", srv+"/apis/authentication.k8s.io/v1/selfsubjectreviews", tok.String(),
			[]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
		return code != http.StatusUnauthorized
	}, e.exited...)
	if code != http.StatusCreated || !strings.Contains(string(body), `"system:bootstrap:`+tok.ID+`"`) || !strings.Contains(string(body), bootstrap.NodeBootstrapGroup) {
		t.Fatalf("token authenticates as: %d %s", code, body)
	}
	for _, path := range []string{"/api/v1/namespaces/kube-system/configmaps/kubeadm-config", "/api/v1/namespaces/kube-system/configmaps/kubelet-config"} {
		if code, body := call(c, "GET", srv+path, tok.String(), nil); code != http.StatusOK {
			t.Errorf("bootstrap token GET %s: %d %s", path, code, body)
		}
	}
	if code, _ := call(c, "GET", srv+"/api/v1/namespaces/kube-system/secrets", tok.String(), nil); code != http.StatusForbidden {
		t.Errorf("bootstrap token lists secrets: %d, want 403", code)
	}
	if code, _ := call(c, "GET", srv+"/api/v1/nodes/w1", tok.String(), nil); code != http.StatusNotFound {
		t.Errorf("bootstrap token GET node w1: %d, want 404 (allowed by kubeadm:get-nodes, absent)", code)
	}
	// The kubelet's CSR, as a kubelet posts it.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:w1", Organization: []string{"system:nodes"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	req := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	csr := `{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{"name":"node-csr-w1"},
		"spec":{"request":"` + req + `","signerName":"kubernetes.io/kube-apiserver-client-kubelet","usages":["digital signature","client auth"]}}`
	if code, body := call(c, "POST", srv+"/apis/certificates.k8s.io/v1/certificatesigningrequests", tok.String(), []byte(csr)); code != http.StatusCreated {
		t.Fatalf("bootstrap token posts a CSR: %d %s", code, body)
	}
	var signed struct {
		Status struct {
			Certificate []byte `json:"certificate"`
			Conditions  []struct {
				Type, Reason string
			} `json:"conditions"`
		} `json:"status"`
	}
	waitFor(t, "the node CSR approved and signed by the controller-manager", nil, func() bool {
		return e.admin.Get(ctx, "/apis/certificates.k8s.io/v1/certificatesigningrequests/node-csr-w1", &signed) == nil && len(signed.Status.Certificate) > 0
	}, e.exited...)
	t.Logf("CSR conditions: %+v", signed.Status.Conditions)
	block, _ := pem.Decode(signed.Status.Certificate)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	nodeClient := anonymous(e.caPEM)
	nodeClient.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}
	code, body = call(nodeClient, "POST", srv+"/apis/authentication.k8s.io/v1/selfsubjectreviews", "",
		[]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
	if code != http.StatusCreated || !strings.Contains(string(body), `"system:node:w1"`) {
		t.Errorf("signed certificate authenticates as: %d %s", code, body)
	}
}

func testExpiredToken(t *testing.T, ctx context.Context, e *env) {
	tok, err := bootstrap.GenerateToken(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A token that expired an hour ago, written directly.
	s := bootstrap.TokenSecret(tok, bootstrap.TokenOptions{TTL: time.Hour}, time.Now().Add(-2*time.Hour))
	if err := e.admin.Create(ctx, "/api/v1/namespaces/kube-system/secrets", s); err != nil {
		t.Fatal(err)
	}
	code, body := call(anonymous(e.caPEM), "GET", e.admin.Server()+"/api/v1/namespaces/kube-system/configmaps/kubeadm-config", tok.String(), nil)
	if code != http.StatusUnauthorized {
		t.Errorf("expired token: %d %s, want 401", code, body)
	}
	waitFor(t, "tokencleaner deletes the expired token", nil, func() bool {
		return bootstrap.IsNotFound(e.admin.Get(ctx, "/api/v1/namespaces/kube-system/secrets/bootstrap-token-"+tok.ID, nil))
	}, e.exited...)
	// A well-formed token nobody created (another cluster's) is no user either.
	other, _ := bootstrap.GenerateToken(rand.Reader)
	if code, _ := call(anonymous(e.caPEM), "GET", e.admin.Server()+"/api/v1/namespaces/kube-system/configmaps/kubeadm-config", other.String(), nil); code != http.StatusUnauthorized {
		t.Errorf("unknown token: %d, want 401", code)
	}
}

// resourceVersions reads each object's version as the API has it.
func resourceVersions(t *testing.T, ctx context.Context, e *env, objs []bootstrap.Object) map[string]string {
	t.Helper()
	rv := map[string]string{}
	for _, o := range objs {
		path, _ := o.Path()
		var got struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
				Generation      int64  `json:"generation"`
			} `json:"metadata"`
		}
		if err := e.admin.Get(ctx, path, &got); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		// Controllers write the status of Deployments and DaemonSets: their
		// spec's version is the generation.
		rv[o.String()] = got.Metadata.ResourceVersion
		if got.Metadata.Generation != 0 {
			rv[o.String()] = fmt.Sprint("generation ", got.Metadata.Generation)
		}
	}
	return rv
}

func testAddons(t *testing.T, ctx context.Context, e *env) {
	cfg := addons.DefaultConfig()
	cfg.Server = e.admin.Server()
	objs, err := addons.Objects(cfg)
	if err != nil {
		t.Fatal(err)
	}
	changed, err := addons.Reconcile(ctx, e.admin, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != len(objs) {
		t.Errorf("first reconcile changed %d of %d objects: %v", len(changed), len(objs), changed)
	}
	before := resourceVersions(t, ctx, e, objs)
	changed, err = addons.Reconcile(ctx, e.admin, cfg)
	if err != nil || len(changed) != 0 {
		t.Errorf("second reconcile changed %v (%v), want nothing", changed, err)
	}
	after := resourceVersions(t, ctx, e, objs)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: version %s -> %s on a reconcile with nothing to do", k, v, after[k])
		}
	}
	var svc struct {
		Spec struct {
			ClusterIP string `json:"clusterIP"`
		} `json:"spec"`
	}
	if err := e.admin.Get(ctx, "/api/v1/namespaces/kube-system/services/kube-dns", &svc); err != nil || svc.Spec.ClusterIP != "10.96.0.10" {
		t.Errorf("kube-dns clusterIP %q (%v), want 10.96.0.10", svc.Spec.ClusterIP, err)
	}

	// An air-gapped mirror: the new image name is reconciled, only the
	// DaemonSet changes.
	cfg.KubeProxy.Image = "mirror.lab:5000/kube-proxy:v1.37.2"
	changed, err = addons.Reconcile(ctx, e.admin, cfg)
	if err != nil || len(changed) != 1 || changed[0] != "DaemonSet kube-system/kube-proxy" {
		t.Errorf("reconcile after an image change: %v (%v), want only the DaemonSet", changed, err)
	}
	var ds struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct{ Image string } `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := e.admin.Get(ctx, "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy", &ds); err != nil ||
		len(ds.Spec.Template.Spec.Containers) != 1 || ds.Spec.Template.Spec.Containers[0].Image != cfg.KubeProxy.Image {
		t.Errorf("kube-proxy DaemonSet after the change: %+v (%v)", ds, err)
	}

	// A hand edit by another field manager is put back.
	patch := []byte(`{"data":{"Corefile":".:53 {\n    errors\n}\n"}}`)
	if err := e.admin.Do(ctx, "PATCH", "/api/v1/namespaces/kube-system/configmaps/coredns?fieldManager=kubectl-edit", "application/merge-patch+json", patch, nil); err != nil {
		t.Fatal(err)
	}
	changed, err = addons.Reconcile(ctx, e.admin, cfg)
	if err != nil || len(changed) != 1 || changed[0] != "ConfigMap kube-system/coredns" {
		t.Errorf("reconcile after a hand edit of the Corefile: %v (%v), want only the coredns ConfigMap", changed, err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := e.admin.Get(ctx, "/api/v1/namespaces/kube-system/configmaps/coredns", &cm); err != nil || !strings.Contains(cm.Data["Corefile"], "kubernetes cluster.local") {
		t.Errorf("Corefile after reconcile: %q (%v)", cm.Data["Corefile"], err)
	}
}

func testKubeadmTokenList(t *testing.T, ctx context.Context, e *env, bin string) {
	kubeadm := filepath.Join(bin, "kubeadm")
	if _, err := os.Stat(kubeadm); err != nil {
		t.Skipf("kubeadm not built in %s (integration/kube/build.sh builds it)", bin)
	}
	tok, err := bootstrap.CreateToken(ctx, e.admin, bootstrap.TokenOptions{TTL: time.Hour, Description: "for kubeadm"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, kubeadm, "token", "list", "--kubeconfig", e.files.AdminConf).CombinedOutput()
	t.Logf("kubeadm token list:\n%s", out)
	if err != nil || !strings.Contains(string(out), tok.ID) || !strings.Contains(string(out), "for kubeadm") ||
		!strings.Contains(string(out), "authentication,signing") || !strings.Contains(string(out), bootstrap.NodeBootstrapGroup) {
		t.Errorf("kubeadm token list does not show %s: %v", tok.ID, err)
	}
}

// waitFor polls cond every 200 ms until it holds, a process exits or 3
// minutes pass.
func waitFor(t *testing.T, what string, exited <-chan error, cond func() bool, more ...<-chan error) {
	t.Helper()
	chans := append([]<-chan error{exited}, more...)
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
		if cond() {
			return
		}
		for _, ch := range chans {
			if ch == nil {
				continue
			}
			select {
			case err := <-ch:
				t.Fatalf("%s: a control-plane process exited: %v", what, err)
			default:
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: timed out", what)
}

// kubeadmJoin runs `kubeadm join --dry-run` as its command line would
// (preflight errors ignored: no container runtime here; discovery bounded
// to discovery, through the JoinConfiguration the flags stand for) and
// returns its output.
func kubeadmJoin(ctx context.Context, kubeadm, server, token, hash, discovery string) (string, error) {
	host, _ := bootstrap.HostPort(server)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "kubeadm-join-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	config := filepath.Join(dir, "join.yaml")
	text := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: %q
    token: %q
    caCertHashes: [%q]
  tlsBootstrapToken: %q
nodeRegistration:
  name: w1
  ignorePreflightErrors: [all]
timeouts:
  discovery: %s
`, host, token, hash, token, discovery)
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, kubeadm, "join", "--config", config, "--dry-run", "-v=1").CombinedOutput()
	return string(out), err
}

func testKubeadmJoinDryRun(t *testing.T, ctx context.Context, e *env, bin string) {
	kubeadm := filepath.Join(bin, "kubeadm")
	if _, err := os.Stat(kubeadm); err != nil {
		t.Skipf("kubeadm not built in %s (integration/kube/build.sh builds it)", bin)
	}
	tok, err := bootstrap.CreateToken(ctx, e.admin, bootstrap.TokenOptions{TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := bootstrap.JoinCommand(e.admin.Server(), e.caPEM, tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("join command: %s", cmd)
	hash, _ := bootstrap.CAHash(e.caPEM)
	var cm struct {
		Data map[string]string `json:"data"`
	}
	waitFor(t, "cluster-info signed for the join token", nil, func() bool {
		return e.admin.Get(ctx, "/api/v1/namespaces/kube-public/configmaps/cluster-info", &cm) == nil && cm.Data["jws-kubeconfig-"+tok.ID] != ""
	}, e.exited...)
	out, err := kubeadmJoin(ctx, kubeadm, e.admin.Server(), tok.String(), hash, "60s")
	if err != nil {
		t.Logf("kubeadm join --dry-run:\n%s", out)
		t.Fatalf("kubeadm join --dry-run: %v", err)
	}
	for _, want := range []string{
		`Resource name "cluster-info", namespace "kube-public"`,
		`Resource name "kubeadm-config", namespace "kube-system"`,
		`Resource name "kubelet-config", namespace "kube-system"`,
		`Resource name "kube-proxy", namespace "kube-system"`,
		"[kubelet-start] Writing kubelet configuration",
		"This node has joined the cluster",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubeadm join --dry-run output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("kubeadm join --dry-run:\n%s", out)
	}

	// Bad input fails with kubeadm's usual messages: a wrong CA hash, an
	// expired token (the tokencleaner deleted it, the signer dropped its
	// signature) and a token of another cluster.
	wrong := "sha256:" + strings.Repeat("0", 64)
	out, err = kubeadmJoin(ctx, kubeadm, e.admin.Server(), tok.String(), wrong, "60s")
	if err == nil || !strings.Contains(out, "none of the public keys") {
		t.Errorf("kubeadm join with a wrong CA hash: %v\n%s", err, out)
	}
	expired, err := bootstrap.GenerateToken(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Create(ctx, "/api/v1/namespaces/kube-system/secrets", bootstrap.TokenSecret(expired, bootstrap.TokenOptions{TTL: time.Minute}, time.Now().Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	other, _ := bootstrap.GenerateToken(rand.Reader)
	for name, bad := range map[string]bootstrap.Token{"an expired token": expired, "a token of another cluster": other} {
		// cluster-info never gets a signature for the token: discovery
		// waits for one until its timeout. (In a dry run kubeadm then
		// swaps in its placeholder token abcdef, whose signature is
		// missing too: the message names that id.)
		out, err = kubeadmJoin(ctx, kubeadm, e.admin.Server(), bad.String(), hash, "8s")
		if err == nil || !strings.Contains(out, "could not find a JWS signature in the cluster-info ConfigMap") ||
			strings.Contains(out, "This node has joined the cluster") {
			t.Errorf("kubeadm join with %s: %v\n%s", name, err, out)
		}
		if !strings.Contains(out, `Waiting for the cluster-info ConfigMap to receive a JWS signature for token ID "`+bad.ID+`"`) {
			t.Errorf("kubeadm join with %s did not look for its signature", name)
		}
	}
}

// masterdCmd runs the masterd binary with a configuration for this lab and
// returns its exit code, stdout and stderr.
func masterdCmd(t *testing.T, ctx context.Context, e *env, args ...string) (int, string, string) {
	t.Helper()
	bin := os.Getenv(masterdEnv)
	config := filepath.Join(e.dataDir, "masterd.yaml")
	if _, err := os.Stat(config); err != nil {
		text := "name: m1\naddress: " + nodeAddr + "\npeers:\n  - {name: m1, address: " + nodeAddr + "}\n" +
			"dataDir: " + e.dataDir + "\nclusterKeyFile: " + filepath.Join(e.dataDir, "cluster.key") + "\n" +
			"vip:\n  enabled: true\n  address: " + vipAddr + "\n"
		if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append(args, "--config", config)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("masterd %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

func testTokenCommands(t *testing.T, ctx context.Context, e *env) {
	code, out, errOut := masterdCmd(t, ctx, e, "token", "create", "--ttl", "2h", "--description", "from the cli")
	if code != 0 {
		t.Fatalf("masterd token create: exit %d: %s", code, errOut)
	}
	tok, err := bootstrap.ParseToken(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("masterd token create printed %q: %v", out, err)
	}
	code, out, errOut = masterdCmd(t, ctx, e, "token", "list")
	t.Logf("masterd token list:\n%s", out)
	if code != 0 || !strings.Contains(out, tok.ID) || !strings.Contains(out, "from the cli") || strings.Contains(out, tok.Secret) {
		t.Errorf("masterd token list: exit %d, stdout %q, stderr %q: want the id and description, never the secret", code, out, errOut)
	}

	code, out, errOut = masterdCmd(t, ctx, e, "token", "create", "--print-join-command")
	hash, _ := bootstrap.CAHash(e.caPEM)
	fields := strings.Fields(out)
	if code != 0 || len(fields) != 7 || strings.Join(fields[:3], " ") != "kubeadm join "+vipAddr+":6443" || fields[3] != "--token" ||
		fields[5] != "--discovery-token-ca-cert-hash" || fields[6] != hash {
		t.Fatalf("masterd token create --print-join-command: exit %d, %q, %s", code, out, errOut)
	}
	t.Logf("join command: %s", strings.TrimSpace(out))
	if kubeadm := filepath.Join(filepath.Dir(os.Getenv(childEnv)), "kubeadm"); fileExists(kubeadm) {
		// The printed command, run (dry) as a user pastes it.
		var cm struct {
			Data map[string]string `json:"data"`
		}
		id, _, _ := strings.Cut(fields[4], ".")
		waitFor(t, "cluster-info signed for the printed token", nil, func() bool {
			return e.admin.Get(ctx, "/api/v1/namespaces/kube-public/configmaps/cluster-info", &cm) == nil && cm.Data["jws-kubeconfig-"+id] != ""
		}, e.exited...)
		jout, err := kubeadmJoin(ctx, kubeadm, "https://"+fields[2], fields[4], fields[6], "60s")
		if err != nil || !strings.Contains(jout, "This node has joined the cluster") {
			t.Errorf("the printed join command (dry run): %v\n%s", err, jout)
		}
	}

	code, out, errOut = masterdCmd(t, ctx, e, "token", "create", "--bootstrap-kubeconfig")
	if code != 0 || !strings.Contains(out, "server: https://"+vipAddr+":6443") {
		t.Fatalf("masterd token create --bootstrap-kubeconfig: exit %d, %q, %s", code, out, errOut)
	}
	kc := filepath.Join(t.TempDir(), "bootstrap-kubelet.conf")
	if err := os.WriteFile(kc, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	// The kubeconfig works as a kubelet would use it: kubectl with it is
	// the bootstrap user.
	if kubectl := filepath.Join(filepath.Dir(os.Getenv(childEnv)), "kubectl"); fileExists(kubectl) {
		var kout []byte
		var err error
		waitFor(t, "kubectl auth whoami with the bootstrap kubeconfig", nil, func() bool {
			kout, err = exec.CommandContext(ctx, kubectl, "--kubeconfig", kc, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").CombinedOutput()
			return !strings.Contains(string(kout), "Unauthorized") // the apiserver's cache has the new token
		}, e.exited...)
		if err != nil || !strings.HasPrefix(string(kout), "system:bootstrap:") {
			t.Errorf("kubectl auth whoami with the bootstrap kubeconfig: %v %s", err, kout)
		}
	}

	if code, out, errOut = masterdCmd(t, ctx, e, "token", "delete", tok.ID); code != 0 || !strings.Contains(out, tok.ID) {
		t.Errorf("masterd token delete: exit %d, %q, %s", code, out, errOut)
	}
	if code, _, errOut = masterdCmd(t, ctx, e, "token", "delete", tok.ID); code != 1 || !strings.Contains(errOut, "no token with id") {
		t.Errorf("masterd token delete of a deleted token: exit %d, stderr %q; want 1 and no token with id", code, errOut)
	}
	if code, _, errOut = masterdCmd(t, ctx, e, "token", "delete", "NOT-AN-ID"); code != 1 || !strings.Contains(errOut, "is not [a-z0-9]{6}") {
		t.Errorf("masterd token delete NOT-AN-ID: exit %d, stderr %q", code, errOut)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func testAgentRound(t *testing.T, ctx context.Context, e *env) {
	masterdCmd(t, ctx, e, "version") // writes masterd.yaml
	cfg, err := agent.LoadConfig(filepath.Join(e.dataDir, "masterd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	nc := agent.DefaultNodesConfig()
	nc.CoreDNS.Image = "mirror.lab:5000/coredns:v1.14.6"
	changed, err := agent.ReconcileNodes(ctx, cfg, nc)
	if err != nil {
		t.Fatal(err)
	}
	// Earlier subtests applied everything with the default images (and
	// another kube-proxy image): the round puts back masterd.yaml's.
	t.Logf("first round changed %v", changed)
	if !slices.Contains(changed, "Deployment kube-system/coredns") || !slices.Contains(changed, "DaemonSet kube-system/kube-proxy") {
		t.Errorf("first round changed %v, want the coredns Deployment and the kube-proxy DaemonSet", changed)
	}
	if again, err := agent.ReconcileNodes(ctx, cfg, nc); err != nil || len(again) != 0 {
		t.Errorf("second round changed %v (%v), want nothing", again, err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := e.admin.Get(ctx, "/api/v1/namespaces/kube-system/configmaps/kube-proxy", &cm); err != nil ||
		!strings.Contains(cm.Data["kubeconfig.conf"], "server: https://"+vipAddr+":6443\n") {
		t.Errorf("kube-proxy kubeconfig from the agent's round: %q (%v), want the VIP", cm.Data["kubeconfig.conf"], err)
	}
}
