package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/masterd/masterd/agent"
)

// `masterd status`, as users run it, shows each kube unit's binary version
// from /status (kube section, "version").
func TestStatusShowsTheKubeVersionOfEachUnit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	kube, err := json.Marshal([]agent.UnitStatus{
		{Name: "kube-apiserver.service", Active: "active", Sub: "running", PID: 41, Version: "v1.37.2"},
		{Name: "kube-scheduler.service", Active: "inactive", Sub: "dead"},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(agent.Status{Node: "m1", Components: map[string]string{}, Sections: map[string]json.RawMessage{"kube": kube}})
	}))
	defer srv.Close()
	out, err := exec.Command(bin, "status", "--addr", strings.TrimPrefix(srv.URL, "http://")).CombinedOutput()
	if err != nil {
		t.Fatalf("masterd status: %v\n%s", err, out)
	}
	var header, api, sched string
	for _, l := range strings.Split(string(out), "\n") {
		switch f := strings.Fields(l); {
		case len(f) > 0 && f[0] == "UNIT":
			header = l
		case len(f) > 0 && f[0] == "kube-apiserver.service":
			api = l
		case len(f) > 0 && f[0] == "kube-scheduler.service":
			sched = l
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(header), "VERSION") || !strings.HasSuffix(strings.TrimSpace(api), "v1.37.2") || !strings.HasSuffix(strings.TrimSpace(sched), "-") {
		t.Fatalf("masterd status lacks the VERSION column (v1.37.2 for the apiserver, - where unknown):\n%s", out)
	}
}
