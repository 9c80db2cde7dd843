package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{
		Endpoint: "https://s3.example.com", Bucket: "etcd-backups", Prefix: "masterd",
		CredentialsFile: "/etc/masterd/backup-s3.credentials", Cluster: "prod", Retention: 10,
	}
}

func TestValidConfigHasNoProblems(t *testing.T) {
	for _, c := range []Config{
		validConfig(),
		func() Config { c := validConfig(); c.Endpoint = "http://127.0.0.1:8333"; c.Insecure = true; return c }(),
		func() Config { c := validConfig(); c.Endpoint = "https://[::1]:9000/"; c.Prefix = ""; return c }(),
		func() Config {
			c := validConfig()
			c.Prefix = "a/b/"
			c.Region = "eu-west-1"
			c.CAFile = "/etc/ca.pem"
			return c
		}(),
	} {
		if ps := c.Problems(); len(ps) > 0 {
			t.Errorf("%+v: %v", c, ps)
		}
	}
}

// Each bad value is reported under its masterd.yaml key, with what is
// allowed.
func TestConfigProblemsNameTheField(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(*Config)
		field string
		want  string
	}{
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, "endpoint", "is required"},
		{"plain http", func(c *Config) { c.Endpoint = "http://s3.example.com" }, "endpoint", "insecure: true"},
		{"no scheme", func(c *Config) { c.Endpoint = "s3.example.com:9000" }, "endpoint", "must start with https://"},
		{"path", func(c *Config) { c.Endpoint = "https://s3.example.com/bucket" }, "endpoint", "only scheme://host[:port]"},
		{"credentials in the URL", func(c *Config) { c.Endpoint = "https://AKIA:sekrit@s3.example.com" }, "endpoint", "must not hold credentials"},
		{"no host", func(c *Config) { c.Endpoint = "https://" }, "endpoint", "no host"},
		{"bucket upper case", func(c *Config) { c.Bucket = "Backups" }, "bucket", "S3 bucket name"},
		{"bucket short", func(c *Config) { c.Bucket = "ab" }, "bucket", "S3 bucket name"},
		{"prefix absolute", func(c *Config) { c.Prefix = "/masterd" }, "prefix", "must not start with '/'"},
		{"prefix dots", func(c *Config) { c.Prefix = "a/../b" }, "prefix", "'..'"},
		{"prefix empty segment", func(c *Config) { c.Prefix = "a//b" }, "prefix", "empty"},
		{"region", func(c *Config) { c.Region = "EU West" }, "region", "region name"},
		{"caFile relative", func(c *Config) { c.CAFile = "ca.pem" }, "caFile", "absolute"},
		{"caFile with http", func(c *Config) { c.Endpoint = "http://h"; c.Insecure = true; c.CAFile = "/ca.pem" }, "caFile", "plain HTTP"},
		{"no credentials", func(c *Config) { c.CredentialsFile = "" }, "credentialsFile", "is required"},
		{"relative credentials", func(c *Config) { c.CredentialsFile = "creds" }, "credentialsFile", "absolute"},
		{"cluster with slash", func(c *Config) { c.Cluster = "a/b" }, "cluster", "without '/'"},
		{"retention 0", func(c *Config) { c.Retention = 0 }, "retention", "outside 1..1000"},
	} {
		cfg := validConfig()
		c.edit(&cfg)
		ps := cfg.Problems()
		if len(ps) != 1 || ps[0].Field != c.field || !strings.Contains(ps[0].Msg, c.want) {
			t.Errorf("%s: %v; want one problem of %s saying %q", c.name, ps, c.field, c.want)
		}
		if strings.Contains(cfg.Validate().Error(), "sekrit") {
			t.Errorf("%s: the error shows the password of the URL: %v", c.name, cfg.Validate())
		}
	}
	if ps := (Config{}).Problems(); len(ps) != 5 {
		t.Errorf("the zero Config has %d problems, want 5 (endpoint, bucket, credentialsFile, cluster, retention): %v", len(ps), ps)
	}
}

func TestObjectNamesRoundTrip(t *testing.T) {
	taken := time.Date(2026, 12, 4, 0, 15, 0, 0, time.UTC)
	for _, master := range []string{"m1", "master-3", "cp.example.com"} {
		name := ObjectName(master, taken.In(time.FixedZone("CET", 3600)))
		m, tk, err := ParseName(name)
		if err != nil || m != master || !tk.Equal(taken) {
			t.Errorf("ParseName(%q) = %q, %v, %v; want %q, %v", name, m, tk, err, master, taken)
		}
	}
	if got := ObjectName("m1", taken); got != "m1-20261204T001500Z.db" {
		t.Errorf("ObjectName = %q", got)
	}
	for _, bad := range []string{"", ".db", "m1.db", "m1-20261204T001500Z", "-20261204T001500Z.db", "M1-20261204T001500Z.db",
		"m1-20261304T001500Z.db", "m1_20261204T001500Z.db", "a/m1-20261204T001500Z.db", "m1-2026120T4001500Z.db"} {
		if _, _, err := ParseName(bad); err == nil {
			t.Errorf("ParseName(%q) accepted", bad)
		}
	}
	if tk, ok := SnapshotTime("etcd-20261204T001500Z.db"); !ok || !tk.Equal(taken) {
		t.Errorf("SnapshotTime = %v, %v", tk, ok)
	}
	if _, ok := SnapshotTime("manual.db"); ok {
		t.Error("SnapshotTime read a time from manual.db")
	}
}

// The credentials file: two keys, mode 0600; a looser mode, a missing key,
// an unknown key or a broken file is refused, and no error ever shows the
// secret.
func TestReadCredentials(t *testing.T) {
	dir := t.TempDir()
	const secret = "s3cr3t-Value/with+chars"
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "accessKeyID: AKID\nsecretAccessKey: "+secret+"\n", 0o600)
	c, err := ReadCredentials(good)
	if err != nil || c.AccessKeyID != "AKID" || c.SecretAccessKey != secret {
		t.Fatalf("ReadCredentials = %+v, %v", c, err)
	}
	if s := c.String(); strings.Contains(s, secret) {
		t.Errorf("Credentials.String shows the secret: %s", s)
	}
	for _, c := range []struct {
		name, data string
		mode       os.FileMode
		want       string
	}{
		{"loose", "accessKeyID: AKID\nsecretAccessKey: " + secret + "\n", 0o644, "chmod 600"},
		{"nosecret", "accessKeyID: AKID\n", 0o600, "secretAccessKey missing"},
		{"empty", "", 0o600, "empty file"},
		{"unknown", "accessKeyID: AKID\nsecretAccessKey: x\nsessionToken: " + secret + "\n", 0o600, "at line 3"},
		{"broken", "accessKeyID: [" + secret + "\n", 0o600, "not YAML"},
		{"huge", "accessKeyID: " + strings.Repeat("A", 5000) + "\n", 0o600, "larger than"},
	} {
		p := write(c.name, c.data, c.mode)
		_, err := ReadCredentials(p)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v; want an error naming %s saying %q", c.name, err, p, c.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the secret: %v", c.name, err)
		}
	}
	if _, err := ReadCredentials(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
}
