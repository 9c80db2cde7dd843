package backup

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/masterd/masterd/internal/atomicfile"
)

// sumKey is the user metadata key holding an object's SHA-256 (hex); S3
// sends it as x-amz-meta-sha256 and the client returns it canonicalised.
const sumKey = "Sha256"

// Store is one cluster's directory in a bucket.
type Store struct {
	cfg   Config
	cli   *minio.Client
	host  string // the endpoint's host[:port]
	dir   string // <prefix>/<cluster>/, the key prefix of every object
	where string // s3://bucket/dir, for messages
}

// Object is one snapshot in the store.
type Object struct {
	// Name is the key below the cluster's directory: MASTER-TIME.db.
	Name string
	// Key is the object's full key in the bucket.
	Key string
	// Size is the object's size in bytes.
	Size int64
	// Master took the snapshot, at Taken (from the name, UTC).
	Master string
	Taken  time.Time
	// Modified is when the store last wrote the object.
	Modified time.Time
	// SHA256 is the checksum recorded at upload (hex); List leaves it
	// empty (stores do not list metadata).
	SHA256 string
}

// Open checks cfg, reads the credentials file and prepares a client. It
// does not talk to the store: a bad endpoint or key shows at the first
// operation, each of which names what failed.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("backup: invalid config: %w", err)
	}
	creds, err := ReadCredentials(cfg.CredentialsFile)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.Endpoint) // Validate parsed it
	secure := u.Scheme == "https"
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("backup: transport: %w", err)
	}
	// Bounded dials: an unreachable endpoint fails in seconds, not at the
	// operating system's TCP timeout.
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = time.Minute
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("backup: caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("backup: caFile %s holds no PEM certificate", cfg.CAFile)
		}
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	cli, err := minio.New(u.Host, &minio.Options{
		Creds:     credentials.NewStaticV4(creds.AccessKeyID, creds.SecretAccessKey, ""),
		Secure:    secure,
		Region:    cfg.Region,
		Transport: tr,
		// A few retries ride out a store restarting; ten (the default,
		// with backoff) keep an unreachable endpoint's error away for
		// minutes.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("backup: endpoint %s: %w", cfg.Endpoint, err)
	}
	dir := cfg.Cluster + "/"
	if p := strings.TrimSuffix(cfg.Prefix, "/"); p != "" {
		dir = p + "/" + dir
	}
	return &Store{cfg: cfg, cli: cli, host: u.Host, dir: dir, where: "s3://" + cfg.Bucket + "/" + dir}, nil
}

// Where is the store's directory of this cluster, s3://bucket/prefix/cluster/.
func (s *Store) Where() string { return s.where }

// Upload copies the snapshot file at file into the store as master's
// snapshot taken at taken, with its SHA-256 as metadata.
func (s *Store) Upload(ctx context.Context, file, master string, taken time.Time) (Object, error) {
	name := ObjectName(master, taken)
	if _, _, err := ParseName(name); err != nil {
		return Object{}, fmt.Errorf("backup: upload %s: %w", file, err)
	}
	f, err := os.Open(file)
	if err != nil {
		return Object{}, fmt.Errorf("backup: upload: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return Object{}, fmt.Errorf("backup: upload: read %s: %w", file, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Object{}, fmt.Errorf("backup: upload: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	key := s.dir + name
	info, err := s.cli.PutObject(ctx, s.cfg.Bucket, key, f, size, minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		UserMetadata: map[string]string{sumKey: sum},
	})
	if err != nil {
		return Object{}, s.explain("upload "+file+" to "+s.where+name, "", err)
	}
	if info.Size != size {
		return Object{}, fmt.Errorf("backup: upload %s to %s%s: the store took %d of %d bytes", file, s.where, name, info.Size, size)
	}
	return Object{Name: name, Key: key, Size: size, Master: master, Taken: taken.UTC().Truncate(time.Second),
		Modified: info.LastModified, SHA256: sum}, nil
}

// List returns the cluster's snapshots, oldest first. Objects in the
// directory whose names ObjectName does not make are left out.
func (s *Store) List(ctx context.Context) ([]Object, error) {
	var objs []Object
	for info := range s.cli.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.dir, Recursive: true}) {
		if info.Err != nil {
			return nil, s.explain("list "+s.where, "", info.Err)
		}
		name := strings.TrimPrefix(info.Key, s.dir)
		master, taken, err := ParseName(name)
		if err != nil || strings.Contains(name, "/") {
			continue
		}
		objs = append(objs, Object{Name: name, Key: info.Key, Size: info.Size, Master: master, Taken: taken, Modified: info.LastModified})
	}
	sortObjects(objs)
	return objs, nil
}

// sortObjects orders by time taken, then name.
func sortObjects(objs []Object) {
	sort.Slice(objs, func(i, j int) bool {
		if !objs[i].Taken.Equal(objs[j].Taken) {
			return objs[i].Taken.Before(objs[j].Taken)
		}
		return objs[i].Name < objs[j].Name
	})
}

// Fetch copies the snapshot name (as List shows it) to the file dst (mode
// 0600), atomically: dst appears only complete and with the SHA-256
// recorded at upload; a copy that differs is refused and dst is left as it
// was.
func (s *Store) Fetch(ctx context.Context, name, dst string) (Object, error) {
	master, taken, err := ParseName(name)
	if err != nil || strings.Contains(name, "/") {
		if err == nil {
			err = fmt.Errorf("%q is not a snapshot name", name)
		}
		return Object{}, fmt.Errorf("backup: fetch: %w (names as 'masterd etcd snapshot list --s3' shows them)", err)
	}
	key := s.dir + name
	what := "fetch " + s.where + name
	obj, err := s.cli.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return Object{}, s.explain(what, name, err)
	}
	defer obj.Close()
	info, err := obj.Stat()
	if err != nil {
		return Object{}, s.explain(what, name, err)
	}
	var want string
	for k, v := range info.UserMetadata {
		if strings.EqualFold(k, sumKey) {
			want = strings.ToLower(v)
		}
	}
	if len(want) != sha256.Size*2 {
		return Object{}, fmt.Errorf("backup: %s: the object has no sha256 metadata (not uploaded by masterd?); refusing an unverifiable snapshot", what)
	}
	var got string
	var n int64
	var verr error // the copy's own failure, already explained
	err = atomicfile.Write(dst, 0o600, func(w io.Writer) error {
		h := sha256.New()
		var cerr error
		n, cerr = io.Copy(io.MultiWriter(w, h), obj)
		got = hex.EncodeToString(h.Sum(nil))
		switch {
		case cerr != nil:
			verr = s.explain(what, name, cerr)
		case n != info.Size:
			verr = fmt.Errorf("backup: %s: got %d bytes, the store lists %d; %s not written", what, n, info.Size, dst)
		case got != want:
			verr = fmt.Errorf("backup: %s: checksum mismatch: content sha256 %s, recorded at upload %s; %s not written", what, got, want, dst)
		}
		return verr
	})
	if verr != nil {
		return Object{}, verr
	}
	if err != nil {
		return Object{}, fmt.Errorf("backup: %s to %s: %w", what, dst, err)
	}
	return Object{Name: name, Key: key, Size: n, Master: master, Taken: taken, Modified: info.LastModified, SHA256: got}, nil
}

// Prune deletes the cluster's oldest snapshots beyond the newest keep and
// returns those it deleted.
func (s *Store) Prune(ctx context.Context, keep int) ([]Object, error) {
	if keep < 1 {
		return nil, fmt.Errorf("backup: prune: keep %d: must be at least 1", keep)
	}
	objs, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	if len(objs) <= keep {
		return nil, nil
	}
	var removed []Object
	for _, o := range objs[:len(objs)-keep] {
		if err := s.cli.RemoveObject(ctx, s.cfg.Bucket, o.Key, minio.RemoveObjectOptions{}); err != nil {
			return removed, s.explain("prune "+s.where+o.Name, o.Name, err)
		}
		removed = append(removed, o)
	}
	return removed, nil
}

// Newest returns the cluster's newest snapshot; ok is false when there is
// none.
func (s *Store) Newest(ctx context.Context) (o Object, ok bool, err error) {
	objs, err := s.List(ctx)
	if err != nil || len(objs) == 0 {
		return Object{}, false, err
	}
	return objs[len(objs)-1], true, nil
}

// Error kinds, for errors.Is on what Store's methods return.
var (
	ErrNotFound       = errors.New("no such snapshot")
	ErrNoBucket       = errors.New("bucket does not exist")
	ErrAccessDenied   = errors.New("credentials refused")
	ErrUnreachable    = errors.New("endpoint unreachable")
	ErrUntrustedStore = errors.New("endpoint's TLS certificate not trusted")
)

// kindError is a classified failure: errors.Is finds its kind, Unwrap the
// cause.
type kindError struct {
	msg   string
	kind  error
	cause error
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Unwrap() []error      { return []error{e.kind, e.cause} }
func (e *kindError) Is(target error) bool { return target == e.kind }

// explain turns a client error of operation what into one that says what
// is wrong in the operator's terms: the bucket, the object name, the
// credentials or the endpoint. name is the object concerned, if any.
func (s *Store) explain(what, name string, err error) error {
	wrap := func(kind error, format string, a ...any) error {
		return &kindError{msg: "backup: " + what + ": " + fmt.Sprintf(format, a...), kind: kind, cause: err}
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchBucket":
		return wrap(ErrNoBucket, "bucket %q does not exist at %s (create it first; masterd never creates buckets)", s.cfg.Bucket, s.cfg.Endpoint)
	case "NoSuchKey", "NotFound":
		if name != "" {
			// A HEAD of a missing bucket also says NoSuchKey.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			ok, berr := s.cli.BucketExists(ctx, s.cfg.Bucket)
			cancel()
			if berr == nil && !ok {
				return wrap(ErrNoBucket, "bucket %q does not exist at %s", s.cfg.Bucket, s.cfg.Endpoint)
			}
			return wrap(ErrNotFound, "no snapshot %q in %s (see 'masterd etcd snapshot list --s3')", name, s.where)
		}
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "InvalidSecurity":
		return wrap(ErrAccessDenied, "%s refused the credentials from %s (%s: %s)", s.cfg.Endpoint, s.cfg.CredentialsFile, resp.Code, resp.Message)
	}
	if resp.Code == "" && resp.StatusCode == http.StatusForbidden {
		return wrap(ErrAccessDenied, "%s refused the credentials from %s (HTTP 403)", s.cfg.Endpoint, s.cfg.CredentialsFile)
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) {
		return wrap(ErrUntrustedStore, "the TLS certificate of %s is not trusted (caFile: %q): %v", s.cfg.Endpoint, s.cfg.CAFile, err)
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
		return wrap(ErrUnreachable, "endpoint %s unreachable: %v", s.cfg.Endpoint, err)
	}
	if resp.Code != "" {
		return fmt.Errorf("backup: %s: %s: %s: %w", what, s.cfg.Endpoint, resp.Code, err)
	}
	return fmt.Errorf("backup: %s: %w", what, err)
}

// LocalSnapshot is one snapshot file on this master.
type LocalSnapshot struct {
	Name  string
	Path  string
	Size  int64
	Taken time.Time // from the name, else the file's modification time
}

// ListLocal lists the snapshot files (*.db) in dir, oldest first; a
// missing dir has none.
func ListLocal(dir string) ([]LocalSnapshot, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backup: list %s: %w", dir, err)
	}
	var out []LocalSnapshot
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), nameSuffix) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile (pruned)
		}
		t, ok := SnapshotTime(e.Name())
		if !ok {
			t = fi.ModTime().UTC()
		}
		out = append(out, LocalSnapshot{Name: e.Name(), Path: filepath.Join(dir, e.Name()), Size: fi.Size(), Taken: t})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Taken.Equal(out[j].Taken) {
			return out[i].Taken.Before(out[j].Taken)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
