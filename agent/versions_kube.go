package agent

import (
	"context"
	"fmt"

	"github.com/masterd/masterd/internal/skew"
)

// The kube component's side of the version skew policy (versions.go).

const skewAPIServer = skew.APIServer

// startAPIServer starts kube-apiserver, or, while the policy refuses it
// here, stops it (if a previous run left it running) and starts it in the
// background once allowed
// (Check reports the refusal meanwhile; Stop ends the wait).
func (c *kubeComponent) startAPIServer(ctx context.Context) error {
	if err := c.skew.refusal(skew.APIServer); err == nil {
		if err := c.sup.Start(ctx, c.apiserver, 0); err != nil {
			return err
		}
		c.skew.markAPIServerStarted()
		return nil
	}
	// One a previous run left running (its stop cut short) must not serve
	// while the policy refuses the binary here.
	if err := c.sup.Stop(ctx, c.apiserver); err != nil {
		return fmt.Errorf("kube: stop %s, refused by the version skew policy: %w", c.apiserver, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.apiWait = func() { cancel(); <-done }
	go func() {
		defer close(done)
		if c.skew.waitAllowed(wctx, skew.APIServer) != nil {
			return
		}
		c.n.log.Info("starting kube-apiserver: the version skew policy allows it now", "component", "kube", "unit", c.apiserver)
		if err := c.sup.Start(wctx, c.apiserver, 0); err != nil {
			if wctx.Err() == nil {
				c.n.log.Error("kube-apiserver start failed", "component", "kube", "unit", c.apiserver, "err", err)
			}
			return
		}
		c.skew.markAPIServerStarted()
	}()
	return nil
}

// allowed waits, under the term's context, until the policy allows the
// leader-only unit here; it reports false when the term ended first. A
// holder the policy refuses (no fit master campaigned before it) keeps the
// role without running the unit, and says so.
func (l *leaderUnit) allowed(ctx context.Context, name string, term uint64) bool {
	comp := unitComponent[name]
	err := l.c.skew.refusal(comp)
	if err == nil {
		return true
	}
	l.c.n.log.Error("leader unit not started: refused by the version skew policy; waiting until it allows it",
		"component", "kube", "unit", name, "term", term, "reason", err)
	if l.c.skew.waitAllowed(ctx, comp) != nil {
		return false
	}
	l.c.n.log.Info("leader unit allowed by the version skew policy now", "component", "kube", "unit", name, "term", term)
	return true
}

// markAPIServerStarted records that the apiserver runs (nil-safe).
func (c *versionsComponent) markAPIServerStarted() {
	if c != nil {
		c.apiserverStarted()
	}
}
