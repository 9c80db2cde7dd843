package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/masterd/masterd/pki"
)

// Config says where a cluster's snapshots go.
type Config struct {
	// Endpoint is the store's URL, https://host[:port]; http:// only with
	// Insecure. Nothing after the host: buckets are addressed by path or
	// virtual host as the store supports (detected by the client).
	Endpoint string
	// Bucket must exist; masterd never creates one.
	Bucket string
	// Prefix is the key prefix of every object, e.g. "masterd"; empty puts
	// the cluster's directory at the top of the bucket.
	Prefix string
	// Region is the bucket's region; empty lets the client ask the store.
	Region string
	// Insecure allows an http:// endpoint: snapshots (and the Secrets in
	// them) then cross the network in plain text. TLS certificates are
	// always verified.
	Insecure bool
	// CAFile is a PEM bundle that verifies the https endpoint instead of
	// the system's roots; empty uses the system's.
	CAFile string
	// CredentialsFile holds the access key id and secret (mode 0600).
	CredentialsFile string
	// Cluster is the directory below Prefix, one per cluster.
	Cluster string
	// Retention is how many objects of the cluster Prune keeps, the newest.
	Retention int
}

// Limits of the configuration.
const (
	// MaxRetention bounds Config.Retention: a year of snapshots twice a day.
	MaxRetention = 1000
	// maxCredentialsSize bounds the credentials file: two keys of at most
	// a few hundred bytes (AWS session tokens are not supported).
	maxCredentialsSize = 4 << 10
)

// Problem is one invalid field of a Config, named as in masterd.yaml
// (lowerCamel, relative to etcd.backup.s3).
type Problem struct {
	Field string
	Msg   string
}

func (p Problem) Error() string { return p.Field + ": " + p.Msg }

// bucketRE is S3's bucket naming rule: 3-63 lowercase letters, digits,
// dots and hyphens, starting and ending with a letter or digit.
var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Problems reports every invalid field of c; it changes nothing and reads
// no file.
func (c Config) Problems() []Problem {
	var ps []Problem
	bad := func(field, format string, a ...any) {
		ps = append(ps, Problem{Field: field, Msg: fmt.Sprintf(format, a...)})
	}
	u, err := url.Parse(c.Endpoint)
	switch {
	case c.Endpoint == "":
		bad("endpoint", "is required, e.g. https://s3.example.com")
	case err != nil:
		bad("endpoint", "%q is not a URL", c.Endpoint)
	case u.Scheme != "https" && u.Scheme != "http":
		bad("endpoint", "%q must start with https:// (or http:// with insecure: true)", c.Endpoint)
	case u.Scheme == "http" && !c.Insecure:
		bad("endpoint", "%q is plain HTTP: snapshots hold every Secret; use https, or set insecure: true to accept that", c.Endpoint)
	case u.Host == "" || u.Hostname() == "":
		bad("endpoint", "%q has no host", c.Endpoint)
	case u.User != nil:
		bad("endpoint", "%q must not hold credentials (use credentialsFile)", redactURL(u))
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		bad("endpoint", "%q must be only scheme://host[:port]; put the bucket in bucket and key prefixes in prefix", c.Endpoint)
	}
	if !bucketRE.MatchString(c.Bucket) || strings.Contains(c.Bucket, "..") {
		bad("bucket", "%q must be an S3 bucket name: 3-63 lowercase letters, digits, '.' and '-'", c.Bucket)
	}
	if p := c.Prefix; p != "" {
		switch {
		case strings.HasPrefix(p, "/"):
			bad("prefix", "%q must not start with '/'", p)
		case len(p) > 256:
			bad("prefix", "is %d bytes long: at most 256", len(p))
		case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
			bad("prefix", "%q must not hold control characters or '\\'", p)
		default:
			for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
				if seg == "" || seg == "." || seg == ".." {
					bad("prefix", "%q has an empty, '.' or '..' path segment", p)
					break
				}
			}
		}
	}
	if c.Region != "" && !regexp.MustCompile(`^[a-z0-9-]{1,64}$`).MatchString(c.Region) {
		bad("region", "%q must be a region name such as eu-west-1", c.Region)
	}
	if c.CAFile != "" {
		if !filepath.IsAbs(c.CAFile) {
			bad("caFile", "%q must be an absolute path", c.CAFile)
		} else if err == nil && u.Scheme == "http" {
			bad("caFile", "is set but endpoint %q is plain HTTP", c.Endpoint)
		}
	}
	if c.CredentialsFile == "" {
		bad("credentialsFile", "is required: a file (mode 0600) with accessKeyID and secretAccessKey")
	} else if !filepath.IsAbs(c.CredentialsFile) {
		bad("credentialsFile", "%q must be an absolute path", c.CredentialsFile)
	}
	if c.Cluster == "" || strings.ContainsAny(c.Cluster, "/\\") || c.Cluster == "." || c.Cluster == ".." {
		bad("cluster", "%q must be a name without '/'", c.Cluster)
	}
	if c.Retention < 1 || c.Retention > MaxRetention {
		bad("retention", "%d is outside 1..%d", c.Retention, MaxRetention)
	}
	return ps
}

// Validate reports every problem of c at once (errors.Join of Problems).
func (c Config) Validate() error {
	var errs []error
	for _, p := range c.Problems() {
		errs = append(errs, p)
	}
	return errors.Join(errs...)
}

// redactURL is u without its password, for messages.
func redactURL(u *url.URL) string { return u.Redacted() }

// Credentials are an S3 access key id and its secret. String never shows
// the secret.
type Credentials struct {
	AccessKeyID     string `yaml:"accessKeyID"`
	SecretAccessKey string `yaml:"secretAccessKey"`
}

// String names the key id only.
func (c Credentials) String() string { return "access key " + c.AccessKeyID }

// ReadCredentials reads the credentials file at path. It refuses a file
// that anyone but its owner (root, or the user masterd runs as) could read
// or replace, as masterd refuses loose key files. Errors never hold the
// file's content.
func ReadCredentials(path string) (Credentials, error) {
	if err := pki.CheckPermissions(path); err != nil {
		return Credentials{}, fmt.Errorf("backup: credentials file: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("backup: credentials file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialsSize+1))
	if err != nil {
		return Credentials{}, fmt.Errorf("backup: credentials file %s: %w", path, err)
	}
	if len(data) > maxCredentialsSize {
		return Credentials{}, fmt.Errorf("backup: credentials file %s is larger than %d bytes", path, maxCredentialsSize)
	}
	var c Credentials
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		// yaml's messages may quote the content: say only where it broke.
		return Credentials{}, fmt.Errorf("backup: credentials file %s: not YAML with the keys accessKeyID and secretAccessKey (%s)", path, yamlWhere(err))
	}
	var missing []string
	if strings.TrimSpace(c.AccessKeyID) == "" {
		missing = append(missing, "accessKeyID")
	}
	if strings.TrimSpace(c.SecretAccessKey) == "" {
		missing = append(missing, "secretAccessKey")
	}
	if len(missing) > 0 {
		return Credentials{}, fmt.Errorf("backup: credentials file %s: %s missing or empty", path, strings.Join(missing, " and "))
	}
	c.AccessKeyID, c.SecretAccessKey = strings.TrimSpace(c.AccessKeyID), strings.TrimSpace(c.SecretAccessKey)
	return c, nil
}

// lineRE finds the line number in a yaml error.
var lineRE = regexp.MustCompile(`line \d+`)

// yamlWhere is the position yaml reports in err ("line 3"), or a generic
// word: never the rest of the message, which can quote a secret.
func yamlWhere(err error) string {
	if errors.Is(err, io.EOF) {
		return "empty file"
	}
	if m := lineRE.FindString(err.Error()); m != "" {
		return "at " + m
	}
	return "malformed"
}
