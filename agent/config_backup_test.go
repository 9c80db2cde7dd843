package agent

import (
	"strings"
	"testing"
)

// etcd.backup.s3 is checked only when enabled, with the backup package's
// rules, each problem under its key path and line; the store configuration
// takes the cluster's directory from gossip.clusterName.
func TestBackupConfigIsValidatedWhenEnabled(t *testing.T) {
	off := validYAML + "etcd:\n  backup:\n    s3: {endpoint: 'ftp://x', bucket: B}\n"
	if _, err := load(t, off); err != nil {
		t.Errorf("a disabled etcd.backup.s3 was validated: %v", err)
	}
	good := validYAML + `gossip: {clusterName: prod}
etcd:
  backup:
    s3:
      enabled: true
      endpoint: https://s3.example.com
      bucket: etcd-backups
      credentialsFile: /etc/masterd/s3.credentials
`
	cfg, err := load(t, good)
	if err != nil {
		t.Fatalf("valid etcd.backup.s3 rejected: %v", err)
	}
	bc := BackupStoreConfig(cfg)
	if bc.Cluster != "prod" || bc.Prefix != "masterd" || bc.Retention != 28 || bc.Endpoint != "https://s3.example.com" {
		t.Errorf("BackupStoreConfig = %+v", bc)
	}
	bad := validYAML + `etcd:
  snapshotInterval: 0s
  backup:
    s3:
      enabled: true
      endpoint: http://s3.example.com
      bucket: Etcd_Backups
      prefix: /abs
      credentialsFile: creds
      retention: 0
`
	_, err = load(t, bad)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"etcd.backup.s3.enabled: uploads the automatic snapshots, but etcd.snapshotInterval is 0",
		"etcd.backup.s3.endpoint: \"http://s3.example.com\" is plain HTTP",
		"etcd.backup.s3.bucket: \"Etcd_Backups\" must be an S3 bucket name",
		"etcd.backup.s3.prefix: \"/abs\" must not start with '/'",
		"etcd.backup.s3.credentialsFile: \"creds\" must be an absolute path (line 17)",
		"etcd.backup.s3.retention: 0 is outside 1..1000",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
