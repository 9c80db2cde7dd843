package agent

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/masterd/masterd/pki"
	"github.com/masterd/masterd/tokensigner"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Service-account key rotation (issue 24; the roll itself: keyroll.go).
//
// In managed mode with masterd's own PKI, kube-apiserver does not read the
// service-account key files: masterd serves it the external token signer
// (package tokensigner) on a Unix socket in dataDir, and the apiserver signs
// and verifies through it. The signer's keys are the generations of the
// agreed ring (pki.Secret.ServiceAccountKeyGen), so a rotation reaches the
// running apiservers without a restart: install (the new key verifies),
// use (it signs), and, once every token the old key signed expired
// (tokensigner.DefaultMaxTokenLifetime, the longest token the apiservers
// issue), remove. The controller-manager signs legacy token Secrets with
// sa.key, which follows the signing generation; it is restarted in place
// (its role kept) when sa.key changes.
//
// Tokens signed before masterd served the signer (by an apiserver reading
// sa.key) name generation 0's key by the same key id, so they stay valid.
// With pki.externalDir the operator's key files are used as before and the
// rotation is refused.

// Keys of the service-account key ring record and its acknowledgements.
const (
	ServiceAccountKeysKey       = "/masterd/service-account-keys"
	ServiceAccountKeysAckPrefix = "/masterd/service-account-keys-ack/"
)

// serviceAccountKeysFile is the ring last applied, in dataDir.
const serviceAccountKeysFile = "service-account-keys.json"

// signerSocketName is the signer's socket in dataDir (0700, root's: the
// apiserver runs as root).
const signerSocketName = "sa-signer.sock"

// ServiceAccountKeyKeep is how long after the new key signs the old one
// still verifies: every token it signed has expired by then.
const ServiceAccountKeyKeep = tokensigner.DefaultMaxTokenLifetime + 10*time.Minute

var saRoll = keyRoll{what: "service-account keys", key: ServiceAccountKeysKey, ackPrefix: ServiceAccountKeysAckPrefix, maxGen: pki.MaxServiceAccountKeyGeneration}

// externalSigner reports whether masterd serves the apiserver's token
// signer: it runs the apiserver and generates the PKI.
func externalSigner(cfg Config) bool {
	return cfg.Kubernetes.Mode == "managed" && cfg.PKI.ExternalDir == ""
}

func (n *node) signerSocket() string { return filepath.Join(n.cfg.DataDir, signerSocketName) }

// savedServiceAccountSigner is the signing generation of the ring this
// master applied last (0 before any rotation), read from dataDir.
func savedServiceAccountSigner(dataDir string) int {
	data, err := os.ReadFile(filepath.Join(dataDir, serviceAccountKeysFile))
	if err != nil {
		return 0
	}
	var st keyRingState
	if json.Unmarshal(data, &st) != nil || st.Record.validate() != nil {
		return 0
	}
	return st.Record.Primary
}

// ReadServiceAccountKeys reads the service-account key ring record and its
// revision.
func ReadServiceAccountKeys(ctx context.Context, cli *clientv3.Client) (KeyRing, int64, error) {
	return saRoll.read(ctx, cli)
}

// ServiceAccountKeyAcks returns, by master name, the service-account key
// ring revision each master applied last.
func ServiceAccountKeyAcks(ctx context.Context, cli *clientv3.Client) (map[string]int64, error) {
	return saRoll.acks(ctx, cli)
}

// ErrServiceAccountKeyKept is returned by RotateServiceAccountKey when the
// roll stopped at its use step because the old key must still verify; the
// error says until when.
var ErrServiceAccountKeyKept = errRollPaused

// RotateServiceAccountKey rolls the cluster to a new service-account key
// generation, or goes on with a roll an earlier run left. After the new key
// signs, the old one is removed only ServiceAccountKeyKeep later (or at
// once with removeNow, which invalidates the tokens it signed): until then
// the roll stops at its use step and returns an error wrapping
// ErrServiceAccountKeyKept that says when to run it again.
func RotateServiceAccountKey(ctx context.Context, cfg Config, cli *clientv3.Client, wait time.Duration, removeNow bool, progress func(KeyRollStep)) (KeyRing, error) {
	if !externalSigner(cfg) {
		return KeyRing{}, errors.New("service-account keys: masterd rotates the service-account key only when it runs the apiserver (kubernetes.mode: managed) with its own PKI (no pki.externalDir): replace the key files yourself")
	}
	return saRoll.rotate(ctx, cli, wait, progress, func(r KeyRing) error {
		until := r.Since.Add(ServiceAccountKeyKeep)
		if removeNow || r.Since.IsZero() || !time.Now().Before(until) {
			return nil
		}
		return fmt.Errorf("%w: generation %d signs; the old key still verifies the tokens it signed until %s (%s after the switch): run the command again after that to remove it, or with --remove-now to remove it now and invalidate those tokens",
			ErrServiceAccountKeyKept, r.Primary, until.Format(time.RFC3339), ServiceAccountKeyKeep)
	})
}

// signerComponent serves the token signer and applies the ring to it.
type signerComponent struct {
	*keyRingComponent
	srv  *tokensigner.Server
	ln   net.Listener
	done chan error
	// changed is called after sa.key changed (the kube component restarts
	// the controller-manager where it runs).
	changed func()
}

func newSignerComponent(n *node, etcdC *etcdComponent) (*signerComponent, error) {
	srv, err := tokensigner.New(tokensigner.Config{})
	if err != nil {
		return nil, err
	}
	c := &signerComponent{srv: srv}
	c.keyRingComponent = &keyRingComponent{n: n, name: "service-account-keys", roll: saRoll, file: serviceAccountKeysFile,
		etcd: etcdClientOf(etcdC), apply: c.apply, atStart: true, lenient: true}
	return c, nil
}

// apply gives the signer the ring's keys and sa.key its signing key.
func (c *signerComponent) apply(r KeyRing) error {
	n := c.n
	signer, err := n.secret.ServiceAccountKeyGen(r.Primary)
	if err != nil {
		return err
	}
	var verify []crypto.PublicKey
	for _, g := range r.Generations {
		k, err := n.secret.ServiceAccountKeyGen(g)
		if err != nil {
			return err
		}
		verify = append(verify, k.Public())
	}
	if err := c.srv.SetKeys(tokensigner.Keys{Signer: signer, Verify: verify}); err != nil {
		return err
	}
	changed, err := pki.WriteServiceAccountKey(n.pkiDir(), n.secret, r.Primary)
	if err != nil {
		return err
	}
	if changed {
		n.log.Info("service-account signing key written", "component", c.name, "generation", r.Primary)
		if c.changed != nil {
			c.changed()
		}
	}
	return nil
}

func (c *signerComponent) Start(ctx context.Context) error {
	ln, err := tokensigner.Listen(c.n.signerSocket())
	if err != nil {
		return err
	}
	c.ln, c.done = ln, make(chan error, 1)
	go func() { c.done <- c.srv.Serve(ln) }()
	if err := c.keyRingComponent.Start(ctx); err != nil {
		c.srv.Stop()
		<-c.done
		return err
	}
	return nil
}

// Stop stops following the record, then the signer (the kube component,
// started after it, has stopped the apiserver by then).
func (c *signerComponent) Stop(ctx context.Context) error {
	err := c.keyRingComponent.Stop(ctx)
	stopped := make(chan struct{})
	go func() { c.srv.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
	}
	if c.done != nil {
		select {
		case serr := <-c.done:
			err = errors.Join(err, serr)
		case <-ctx.Done():
		}
	}
	return err
}
