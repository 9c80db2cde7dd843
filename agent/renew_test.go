package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/masterd/masterd/pki"
)

func TestPKIValidityKeysAreValidatedAndSetTheRenewalCadence(t *testing.T) {
	for _, c := range []struct {
		validity, before time.Duration
		want             string
	}{
		{time.Minute, 30 * time.Second, "pki.leafValidity"},
		{10 * time.Minute, 10 * time.Minute, "pki.renewBefore"},
		{10 * time.Minute, 0, "pki.renewBefore"},
	} {
		cfg := DefaultConfig()
		cfg.PKI.LeafValidity, cfg.PKI.RenewBefore = Duration(c.validity), Duration(c.before)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("validity %s renew %s: %v, want an error naming %s", c.validity, c.before, err, c.want)
		}
	}
	cfg := DefaultConfig()
	p := pkiParams(cfg)
	if p.LeafValidity != 365*24*time.Hour || p.RenewBefore != 30*24*time.Hour {
		t.Errorf("default params %s/%s, want kubeadm's year and 30 days", p.LeafValidity, p.RenewBefore)
	}
	for before, want := range map[time.Duration]time.Duration{
		30 * 24 * time.Hour:             24 * time.Hour, // at most daily
		10*time.Minute + 30*time.Second: 63 * time.Second,
		5 * time.Second:                 time.Second,
	} {
		if got := renewCheckInterval(pki.Params{RenewBefore: before}); got != want {
			t.Errorf("renewBefore %s: checked every %s, want %s", before, got, want)
		}
	}
}
