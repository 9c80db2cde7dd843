package pki

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsExportEveryCertificateExpiry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	f := mustEnsure(t, t.TempDir(), testSecret(t), testParams(), t0)
	m.Observe(f)
	if n := testutil.CollectAndCount(m.expiry, "masterd_cert_expiry_timestamp_seconds"); n != 13 {
		t.Errorf("%d series, want 13", n)
	}
	want := float64(t0.Add(DefaultParams().LeafValidity).Unix())
	if got := testutil.ToFloat64(m.expiry.WithLabelValues("apiserver")); got != want {
		t.Errorf("apiserver expiry %v, want %v", got, want)
	}
	// A certificate that disappears (BYO without front proxy) loses its series.
	delete(f.Expiry, "front-proxy-client")
	m.Observe(f)
	if n := testutil.CollectAndCount(m.expiry); n != 12 {
		t.Errorf("%d series after removal, want 12", n)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering twice succeeded")
	}
}

func TestExpiryReportListsSoonestFirst(t *testing.T) {
	f := &Files{Expiry: map[string]time.Time{
		"b": t0.Add(10 * 24 * time.Hour),
		"a": t0.Add(400 * 24 * time.Hour),
		"c": t0.Add(-36 * time.Hour),
	}}
	got := f.ExpiryReport(t0)
	if len(got) != 3 || got[0].Name != "c" || got[0].DaysLeft != -2 || got[1].Name != "b" || got[1].DaysLeft != 10 || got[2].DaysLeft != 400 {
		t.Errorf("report %+v", got)
	}
}
