package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/internal/kubetest"
)

// The real kube-apiserver against an embedded etcd, both on files from
// Ensure. The parent test makes a network namespace and re-runs this test
// binary inside it (so every socket of etcd, the apiserver and the HTTP
// clients lives there); the child does the work.

const kubeChildEnv = "PKI_KUBE_TEST_CHILD"

// kubeBin is the kube-apiserver binary; the test is skipped without one.
func kubeBin(t *testing.T) string {
	t.Helper()
	return filepath.Join(kubetest.BinDir(t), "kube-apiserver")
}

// etcdTLS is the files of the embedded etcd member's mutual TLS.
func etcdTLS(f *Files) kubetest.EtcdTLS {
	return kubetest.EtcdTLS{CA: f.EtcdCA, ServerCert: f.EtcdServer.Cert, ServerKey: f.EtcdServer.Key, PeerCert: f.EtcdPeer.Cert, PeerKey: f.EtcdPeer.Key}
}

func TestKubeAPIServerServesWithOurPKI(t *testing.T) {
	if os.Getenv(kubeChildEnv) != "" {
		t.Skip("child process")
	}
	bin := kubeBin(t)
	kubetest.RunChild(t, fmt.Sprintf("pki-%d-kube", os.Getpid()), "TestKubeAPIServerChild", kubeChildEnv+"="+bin)
}

func TestKubeAPIServerChild(t *testing.T) {
	bin := os.Getenv(kubeChildEnv)
	if bin == "" {
		t.Skip("runs only inside TestKubeAPIServerServesWithOurPKI's network namespace")
	}
	s, p := testSecret(t), testParams()
	p.Peers = p.Peers[:1]
	now := time.Now()
	f := mustEnsure(t, filepath.Join(t.TempDir(), "pki"), s, p, now)

	// etcd: one member with mutual TLS on both ports.
	kubetest.StartEtcd(t, etcdTLS(f))

	args := []string{
		"--advertise-address=10.10.0.1", "--bind-address=0.0.0.0", "--secure-port=6443",
		"--etcd-servers=https://10.10.0.1:2379", "--etcd-cafile=" + f.EtcdCA,
		"--etcd-certfile=" + f.APIServerEtcdClient.Cert, "--etcd-keyfile=" + f.APIServerEtcdClient.Key,
		"--client-ca-file=" + f.KubeCA.Cert,
		"--tls-cert-file=" + f.APIServer.Cert, "--tls-private-key-file=" + f.APIServer.Key,
		"--kubelet-client-certificate=" + f.APIServerKubeletClient.Cert, "--kubelet-client-key=" + f.APIServerKubeletClient.Key,
		"--proxy-client-cert-file=" + f.FrontProxyClient.Cert, "--proxy-client-key-file=" + f.FrontProxyClient.Key,
		"--requestheader-client-ca-file=" + f.FrontProxyCA, "--requestheader-allowed-names=" + FrontProxyClientName,
		"--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--service-account-key-file=" + f.ServiceAccountPub, "--service-account-signing-key-file=" + f.ServiceAccountKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/12", "--authorization-mode=Node,RBAC",
		"--cert-dir=" + t.TempDir(),
	}
	exited := kubetest.StartProc(t, bin, args...)
	admin := kubeClient(t, f.AdminConf)
	waitFor(t, "kube-apiserver ready via the VIP with admin.conf", exited, func() bool {
		code, _ := admin.call("GET", "/readyz", "", nil)
		return code == http.StatusOK
	})

	// Each kubeconfig authenticates as its user.
	for _, kc := range []struct{ path, user, group string }{
		{f.AdminConf, AdminName, MastersGroup},
		{f.SchedulerConf, SchedulerName, ""},
		{f.ControllerManagerConf, ControllerManagerName, ""},
	} {
		c := kubeClient(t, kc.path)
		user, groups := c.whoami(t, "")
		t.Logf("%s (server %s) authenticates as %s, groups %s", filepath.Base(kc.path), c.server, user, groups)
		if user != kc.user || (kc.group != "" && !strings.Contains(groups, kc.group)) {
			t.Errorf("%s authenticates as %q %s", filepath.Base(kc.path), user, groups)
		}
	}
	if code, body := kubeClient(t, f.SchedulerConf).call("GET", "/api/v1/nodes", "", nil); code != http.StatusOK {
		t.Errorf("scheduler lists nodes: %d %s", code, body)
	}

	// A service-account token signed with sa.key is accepted (ES256).
	if code, body := admin.call("POST", "/api/v1/namespaces/default/serviceaccounts", "", []byte(`{"metadata":{"name":"pki-test"}}`)); code != http.StatusCreated {
		t.Fatalf("create service account: %d %s", code, body)
	}
	code, body := admin.call("POST", "/api/v1/namespaces/default/serviceaccounts/pki-test/token", "", []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{}}`))
	var tr struct {
		Status struct{ Token string } `json:"status"`
	}
	if code != http.StatusCreated || json.Unmarshal(body, &tr) != nil || tr.Status.Token == "" {
		t.Fatalf("token request: %d %s", code, body)
	}
	anon := kubeClient(t, "")
	user, _ := anon.whoami(t, tr.Status.Token)
	t.Logf("service-account token (ES256, sa.key) authenticates as %s", user)
	if user != "system:serviceaccount:default:pki-test" {
		t.Errorf("service-account token authenticates as %q", user)
	}

	// The front-proxy client certificate may assert a user (aggregation layer).
	fp := kubeClient(t, "")
	fp.http.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{keyPair(t, f.FrontProxyClient)}
	fp.header = http.Header{"X-Remote-User": {"alice"}, "X-Remote-Group": {"team-a"}}
	if user, groups := fp.whoami(t, ""); user != "alice" || !strings.Contains(groups, "team-a") {
		t.Errorf("front-proxy request authenticates as %q %s, want alice in team-a", user, groups)
	}

	t.Run("kube-scheduler runs on scheduler.conf", func(t *testing.T) {
		sched := sibling(t, bin, "kube-scheduler")
		exited := kubetest.StartProc(t, sched, "--kubeconfig="+f.SchedulerConf, "--authentication-kubeconfig="+f.SchedulerConf,
			"--authorization-kubeconfig="+f.SchedulerConf, "--leader-elect=true", "--bind-address=127.0.0.1", "--secure-port=10259")
		waitFor(t, "scheduler holds its lease", exited, func() bool {
			return leaseHolder(admin, "kube-scheduler") != ""
		})
	})
	t.Run("kube-controller-manager runs on controller-manager.conf, ca.key and sa.key", func(t *testing.T) {
		cmBin := sibling(t, bin, "kube-controller-manager")
		exited := kubetest.StartProc(t, cmBin, "--kubeconfig="+f.ControllerManagerConf,
			"--authentication-kubeconfig="+f.ControllerManagerConf, "--authorization-kubeconfig="+f.ControllerManagerConf,
			"--root-ca-file="+f.KubeCA.Cert, "--cluster-signing-cert-file="+f.KubeCA.Cert, "--cluster-signing-key-file="+f.KubeCA.Key,
			"--service-account-private-key-file="+f.ServiceAccountKey, "--use-service-account-credentials=true",
			"--leader-elect=true", "--bind-address=127.0.0.1", "--secure-port=10257")
		waitFor(t, "controller-manager holds its lease", exited, func() bool {
			return leaseHolder(admin, "kube-controller-manager") != ""
		})
		caPEM, _ := os.ReadFile(f.KubeCA.Cert)
		waitFor(t, "kube-root-ca.crt published", exited, func() bool {
			code, body := admin.call("GET", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt", "", nil)
			var cm struct{ Data map[string]string }
			return code == http.StatusOK && json.Unmarshal(body, &cm) == nil && cm.Data["ca.crt"] == string(caPEM)
		})
		// A CSR for an apiserver client is signed with ca.key.
		key, err := newKey()
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "pki-csr-user"}}, key)
		if err != nil {
			t.Fatal(err)
		}
		req := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
		csrPath := "/apis/certificates.k8s.io/v1/certificatesigningrequests"
		if code, body := admin.call("POST", csrPath, "", []byte(`{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest",
			"metadata":{"name":"pki-test"},"spec":{"request":"`+req+`","signerName":"kubernetes.io/kube-apiserver-client",
			"usages":["client auth"],"expirationSeconds":3600}}`)); code != http.StatusCreated {
			t.Fatalf("create csr: %d %s", code, body)
		}
		code, body := admin.call("GET", csrPath+"/pki-test", "", nil)
		var obj map[string]any
		if code != http.StatusOK || json.Unmarshal(body, &obj) != nil {
			t.Fatalf("get csr: %d %s", code, body)
		}
		obj["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Approved", "status": "True", "reason": "PKITest", "message": "approved by the pki test"}}}
		approval, _ := json.Marshal(obj)
		if code, body := admin.call("PUT", csrPath+"/pki-test/approval", "", approval); code != http.StatusOK {
			t.Fatalf("approve csr: %d %s", code, body)
		}
		var signed *x509.Certificate
		waitFor(t, "csr signed", exited, func() bool {
			code, body := admin.call("GET", csrPath+"/pki-test", "", nil)
			var csr struct {
				Status struct{ Certificate []byte } `json:"status"`
			}
			if code != http.StatusOK || json.Unmarshal(body, &csr) != nil || len(csr.Status.Certificate) == 0 {
				return false
			}
			signed, err = parseCertPEM(csr.Status.Certificate)
			return err == nil
		})
		if err := verifyChain(signed, nil, []*x509.Certificate{s.KubeCA.Cert}, clientOnly, time.Now()); err != nil || signed.Subject.CommonName != "pki-csr-user" {
			t.Errorf("signed certificate %q: %v", signed.Subject.CommonName, err)
		}
		t.Logf("controller-manager signed %q with the kube CA, expires %s", signed.Subject.CommonName, signed.NotAfter.Format(time.RFC3339))
	})

	// A client certificate of another cluster is not a user here.
	foreign := mustEnsure(t, t.TempDir(), testSecret(t), p, now)
	fc := kubeClient(t, foreign.AdminConf)
	fc.http.Transport.(*http.Transport).TLSClientConfig.RootCAs = admin.http.Transport.(*http.Transport).TLSClientConfig.RootCAs
	if code, _ := fc.call("GET", "/api/v1/nodes", "", nil); code != http.StatusUnauthorized {
		t.Errorf("foreign admin certificate: status %d, want 401", code)
	}
}

type kubeHTTP struct {
	http   *http.Client
	server string
	header http.Header
}

// kubeClient speaks to the apiserver as the kubeconfig at path says; with
// an empty path, to https://10.10.0.1:6443 without a client certificate.
func kubeClient(t *testing.T, path string) *kubeHTTP {
	t.Helper()
	cfg := &tls.Config{}
	server := "https://10.10.0.1:6443"
	if path != "" {
		kc := mustLoadKubeconfig(t, path)
		cfg.RootCAs = x509.NewCertPool()
		for _, c := range kc.cas {
			cfg.RootCAs.AddCert(c)
		}
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{kc.cert.Raw}, PrivateKey: kc.key}}
		server = kc.server
	} else {
		cfg.InsecureSkipVerify = true
	}
	return &kubeHTTP{http: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, server: server}
}

func (k *kubeHTTP) call(method, path, token string, body []byte) (int, []byte) {
	req, err := http.NewRequest(method, k.server+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	for k, v := range k.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// whoami asks the apiserver who the caller is (SelfSubjectReview).
func (k *kubeHTTP) whoami(t *testing.T, token string) (string, string) {
	t.Helper()
	code, body := k.call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", token,
		[]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
	var r struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if code != http.StatusCreated || json.Unmarshal(body, &r) != nil {
		t.Errorf("selfsubjectreview: %d %s", code, body)
	}
	return r.Status.UserInfo.Username, strings.Join(r.Status.UserInfo.Groups, ",")
}

// sibling is another kube binary next to the apiserver, or a skip.
func sibling(t *testing.T, apiserver, name string) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(apiserver), name)
	if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
		t.Skipf("%s not built next to %s", name, apiserver)
	}
	return p
}

// leaseHolder is the holder of a kube-system Lease, or "".
func leaseHolder(c *kubeHTTP, name string) string {
	code, body := c.call("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"+name, "", nil)
	var l struct {
		Spec struct {
			HolderIdentity string `json:"holderIdentity"`
		} `json:"spec"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &l) != nil {
		return ""
	}
	return l.Spec.HolderIdentity
}

// waitFor polls cond every second until it holds, the process exits or
// the time is up.
func waitFor(t *testing.T, what string, exited <-chan error, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(4 * time.Minute); time.Now().Before(deadline); {
		if cond() {
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("%s: process exited: %v", what, err)
		case <-time.After(time.Second):
		}
	}
	t.Fatalf("%s: timed out", what)
}
