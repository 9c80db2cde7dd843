package agent

import (
	"github.com/masterd/masterd/backup"
	"github.com/masterd/masterd/etcdembed"
)

// BackupConfig configures off-host copies of the automatic etcd snapshots.
type BackupConfig struct {
	S3 S3BackupConfig `yaml:"s3" doc:"upload each automatic snapshot to an S3-compatible object store (package backup)"`
}

// S3BackupConfig is etcd.backup.s3: where the snapshots go and how many
// stay. The objects are <prefix>/<gossip.clusterName>/<name>-<UTC time>.db.
type S3BackupConfig struct {
	Enabled         bool   `yaml:"enabled" doc:"upload every automatic snapshot (the etcd leader's; another master's when the newest copy is older than 1.5 snapshotInterval)"`
	Endpoint        string `yaml:"endpoint" doc:"the store's URL, https://host[:port] (http:// only with insecure)"`
	Bucket          string `yaml:"bucket" doc:"an existing bucket"`
	Prefix          string `yaml:"prefix" doc:"key prefix; the cluster's objects go under prefix/gossip.clusterName/"`
	Region          string `yaml:"region" doc:"the bucket's region; empty asks the store"`
	Insecure        bool   `yaml:"insecure" doc:"allow a plain http:// endpoint (snapshots hold every Secret); TLS certificates are always verified"`
	CAFile          string `yaml:"caFile" doc:"PEM bundle verifying the https endpoint instead of the system's roots"`
	CredentialsFile string `yaml:"credentialsFile" doc:"file (mode 0600, owner root) with the keys accessKeyID and secretAccessKey, read at each upload"`
	Retention       int    `yaml:"retention" doc:"snapshots kept in the store for the cluster (all masters together); older ones are deleted after each upload"`
}

// defaultBackupConfig: off; when on, two weeks of twice-daily snapshots.
func defaultBackupConfig() BackupConfig {
	return BackupConfig{S3: S3BackupConfig{
		Prefix:          "masterd",
		CredentialsFile: "/etc/masterd/backup-s3.credentials",
		Retention:       28,
	}}
}

// BackupStoreConfig is the store configuration of etcd.backup.s3 for cfg's
// cluster (gossip.clusterName), as the daemon and the commands use it.
func BackupStoreConfig(cfg Config) backup.Config {
	s := cfg.Etcd.Backup.S3
	return backup.Config{
		Endpoint: s.Endpoint, Bucket: s.Bucket, Prefix: s.Prefix, Region: s.Region,
		Insecure: s.Insecure, CAFile: s.CAFile, CredentialsFile: s.CredentialsFile,
		Cluster: cfg.Gossip.ClusterName, Retention: s.Retention,
	}
}

// validateBackup checks etcd.backup.s3 when it is enabled, with the
// backup package's own rules; each problem names its key.
func (c *Config) validateBackup(bad func(string, string, ...any)) {
	s := c.Etcd.Backup.S3
	if !s.Enabled {
		return
	}
	if c.Etcd.SnapshotInterval.D() == 0 {
		bad("etcd.backup.s3.enabled", "uploads the automatic snapshots, but etcd.snapshotInterval is 0 (off)")
	}
	for _, p := range BackupStoreConfig(*c).Problems() {
		if p.Field == "cluster" {
			continue // gossip.clusterName, checked on its own
		}
		bad("etcd.backup.s3."+p.Field, "%s", p.Msg)
	}
}

// startBackup returns the uploader of etcd.backup.s3 and the hook that
// hands it the member's automatic snapshots, or nil, nil when backups are
// off.
func startBackup(n *node) (*backup.Uploader, func(etcdembed.SavedSnapshot), error) {
	cfg := n.cfg
	if !cfg.Etcd.Backup.S3.Enabled || cfg.Etcd.SnapshotInterval.D() == 0 {
		return nil, nil, nil
	}
	up, err := backup.NewUploader(backup.UploaderConfig{
		Store:      BackupStoreConfig(cfg),
		Master:     cfg.Name,
		Interval:   cfg.Etcd.SnapshotInterval.D(),
		Logger:     n.log,
		Registerer: n.reg,
	})
	if err != nil {
		return nil, nil, err
	}
	// Said now rather than at the first upload, hours later; not fatal (the
	// file is read again at each upload).
	if _, err := backup.ReadCredentials(cfg.Etcd.Backup.S3.CredentialsFile); err != nil && n.log != nil {
		n.log.Warn("etcd snapshot uploads will fail until the credentials file is fixed", "component", "backup", "error", err)
	}
	return up, func(s etcdembed.SavedSnapshot) { up.Saved(s.Path, s.Taken, s.Leader) }, nil
}
