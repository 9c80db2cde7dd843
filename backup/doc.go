// Package backup keeps copies of etcd snapshots off the masters, in an
// S3-compatible object store (AWS S3, MinIO, SeaweedFS, Ceph RGW, ...).
//
// # Layout in the store
//
// Every snapshot of one cluster lands under one directory of the bucket:
//
//	<prefix>/<cluster>/<master>-<UTC time>.db      e.g. masterd/prod/m1-20261204T001500Z.db
//
// cluster is the cluster's name (masterd.yaml gossip.clusterName), master
// the name of the master that took it, and the time (second resolution) when
// it was taken, so names sort by master and parse back into both. The part
// after the cluster's directory is the object's Name: what List shows and
// Fetch takes. Each object carries the SHA-256 of its content as user
// metadata (x-amz-meta-sha256); Fetch recomputes it and refuses a copy that
// differs, so a truncated or altered object never becomes a restore.
//
// # Credentials
//
// An access key id and its secret come from a file (Config.CredentialsFile)
// that only its owner, root, may read (mode 0600; a looser file is refused,
// as masterd refuses loose key files). It holds two YAML keys:
//
//	accessKeyID: AKIA...
//	secretAccessKey: ...
//
// It is read for each operation, so a rotated key takes effect at the next
// upload without a restart. Neither value is ever logged, put in an error or
// exported as a metric.
//
// # Uploads from the daemon
//
// An [Uploader] receives each periodic snapshot the embedded etcd member
// wrote (etcdembed.Config.OnSnapshot) and uploads it in the background,
// then prunes the cluster's directory to Config.Retention objects. Every
// master takes its own periodic snapshots, but only one upload per interval
// is wanted: the member that is the etcd leader when its snapshot is taken
// uploads; the others upload only when the newest copy in the store is older
// than one and a half intervals (the leader cannot reach the store, or
// leadership moved just before its snapshot), so a master that fails to
// upload is covered by the others without every master uploading every
// time. Failures are logged (at most one warning an hour while they go on),
// counted and never stop the daemon.
//
// # Metrics
//
//	masterd_backup_uploads_total                   snapshots uploaded
//	masterd_backup_upload_failures_total           uploads (or prunes) that failed
//	masterd_backup_last_success_timestamp_seconds  Unix time of the last upload that succeeded
package backup
