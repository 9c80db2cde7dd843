package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestBundleOf(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		bundle string
		ok     bool
	}{
		{[]string{"--root", "/run/r", "--log", "l", "create", "--bundle", "/b", "--pid-file", "p", "id"}, "/b", true},
		{[]string{"run", "-b=/c", "id"}, "/c", true},
		{[]string{"--root", "/run/r", "start", "id"}, "", false},
		{[]string{"exec", "--process", "/p.json", "id"}, "", false},
	} {
		got, ok := bundleOf(tc.args)
		if ok != tc.ok || (ok && got != tc.bundle) {
			t.Errorf("bundleOf(%q) = %q, %v; want %q, %v", tc.args, got, ok, tc.bundle, tc.ok)
		}
	}
}

func TestTrim(t *testing.T) {
	spec := `{"ociVersion":"1.2.0","linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}],` +
		`"cpu":{"shares":2,"cpus":"0"},"memory":{"limit":1048576},"pids":{"limit":10},"hugepageLimits":[{"pageSize":"2MB","limit":0}],` +
		`"unified":{"memory.low":"1","hugetlb.2MB.max":"0","cgroup.max.depth":"9"}}}}`
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := trim(cfg, map[string]bool{"hugetlb": true, "cpuset": true}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfg)
	var got struct {
		Linux struct {
			Resources map[string]json.RawMessage `json:"resources"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	r := got.Linux.Resources
	for _, gone := range []string{"memory", "pids"} {
		if _, ok := r[gone]; ok {
			t.Errorf("%s kept without its controller: %s", gone, b)
		}
	}
	for _, kept := range []string{"devices", "hugepageLimits"} {
		if _, ok := r[kept]; !ok {
			t.Errorf("%s dropped although its controller is there: %s", kept, b)
		}
	}
	if string(r["unified"]) != `{"cgroup.max.depth":"9","hugetlb.2MB.max":"0"}` {
		t.Errorf("unified = %s, want memory.low dropped, the rest kept", r["unified"])
	}
	if string(r["cpu"]) != `{"cpus":"0"}` {
		t.Errorf("cpu = %s, want the cpuset only", r["cpu"])
	}
	// With every controller present the file is left byte for byte.
	if err := os.WriteFile(cfg, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	all := map[string]bool{"cpu": true, "cpuset": true, "memory": true, "pids": true, "io": true, "hugetlb": true}
	if err := trim(cfg, all); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(cfg); string(b) != spec {
		t.Errorf("config rewritten with every controller present: %s", b)
	}
	if err := trim(filepath.Join(dir, "missing.json"), all); err == nil {
		t.Error("trim of a missing config: no error")
	}
}
