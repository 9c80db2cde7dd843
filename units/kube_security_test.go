package units

import (
	"strings"
	"testing"
)

// The security flags: NodeRestriction and bootstrap tokens always; the
// encryption config and the audit log when their files are set, and
// nothing of them when not.
func TestAPIServerSecurityFlags(t *testing.T) {
	k := validKube()
	k.EncryptionConfigFile = "/var/lib/masterd/pki/encryption-config.yaml"
	k.AuditPolicyFile, k.AuditLogPath = "/var/lib/masterd/pki/audit-policy.yaml", "/var/log/masterd/audit.log"
	k.AuditLogMaxAge, k.AuditLogMaxBackups, k.AuditLogMaxSize = 30, 10, 100
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := k.APIServer()
	if err != nil {
		t.Fatal(err)
	}
	m := argMap(t, d)
	for flag, want := range map[string]string{
		"enable-admission-plugins":                    "NodeRestriction",
		"enable-bootstrap-token-auth":                 "true",
		"encryption-provider-config":                  k.EncryptionConfigFile,
		"encryption-provider-config-automatic-reload": "true",
		"audit-policy-file":                           k.AuditPolicyFile,
		"audit-log-path":                              k.AuditLogPath,
		"audit-log-maxage":                            "30",
		"audit-log-maxbackup":                         "10",
		"audit-log-maxsize":                           "100",
	} {
		if m[flag] != want {
			t.Errorf("--%s=%q, want %q", flag, m[flag], want)
		}
	}
	cm, err := k.ControllerManager()
	if err != nil {
		t.Fatal(err)
	}
	if c := argMap(t, cm); c["controllers"] != "*,bootstrapsigner,tokencleaner" || c["cluster-signing-cert-file"] != k.CAFile || c["cluster-signing-key-file"] != k.CAKeyFile {
		t.Errorf("controller-manager: controllers %q, signing %q %q", c["controllers"], c["cluster-signing-cert-file"], c["cluster-signing-key-file"])
	}

	off := validKube()
	d, err = off.APIServer()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range d.ExecStart {
		if strings.HasPrefix(a, "--audit-") || strings.HasPrefix(a, "--encryption-") {
			t.Errorf("%s generated without the files", a)
		}
	}

	bad := validKube()
	bad.AuditLogPath = "audit.log"
	bad.EncryptionConfigFile = "enc.yaml"
	bad.AuditLogMaxSize = -1
	err = bad.Validate()
	for _, want := range []string{"audit_log_path \"audit.log\": must be an absolute path", "encryption_config_file", "set both or neither", "must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want it to say %q", err, want)
		}
	}
}
