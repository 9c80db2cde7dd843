package agent

import (
	"strings"
	"testing"
)

// kubernetes.encryption.keys and kubernetes.audit are checked when the file
// loads (masterd run --check), each problem under its key, instead of only
// when masterd starts and writes kube-apiserver's files.
func TestEncryptionKeysAndAuditPathAreCheckedAtLoad(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"no key", "kubernetes: {encryption: {keys: []}}\n",
			"kubernetes.encryption.keys: must list at least one key generation"},
		{"generation zero", "kubernetes: {encryption: {keys: [0]}}\n",
			"kubernetes.encryption.keys[0]: 0 is outside 1..1048576"},
		{"a negative generation", "kubernetes: {encryption: {keys: [2, -1]}}\n",
			"kubernetes.encryption.keys[1]: -1 is outside 1..1048576"},
		{"a generation too large", "kubernetes: {encryption: {keys: [1048577]}}\n",
			"kubernetes.encryption.keys[0]: 1048577 is outside 1..1048576"},
		{"a generation twice", "kubernetes: {encryption: {keys: [2, 1, 2]}}\n",
			"kubernetes.encryption.keys[2]: generation 2 is also kubernetes.encryption.keys[0]"},
		{"too many generations", "kubernetes: {encryption: {keys: [1, 2, 3, 4, 5]}}\n",
			"kubernetes.encryption.keys: 5 generations: at most 4"},
		{"a relative audit path", "kubernetes: {audit: {path: log/audit.log}}\n",
			`kubernetes.audit.path: "log/audit.log" must be an absolute path`},
		{"an empty audit path", "kubernetes: {audit: {path: \"\"}}\n",
			"kubernetes.audit.path: is required when kubernetes.audit.enabled is true"},
		{"a negative audit size", "kubernetes: {audit: {maxSizeMB: -1}}\n",
			"kubernetes.audit.maxSizeMB: -1 must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, validYAML+tc.yaml)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got:\n%v\nwant a line with %q", err, tc.want)
			}
			if n := strings.Count(err.Error(), "\n  kubernetes."); n != 1 {
				t.Errorf("%d problems reported, want 1:\n%v", n, err)
			}
		})
	}
}

// What the README's rotation goes through loads, and values that nothing
// uses are left alone: the audit path with the audit log off, the keys and
// the audit settings when masterd does not run the kube components.
func TestEncryptionAndAuditValuesThatLoad(t *testing.T) {
	for _, y := range []string{
		"",
		"kubernetes: {encryption: {keys: [1, 2]}}\n",
		"kubernetes: {encryption: {keys: [2, 1]}}\n",
		"kubernetes: {encryption: {keys: [2], enabled: false}}\n",
		"kubernetes: {encryption: {keys: [4, 3, 2, 1]}}\n",
		"kubernetes: {audit: {enabled: false, path: log/audit.log}}\n",
		"kubernetes: {audit: {path: /var/log/audit.json, maxAgeDays: 0, maxBackups: 0, maxSizeMB: 0}}\n",
		"kubernetes: {mode: none, encryption: {keys: [1, 1]}, audit: {path: audit.log}}\n",
	} {
		cfg, err := load(t, validYAML+y)
		if err != nil {
			t.Errorf("%q rejected: %v", y, err)
			continue
		}
		if y == "" && (len(cfg.Kubernetes.Encryption.Keys) != 1 || !strings.HasPrefix(cfg.Kubernetes.Audit.Path, "/")) {
			t.Errorf("defaults: keys %v, audit path %q", cfg.Kubernetes.Encryption.Keys, cfg.Kubernetes.Audit.Path)
		}
	}
}
