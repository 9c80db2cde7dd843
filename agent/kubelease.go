package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/masterd/masterd/bootstrap"
)

// Handing a leader-only component's coordination.k8s.io Lease over.
//
// kube-scheduler and kube-controller-manager keep --leader-elect on, as a
// second fence. Alone, it makes a new instance wait for the old instance's
// Lease to run out: client-go counts leaseDurationSeconds (15 s) from the
// moment the new instance first reads the record, whatever renewTime says,
// so the role moved in under a second and the component took 15-25 s more.
//
// masterd knows what client-go cannot: its role moved only after the old
// instance was dead. The old holder kills the unit's control group before
// its quorum lease ends (its release is verified, or, failing that,
// escalated before the lease expires: see election.Callbacks), and a
// crashed masterd's ExecStopPost kills it too. So right before it starts
// its own instance, the new holder releases the Lease on the old instance's
// behalf, exactly as client-go's ReleaseOnCancel does on a clean exit
// (holderIdentity cleared, leaseDurationSeconds 1), with the
// resourceVersion it read as precondition: a write it did not see (a
// renewal still in flight when the old instance died) makes the update
// fail instead of being overwritten. The new instance then acquires on its
// first try. It writes as the component itself (its kubeconfig, which
// masterd writes for it), through the local apiserver; the component's RBAC
// role allows get and update of its own Lease.

// kubeLease is the Lease of one leader-only component and the kubeconfig
// masterd wrote for it.
type kubeLease struct {
	namespace, name string
	kubeconfig      string
}

// leaseHandoverTimeout bounds the hand-over before the unit starts: past
// it the component starts anyway, and the hand-over goes on in the
// background (retryHandOver).
const leaseHandoverTimeout = 3 * time.Second

// A hand-over that failed before the start (the apiserver not answering
// yet: etcd electing a leader after the crash of a master) is retried every
// leaseRetryEvery for up to leaseRetryFor while the term lasts; without it
// the component, once the apiserver answers, would wait out the old
// instance's whole Lease.
const (
	leaseRetryEvery = 500 * time.Millisecond
	leaseRetryFor   = time.Minute
)

// componentLease is the Lease a component elects itself with: kube's default
// kube-system/<component>, or what its extra args set.
func componentLease(component, kubeconfig string, extra map[string]string) kubeLease {
	l := kubeLease{namespace: "kube-system", name: component, kubeconfig: kubeconfig}
	if v := extra["leader-elect-resource-namespace"]; v != "" {
		l.namespace = v
	}
	if v := extra["leader-elect-resource-name"]; v != "" {
		l.name = v
	}
	return l
}

func (l kubeLease) path() string {
	return "/apis/coordination.k8s.io/v1/namespaces/" + url.PathEscape(l.namespace) + "/leases/" + url.PathEscape(l.name)
}

// handOver releases the Lease for its dead previous holder (see above) and
// returns that holder ("" when the Lease was absent or free). When it
// fails within leaseHandoverTimeout it returns the error and, unless ctx
// ended, goes on in the background until ctx ends (the term is lost).
// The component has started by then, so the background releases only the
// holder the first attempt read, or, when no read succeeded, a holder on
// another host: never this host's new instance.
func (l kubeLease) handOver(ctx context.Context) (string, error) {
	c, _, err := bootstrap.NewClientFromKubeconfig(l.kubeconfig)
	if err != nil {
		return "", fmt.Errorf("kube: lease %s/%s: %w", l.namespace, l.name, err)
	}
	hctx, cancel := context.WithTimeout(ctx, leaseHandoverTimeout)
	defer cancel()
	var errs []error
	seen := ""
	// A conflict means the Lease changed since it was read (a renewal of
	// the dead instance landed late): read it again.
	for range 3 {
		holder, err := l.release(hctx, c, nil)
		if err == nil {
			c.Close()
			return holder, nil
		}
		if holder != "" {
			seen = holder
		}
		errs = append(errs, err)
		if !bootstrap.IsConflict(err) || hctx.Err() != nil {
			break
		}
	}
	err = fmt.Errorf("kube: lease %s/%s: %w", l.namespace, l.name, errors.Join(errs...))
	if ctx.Err() != nil {
		c.Close()
		return "", err
	}
	self, _ := os.Hostname()
	go l.retryHandOver(ctx, c, previousHolder(seen, self))
	return "", fmt.Errorf("%w (retrying in the background for up to %s)", err, leaseRetryFor)
}

// previousHolder is the rule of a background hand-over: the holder seen
// before the start if any, else any holder whose client-go identity
// (hostname_uuid) is of another host than self.
func previousHolder(seen, self string) func(holder string) bool {
	if seen != "" {
		return func(h string) bool { return h == seen }
	}
	return func(h string) bool {
		host := h
		if i := strings.LastIndexByte(h, '_'); i > 0 {
			host = h[:i]
		}
		return host != self
	}
}

// errNotPrevious ends a background hand-over: the Lease is held by someone
// the rule does not allow releasing (this host's new instance).
var errNotPrevious = errors.New("held by an instance started after the hand-over began")

// retryHandOver retries the release every leaseRetryEvery until it is done,
// the Lease is free or held by another instance than the previous one, ctx
// ends or leaseRetryFor passed. It closes c.
func (l kubeLease) retryHandOver(ctx context.Context, c *bootstrap.Client, previous func(string) bool) {
	defer c.Close()
	deadline := time.Now().Add(leaseRetryFor)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(leaseRetryEvery):
		}
		rctx, cancel := context.WithTimeout(ctx, leaseHandoverTimeout)
		_, err := l.release(rctx, c, previous)
		cancel()
		if err == nil || errors.Is(err, errNotPrevious) {
			return
		}
	}
}

// release reads the Lease and, if someone holds it (and previous, when
// set, allows it), writes it back released under the resourceVersion it
// read. It returns the holder it read, also with an error after the read.
func (l kubeLease) release(ctx context.Context, c *bootstrap.Client, previous func(string) bool) (string, error) {
	var obj map[string]any
	if err := c.Get(ctx, l.path(), &obj); err != nil {
		if bootstrap.IsNotFound(err) {
			return "", nil
		}
		return "", err
	}
	spec, _ := obj["spec"].(map[string]any)
	holder, _ := spec["holderIdentity"].(string)
	if holder == "" {
		return "", nil
	}
	if previous != nil && !previous(holder) {
		return holder, errNotPrevious
	}
	if meta, _ := obj["metadata"].(map[string]any); meta == nil || meta["resourceVersion"] == nil {
		return holder, errors.New("lease has no resourceVersion: refusing an unconditional write")
	}
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	delete(spec, "holderIdentity")
	spec["leaseDurationSeconds"] = 1
	spec["acquireTime"] = now
	spec["renewTime"] = now
	body, err := json.Marshal(obj)
	if err != nil {
		return holder, err
	}
	// PUT carries metadata.resourceVersion: the apiserver refuses it with
	// 409 Conflict if the Lease changed since the read.
	if err := c.Do(ctx, http.MethodPut, l.path(), "application/json", body, nil); err != nil {
		return holder, err
	}
	return holder, nil
}
