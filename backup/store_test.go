package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/masterd/masterd/integration/s3"
)

// These tests run against a real S3-compatible server (SeaweedFS's weed,
// package integration/s3), one per test binary: each test uses its own
// bucket.

var (
	serverOnce sync.Once
	server     *s3.Server
	serverErr  error
	bucketSeq  atomic.Int32
)

// store starts the shared server when needed, makes a fresh bucket and
// returns a Config for it with the admin's credentials.
func store(t *testing.T) (Config, *s3.Server) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a real S3 server (weed)")
	}
	serverOnce.Do(func() { server, serverErr = s3.New() })
	if serverErr != nil {
		t.Fatal(serverErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("weed log (tail):\n%s", server.LogTail(30))
		}
	})
	bucket := fmt.Sprintf("b%d-%d", os.Getpid(), bucketSeq.Add(1))
	server.MakeBucket(t, bucket)
	creds := filepath.Join(t.TempDir(), "creds")
	s3.WriteCredentials(t, creds, server.AccessKeyID, server.SecretAccessKey)
	return Config{Endpoint: server.Endpoint, Insecure: true, Bucket: bucket, Prefix: "masterd/test",
		CredentialsFile: creds, Cluster: "c1", Retention: 3}, server
}

// TestMain stops the shared server after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		server.Close()
	}
	os.Exit(code)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// snapshotFile writes n random bytes (a stand-in for a snapshot: the store
// does not look inside) and returns its path.
func snapshotFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	p := filepath.Join(t.TempDir(), "etcd-20261204T001500Z.db")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Upload, list, fetch and prune against a real server: the fetched file is
// the uploaded one byte for byte (also one large enough for a multipart
// upload), mode 0600; List shows the names, sizes and times; Prune keeps
// the newest across masters.
func TestUploadListFetchPrune(t *testing.T) {
	cfg, _ := store(t)
	s := open(t, cfg)
	ctx := ctxT(t)
	base := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	small, smallData := snapshotFile(t, 100<<10)
	big, bigData := snapshotFile(t, 20<<20) // past minio-go's 16 MiB single-part limit
	uploads := []struct {
		file, master string
		taken        time.Time
	}{
		{small, "m1", base},
		{small, "m2", base.Add(time.Hour)},
		{big, "m1", base.Add(2 * time.Hour)},
		{small, "m3", base.Add(3 * time.Hour)},
		{small, "m2", base.Add(4 * time.Hour)},
	}
	for _, u := range uploads {
		o, err := s.Upload(ctx, u.file, u.master, u.taken)
		if err != nil {
			t.Fatalf("upload %s as %s: %v", u.file, u.master, err)
		}
		if want := "masterd/test/c1/" + ObjectName(u.master, u.taken); o.Key != want || len(o.SHA256) != 64 {
			t.Errorf("uploaded %+v, want key %s with a sha256", o, want)
		}
	}
	objs, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, fmt.Sprintf("%s:%d", o.Name, o.Size))
	}
	want := fmt.Sprintf("m1-20261204T000000Z.db:%d m2-20261204T010000Z.db:%d m1-20261204T020000Z.db:%d m3-20261204T030000Z.db:%d m2-20261204T040000Z.db:%d",
		len(smallData), len(smallData), len(bigData), len(smallData), len(smallData))
	if got := strings.Join(names, " "); got != want {
		t.Errorf("List:\n got %s\nwant %s", got, want)
	}
	if objs[2].Master != "m1" || !objs[2].Taken.Equal(base.Add(2*time.Hour)) || objs[2].Modified.IsZero() {
		t.Errorf("List entry %+v lacks master, time or modification time", objs[2])
	}

	dst := filepath.Join(t.TempDir(), "fetched.db")
	o, err := s.Fetch(ctx, "m1-20261204T020000Z.db", dst)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, bigData) || o.Size != int64(len(bigData)) {
		t.Errorf("fetched %d bytes (object %+v), uploaded %d: not the same content", len(got), o, len(bigData))
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
		t.Errorf("fetched file mode %v, want 0600", fi.Mode().Perm())
	}

	removed, err := s.Prune(ctx, 3)
	if err != nil || len(removed) != 2 || removed[0].Name != "m1-20261204T000000Z.db" || removed[1].Name != "m2-20261204T010000Z.db" {
		t.Fatalf("Prune(3) removed %+v, %v; want the two oldest", removed, err)
	}
	objs, _ = s.List(ctx)
	if len(objs) != 3 || objs[0].Name != "m1-20261204T020000Z.db" {
		t.Errorf("after Prune(3): %+v", objs)
	}
	if newest, ok, err := s.Newest(ctx); err != nil || !ok || newest.Name != "m2-20261204T040000Z.db" {
		t.Errorf("Newest = %+v, %v, %v", newest, ok, err)
	}
	// Objects of another cluster in the same bucket are not listed or
	// pruned.
	other := cfg
	other.Cluster = "c2"
	so := open(t, other)
	if _, err := so.Upload(ctx, small, "m1", base); err != nil {
		t.Fatal(err)
	}
	if objs, _ := s.List(ctx); len(objs) != 3 {
		t.Errorf("cluster c1 lists %d objects after c2's upload, want 3", len(objs))
	}
	if removed, err := so.Prune(ctx, 1); err != nil || len(removed) != 0 {
		t.Errorf("Prune of c2 (one object) removed %v, %v", removed, err)
	}
}

// A copy that differs from what was uploaded (the content replaced behind
// masterd's back, the sha256 metadata kept) and one without the metadata
// are refused, and the destination is not touched.
func TestFetchRefusesAChecksumMismatch(t *testing.T) {
	cfg, srv := store(t)
	s := open(t, cfg)
	ctx := ctxT(t)
	file, _ := snapshotFile(t, 64<<10)
	taken := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	o, err := s.Upload(ctx, file, "m1", taken)
	if err != nil {
		t.Fatal(err)
	}
	admin := srv.Client(t)
	tampered := bytes.Repeat([]byte("x"), 64<<10)
	if _, err := admin.PutObject(ctx, cfg.Bucket, o.Key, bytes.NewReader(tampered), int64(len(tampered)),
		minio.PutObjectOptions{UserMetadata: map[string]string{"sha256": o.SHA256}}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out.db")
	if err := os.WriteFile(dst, []byte("previous"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = s.Fetch(ctx, o.Name, dst)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), o.SHA256) {
		t.Errorf("fetch of a tampered object: %v; want a checksum mismatch naming the recorded sum", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "previous" {
		t.Errorf("a refused fetch changed %s: %q", dst, got)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	bare := "masterd/test/c1/" + ObjectName("m2", taken)
	if _, err := admin.PutObject(ctx, cfg.Bucket, bare, bytes.NewReader(tampered), int64(len(tampered)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fetch(ctx, ObjectName("m2", taken), dst); err == nil || !strings.Contains(err.Error(), "no sha256 metadata") {
		t.Errorf("fetch of an object without checksum: %v", err)
	}
}

// Each operator mistake gets an error that says which: unknown object,
// malformed name, missing bucket, wrong secret, a key that may only read,
// an endpoint nobody answers.
func TestStoreErrorsNameTheProblem(t *testing.T) {
	cfg, srv := store(t)
	s := open(t, cfg)
	ctx := ctxT(t)
	file, _ := snapshotFile(t, 1024)
	dst := filepath.Join(t.TempDir(), "out.db")

	_, err := s.Fetch(ctx, "m9-20200101T000000Z.db", dst)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"m9-20200101T000000Z.db"`) || !strings.Contains(err.Error(), "s3://"+cfg.Bucket+"/masterd/test/c1/") {
		t.Errorf("unknown object: %v", err)
	}
	if _, err := s.Fetch(ctx, "../etc/passwd", dst); err == nil || !strings.Contains(err.Error(), "not a snapshot name") {
		t.Errorf("malformed name: %v", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed fetches created %s", dst)
	}

	nob := cfg
	nob.Bucket = "no-such-bucket-here"
	sn := open(t, nob)
	if _, err := sn.List(ctx); !errors.Is(err, ErrNoBucket) || !strings.Contains(err.Error(), `bucket "no-such-bucket-here" does not exist`) {
		t.Errorf("list of a missing bucket: %v", err)
	}
	if _, err := sn.Upload(ctx, file, "m1", time.Now()); !errors.Is(err, ErrNoBucket) {
		t.Errorf("upload to a missing bucket (the server must not create it): %v", err)
	}
	if _, err := sn.Fetch(ctx, "m1-20200101T000000Z.db", dst); !errors.Is(err, ErrNoBucket) {
		t.Errorf("fetch from a missing bucket: %v", err)
	}

	wrong := cfg
	wrong.CredentialsFile = filepath.Join(t.TempDir(), "wrong")
	s3.WriteCredentials(t, wrong.CredentialsFile, srv.AccessKeyID, "not-the-secret")
	if _, err := open(t, wrong).List(ctx); !errors.Is(err, ErrAccessDenied) || !strings.Contains(err.Error(), "refused the credentials from "+wrong.CredentialsFile) {
		t.Errorf("list with a wrong secret: %v", err)
	}
	unknown := cfg
	unknown.CredentialsFile = filepath.Join(t.TempDir(), "unknown")
	s3.WriteCredentials(t, unknown.CredentialsFile, "AKNOBODY", "whatever")
	if _, err := open(t, unknown).Upload(ctx, file, "m1", time.Now()); !errors.Is(err, ErrAccessDenied) {
		t.Errorf("upload with an unknown key: %v", err)
	}
	reader := cfg
	reader.CredentialsFile = filepath.Join(t.TempDir(), "reader")
	s3.WriteCredentials(t, reader.CredentialsFile, srv.ReaderKeyID, srv.ReaderSecret)
	if _, err := open(t, reader).List(ctx); err != nil {
		t.Errorf("list with the read-only key: %v", err)
	}
	if _, err := open(t, reader).Upload(ctx, file, "m1", time.Now()); !errors.Is(err, ErrAccessDenied) {
		t.Errorf("upload with a read-only key: %v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	gone := cfg
	gone.Endpoint = closed
	if _, err := open(t, gone).List(ctx); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "endpoint "+closed+" unreachable") {
		t.Errorf("list at a closed port: %v", err)
	}
}

// The daemon's uploader: the leader uploads and prunes; a follower skips
// while the store has a recent copy and uploads when the newest is older
// than 1.5 intervals; failures are counted, never returned to the member,
// and a later success sets the timestamp.
func TestUploaderUploadsAsLeaderOrWhenTheStoreIsStale(t *testing.T) {
	cfg, _ := store(t)
	cfg.Retention = 2
	ctx := ctxT(t)
	reg := prometheus.NewRegistry()
	up, err := NewUploader(UploaderConfig{Store: cfg, Master: "m1", Interval: time.Hour, Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	file, _ := snapshotFile(t, 4096)
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)

	if _, uploaded, err := up.Upload(ctx, file, t0, true); err != nil || !uploaded {
		t.Fatalf("leader upload: %v, %v", uploaded, err)
	}
	if _, uploaded, err := up.Upload(ctx, file, t0.Add(80*time.Minute), false); err != nil || uploaded {
		t.Errorf("follower with a copy 80 min old (interval 1h): uploaded %v, %v; want skipped", uploaded, err)
	}
	if _, uploaded, err := up.Upload(ctx, file, t0.Add(100*time.Minute), false); err != nil || !uploaded {
		t.Errorf("follower with a copy 100 min old: uploaded %v, %v; want uploaded", uploaded, err)
	}
	if _, uploaded, err := up.Upload(ctx, file, t0.Add(2*time.Hour), true); err != nil || !uploaded {
		t.Errorf("leader upload: %v, %v", uploaded, err)
	}
	objs, _ := open(t, cfg).List(ctx)
	if len(objs) != 2 || objs[0].Name != "m1-20261204T014000Z.db" || objs[1].Name != "m1-20261204T020000Z.db" {
		t.Errorf("after 3 uploads with retention 2: %+v", objs)
	}
	if got := testutil.ToFloat64(up.met.uploads); got != 3 {
		t.Errorf("masterd_backup_uploads_total = %v, want 3", got)
	}
	if got := testutil.ToFloat64(up.met.lastSuccess); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("masterd_backup_last_success_timestamp_seconds = %v, not recent", got)
	}

	// Failing: the credentials file is gone. Saved returns at once and the
	// failure is counted, in the background.
	os.Remove(cfg.CredentialsFile)
	up.Saved(file, t0.Add(3*time.Hour), true)
	deadline := time.Now().Add(time.Minute)
	for testutil.ToFloat64(up.met.failures) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("a failed upload was not counted in masterd_backup_upload_failures_total")
		}
		time.Sleep(50 * time.Millisecond)
	}
	n, err := testutil.GatherAndCount(reg, "masterd_backup_upload_failures_total", "masterd_backup_uploads_total", "masterd_backup_last_success_timestamp_seconds")
	if err != nil || n != 3 {
		t.Errorf("registered backup series: %d, %v; want 3", n, err)
	}
}
