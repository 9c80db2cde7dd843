package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The hand-over's requests, against a stand-in apiserver that records
// them: the Lease is read, written back free (no holderIdentity,
// leaseDurationSeconds 1) under the resourceVersion read, read again and
// rewritten when a renewal of the dead instance landed in between (409),
// and left alone when it is free or absent. The real apiserver and real
// components are in integration/scenarios (TestTakeoverOfLeaderOnlyComponents).
func TestLeaseHandOverReleasesUnderTheResourceVersionItRead(t *testing.T) {
	var mu sync.Mutex
	rv, holder, conflicts := 5, "m1_abc", 1
	var puts []map[string]any
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler" {
			http.NotFound(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet:
			spec := map[string]any{"leaseDurationSeconds": 15, "leaseTransitions": 3}
			if holder != "" {
				spec["holderIdentity"] = holder
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
				"metadata": map[string]any{"name": "kube-scheduler", "namespace": "kube-system", "resourceVersion": fmt.Sprint(rv)}, "spec": spec})
		case http.MethodPut:
			var obj map[string]any
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &obj)
			puts = append(puts, obj)
			if conflicts > 0 { // a renewal landed between the read and the write
				conflicts--
				rv++
				w.WriteHeader(http.StatusConflict)
				_, _ = io.WriteString(w, `{"message":"the object has been modified"}`)
				return
			}
			if obj["metadata"].(map[string]any)["resourceVersion"] != fmt.Sprint(rv) {
				w.WriteHeader(http.StatusConflict)
				return
			}
			holder, rv = "", rv+1
			_, _ = w.Write(b)
		}
	}))
	defer srv.Close()
	kubeconfig := writeTestKubeconfig(t, srv)

	l := componentLease("kube-scheduler", kubeconfig, nil)
	prev, err := l.handOver(t.Context())
	if err != nil || prev != "m1_abc" {
		t.Fatalf("handOver: %q, %v; want the previous holder m1_abc", prev, err)
	}
	if len(puts) != 2 {
		t.Fatalf("%d writes, want 2 (one refused with 409, one after reading again)", len(puts))
	}
	for i, want := range []string{"5", "6"} {
		meta, spec := puts[i]["metadata"].(map[string]any), puts[i]["spec"].(map[string]any)
		if meta["resourceVersion"] != want {
			t.Errorf("write %d: resourceVersion %v, want %s (the one read)", i, meta["resourceVersion"], want)
		}
		if _, ok := spec["holderIdentity"]; ok || spec["leaseDurationSeconds"] != float64(1) || spec["leaseTransitions"] != float64(3) {
			t.Errorf("write %d: spec %v, want no holder, leaseDurationSeconds 1, leaseTransitions kept", i, spec)
		}
	}
	// Free now: nothing to write.
	if prev, err := l.handOver(t.Context()); err != nil || prev != "" || len(puts) != 2 {
		t.Fatalf("hand-over of a free Lease: %q, %v, %d writes; want nothing done", prev, err, len(puts))
	}
	// Absent (another name): nothing to do, no error.
	other := componentLease("kube-scheduler", kubeconfig, map[string]string{"leader-elect-resource-name": "elsewhere"})
	if prev, err := other.handOver(t.Context()); err != nil || prev != "" {
		t.Fatalf("hand-over of an absent Lease: %q, %v", prev, err)
	}
}

func writeTestKubeconfig(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "system:kube-scheduler"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(typ string, der []byte) string {
		return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: k, cluster: {server: %q, certificate-authority-data: %s}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
current-context: c
users: [{name: u, user: {client-certificate-data: %s, client-key-data: %s}}]
`, srv.URL, b64("CERTIFICATE", srv.Certificate().Raw), b64("CERTIFICATE", der), b64("EC PRIVATE KEY", keyDER))
	p := filepath.Join(t.TempDir(), "scheduler.conf")
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
