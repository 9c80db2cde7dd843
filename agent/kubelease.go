package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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

// leaseHandoverTimeout bounds the hand-over: past it the component starts
// anyway and waits the Lease out itself (--leader-elect).
const leaseHandoverTimeout = 3 * time.Second

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
// returns that holder ("" when the Lease was absent or free).
func (l kubeLease) handOver(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, leaseHandoverTimeout)
	defer cancel()
	c, _, err := bootstrap.NewClientFromKubeconfig(l.kubeconfig)
	if err != nil {
		return "", fmt.Errorf("kube: lease %s/%s: %w", l.namespace, l.name, err)
	}
	defer c.Close()
	var errs []error
	// A conflict means the Lease changed since it was read (a renewal of
	// the dead instance landed late): read it again.
	for range 3 {
		holder, err := l.release(ctx, c)
		if err == nil {
			return holder, nil
		}
		errs = append(errs, err)
		if !bootstrap.IsConflict(err) || ctx.Err() != nil {
			break
		}
	}
	return "", fmt.Errorf("kube: lease %s/%s: %w", l.namespace, l.name, errors.Join(errs...))
}

// release reads the Lease and, if someone holds it, writes it back
// released under the resourceVersion it read.
func (l kubeLease) release(ctx context.Context, c *bootstrap.Client) (string, error) {
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
	if meta, _ := obj["metadata"].(map[string]any); meta == nil || meta["resourceVersion"] == nil {
		return "", errors.New("lease has no resourceVersion: refusing an unconditional write")
	}
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	delete(spec, "holderIdentity")
	spec["leaseDurationSeconds"] = 1
	spec["acquireTime"] = now
	spec["renewTime"] = now
	body, err := json.Marshal(obj)
	if err != nil {
		return "", err
	}
	// PUT carries metadata.resourceVersion: the apiserver refuses it with
	// 409 Conflict if the Lease changed since the read.
	if err := c.Do(ctx, http.MethodPut, l.path(), "application/json", body, nil); err != nil {
		return "", err
	}
	return holder, nil
}
