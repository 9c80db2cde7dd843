package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CheckPermissions refuses a file that group or others may read or write,
// or that is not a regular file; the error says how to fix it.
func CheckPermissions(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("pki: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("pki: %s is accessible by group or others (mode %04o); it holds private keys: run chmod 600 %s", path, perm, path)
	}
	return nil
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
	if err := writeFileAtomic(path, data, 0o600); err != nil {
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

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, then syncs the directory.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
