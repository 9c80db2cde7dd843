package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/pki"
)

// saToken asks the apiserver for a token of service account default/robot.
func (l *secLab) saToken(ctx context.Context) (token, kid string) {
	l.t.Helper()
	body := l.must(ctx, http.StatusCreated, http.MethodPost, "/api/v1/namespaces/default/serviceaccounts/robot/token",
		`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}}`)
	var tr struct {
		Status struct{ Token string } `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &tr); err != nil || tr.Status.Token == "" {
		l.t.Fatalf("TokenRequest: %v\n%s", err, body)
	}
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(tr.Status.Token, ".")[0])
	if err != nil {
		l.t.Fatal(err)
	}
	var hdr struct{ Kid string }
	if err := json.Unmarshal(h, &hdr); err != nil {
		l.t.Fatal(err)
	}
	return tr.Status.Token, hdr.Kid
}

// whoami returns the status of a SelfSubjectReview made with token and the
// user it names.
func (l *secLab) whoami(ctx context.Context, token string) (int, string) {
	code, body := l.do(ctx, l.client("", "", token), http.MethodPost, "/apis/authentication.k8s.io/v1/selfsubjectreviews",
		`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	var r struct {
		Status struct {
			UserInfo struct{ Username string } `json:"userInfo"`
		} `json:"status"`
	}
	_ = json.Unmarshal([]byte(body), &r)
	return code, r.Status.UserInfo.Username
}

func genKID(t *testing.T, n *node, gen int) string {
	t.Helper()
	k, err := n.secret.ServiceAccountKeyGen(gen)
	if err != nil {
		t.Fatal(err)
	}
	id, err := pki.KeyID(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A real kube-apiserver started with the flags kubeConfig generates signs
// and verifies service-account tokens through masterd's signer: a rotation
// (RotateServiceAccountKey, the path of `masterd keys
// rotate-service-account`) switches the signing key and later removes the
// old one with the same apiserver process running throughout; tokens of
// the old key verify until the removal and are refused after it; sa.key
// (the controller-manager's) follows the signing generation.
func TestServiceAccountKeyRotatesWithoutAnAPIServerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	l := newSecLab(t, ctx)
	pid := l.api.Process.Pid
	const user = "system:serviceaccount:default:robot"
	l.must(ctx, http.StatusCreated, http.MethodPost, "/api/v1/namespaces/default/serviceaccounts",
		`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"robot"}}`)

	tok0, kid0 := l.saToken(ctx)
	if kid0 != genKID(t, l.n, 0) {
		t.Fatalf("token kid %s, want generation 0's %s", kid0, genKID(t, l.n, 0))
	}
	if code, who := l.whoami(ctx, tok0); code != http.StatusCreated || who != user {
		t.Fatalf("generation 0 token: %d %q", code, who)
	}

	cli := l.member.Client()
	var steps []string
	progress := func(s KeyRollStep) { steps = append(steps, s.Record.String()) }
	r, err := RotateServiceAccountKey(ctx, l.n.cfg, cli, 30*time.Second, false, progress)
	if !errors.Is(err, ErrServiceAccountKeyKept) || r.Step != RollStepUse || r.Primary != 1 {
		t.Fatalf("first run: %v (%+v), want it stopped at the use step with generation 1 signing", err, r)
	}
	if !strings.Contains(err.Error(), "run the command again after") {
		t.Errorf("the stop does not say what to do: %v", err)
	}
	t.Logf("first run: %v; %s", steps, err)
	tok1, kid1 := l.saToken(ctx)
	if kid1 != genKID(t, l.n, 1) {
		t.Fatalf("token after the switch has kid %s, want generation 1's %s", kid1, genKID(t, l.n, 1))
	}
	for i, tok := range []string{tok0, tok1} {
		if code, who := l.whoami(ctx, tok); code != http.StatusCreated || who != user {
			t.Fatalf("token %d after the switch: %d %q", i, code, who)
		}
	}
	data, err := os.ReadFile(l.n.files.ServiceAccountKey)
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := l.n.secret.ServiceAccountKeyGen(1)
	if !keyFileHolds(t, data, k1.(*ecdsa.PrivateKey)) {
		t.Fatal("sa.key does not hold generation 1 after the switch")
	}

	// Too early without --remove-now: still stopped, nothing changed.
	if _, err := RotateServiceAccountKey(ctx, l.n.cfg, cli, 30*time.Second, false, nil); !errors.Is(err, ErrServiceAccountKeyKept) {
		t.Fatalf("second run before the keep time: %v, want it stopped again", err)
	}
	steps = nil
	r, err = RotateServiceAccountKey(ctx, l.n.cfg, cli, 30*time.Second, true, progress)
	if err != nil || r.Step != RollStepIdle || len(r.Generations) != 1 || r.Primary != 1 {
		t.Fatalf("run with remove-now: %v (%+v)", err, r)
	}
	t.Logf("remove-now: %v", steps)
	// The apiserver drops the key at its next fetch (the refresh hint).
	removed := time.Now()
	l.waitFor(ctx, "generation 0 token refused", func() bool {
		code, _ := l.whoami(ctx, tok0)
		return code == http.StatusUnauthorized
	})
	t.Logf("generation 0 token refused %.1fs after the removal", time.Since(removed).Seconds())
	if code, who := l.whoami(ctx, tok1); code != http.StatusCreated || who != user {
		t.Fatalf("generation 1 token after the removal: %d %q", code, who)
	}
	select {
	case <-l.exited:
		t.Fatal("kube-apiserver exited during the rotation")
	default:
	}
	if l.api.Process.Pid != pid {
		t.Fatal("kube-apiserver was restarted")
	}
	st := l.signer.Status().(KeyRingStatus)
	if len(st.Generations) != 1 || st.Generations[0] != 1 || st.Primary != 1 || st.Error != "" {
		t.Fatalf("status %+v, want generation 1 alone", st)
	}
}

func keyFileHolds(t *testing.T, data []byte, want *ecdsa.PrivateKey) bool {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		return false
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := k.(*ecdsa.PrivateKey)
	return ok && got.Equal(want)
}
