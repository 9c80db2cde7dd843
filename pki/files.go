package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/masterd/masterd/internal/atomicfile"
)

// CheckPermissions refuses a file of key material that anyone but root (or
// the user masterd runs as) could read, write or replace: not a regular
// file, owned by another user, readable or writable by group or others, or
// in a directory owned by another user or writable by group or others. The
// error names every problem and the commands that fix it.
func CheckPermissions(path string) error {
	return errors.Join(checkOwned(path, privateFile), checkOwned(filepath.Dir(path), keyDir))
}

// CheckDir refuses a pki directory (the layout of [FilesIn]) that anyone but
// root (or the user masterd runs as) could change: the directory, or any
// file of the layout present in it, owned by another user or writable by
// group or others, or a private key or kubeconfig readable by them. Missing
// files are no problem (Ensure writes them). Every problem is reported.
func CheckDir(dir string) error {
	if err := checkOwned(dir, keyDir); err != nil {
		return err // a file in an untrusted directory cannot be trusted either
	}
	f := FilesIn(dir)
	var errs []error
	check := func(path string, k ownedKind) {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err := checkOwned(path, k); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range []Pair{f.EtcdServer, f.EtcdPeer, f.EtcdClient, f.APIServerEtcdClient, f.KubeCA,
		f.APIServer, f.APIServerKubeletClient, f.FrontProxyClient} {
		check(p.Cert, publicFile)
		check(p.Key, privateFile)
	}
	for _, p := range []string{f.EtcdCA, f.FrontProxyCA, f.ServiceAccountPub} {
		check(p, publicFile)
	}
	for _, p := range []string{f.ServiceAccountKey, f.AdminConf, f.SchedulerConf, f.ControllerManagerConf,
		filepath.Join(dir, EncryptionConfigName)} {
		check(p, privateFile)
	}
	// Whoever can replace the audit policy can turn the audit log off.
	check(filepath.Join(dir, AuditPolicyName), publicFile)
	return errors.Join(errs...)
}

// ownedKind is what a checked path holds, which decides the access allowed
// to group and others.
type ownedKind int

const (
	privateFile ownedKind = iota // private keys, kubeconfigs: no access (0600)
	publicFile                   // certificates, public keys: read only (0644)
	keyDir                       // a directory of key material: no write (0700 or 0755)
)

// checkOwned checks one path's type, owner and mode.
func checkOwned(path string, k ownedKind) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	deny, fixMode, what := fs.FileMode(0o077), "600", "it holds private keys"
	switch k {
	case publicFile:
		deny, fixMode, what = 0o022, "644", "it holds a certificate others trust"
	case keyDir:
		deny, fixMode, what = 0o022, "go-w", "it holds key material"
	}
	if k == keyDir && !fi.IsDir() {
		return fmt.Errorf("pki: %s is not a directory", path)
	}
	if k != keyDir && !fi.Mode().IsRegular() {
		return fmt.Errorf("pki: %s is not a regular file", path)
	}
	var problems []string
	uid := fileOwner(fi)
	if uid >= 0 && !trustedOwner(uid) {
		problems = append(problems, fmt.Sprintf("owned by uid %d", uid))
	}
	if perm := fi.Mode().Perm(); perm&deny != 0 {
		access := "accessible"
		if deny == 0o022 {
			access = "writable"
		}
		problems = append(problems, fmt.Sprintf("%s by group or others (mode %04o)", access, perm))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("pki: %s is %s; %s: run chown %s %s; chmod %s %s",
		path, strings.Join(problems, " and "), what, ownerName(), path, fixMode, path)
}

// trustedOwner: root, or the user this process runs as (a daemon started as
// a dedicated user, the tests of an unprivileged developer).
func trustedOwner(uid int) bool { return uid == 0 || uid == os.Geteuid() }

// ownerName is the chown argument that makes a file trusted.
func ownerName() string {
	if uid := os.Geteuid(); uid != 0 {
		return strconv.Itoa(uid)
	}
	return "root:root"
}

// fileOwner returns the owner's uid, or -1 where the platform has none.
func fileOwner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// WriteSecret writes s to path with mode 0600, atomically (a crash leaves the
// old file or the new one). It refuses to replace an existing file unless
// force is set. A missing parent directory is created with mode 0700.
func WriteSecret(path string, s *Secret, force bool) error {
	data, err := EncodeSecret(s)
	if err != nil {
		return err
	}
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("pki: %s already exists; it may be the secret of a running cluster (pass --force to replace it)", path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pki: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("pki: create directory for secret: %w", err)
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("pki: write secret: %w", err)
	}
	return nil
}

// LoadSecret reads and decodes the cluster secret at path after checking
// that only its owner can read it.
func LoadSecret(path string) (*Secret, error) {
	if err := CheckPermissions(path); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	s, err := decodeSecret(data)
	if err != nil {
		return nil, fmt.Errorf("pki: load secret %s: %w", path, err)
	}
	return s, nil
}

// InitText is the "next steps" text `masterd init` prints after writing the
// secret to path.
func InitText(path string) string {
	return fmt.Sprintf(`Wrote the cluster secret to %[1]s (mode 0600).

Next steps:
  1. Copy %[1]s to the same path on every other master, keeping mode 0600,
     for example:
       scp -p %[1]s root@<master>:%[1]s
       ssh root@<master> chmod 600 %[1]s
     It holds the cluster's CA keys and gossip key: never put it anywhere else.
  2. On every master, edit /etc/masterd/masterd.yaml: this node's name and
     address, the peers (every master's name and address) and the VIP.
  3. On every master: systemctl enable --now masterd
     Each master derives its own certificates and kubeconfigs from the secret;
     admin.conf for kubectl is in the data directory's pki/.
`, path)
}
