package atomicfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Option changes how a file is written.
type Option func(*options)

type options struct {
	uid, gid int // -1: unchanged (the writer's)
	dirPerm  fs.FileMode
	mkdir    bool
}

// Owner gives the file this owner and group (needs the privilege to chown).
func Owner(uid, gid int) Option {
	return func(o *options) { o.uid, o.gid = uid, gid }
}

// MkdirAll creates the file's directory and its parents with perm first
// when they are missing.
func MkdirAll(perm fs.FileMode) Option {
	return func(o *options) { o.mkdir, o.dirPerm = true, perm }
}

// sync is (*os.File).Sync; tests replace it to prove it is on the path.
var sync = (*os.File).Sync

// WriteFile makes path hold data with mode perm, atomically and durably.
func WriteFile(path string, data []byte, perm fs.FileMode, opts ...Option) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, opts...)
}

// Write makes path hold what write writes, with mode perm, atomically and
// durably. write gets the temporary file; an error from it abandons the
// file and is returned as is.
func Write(path string, perm fs.FileMode, write func(io.Writer) error, opts ...Option) (err error) {
	o := options{uid: -1, gid: -1}
	for _, opt := range opts {
		opt(&o)
	}
	dir := filepath.Dir(path)
	if o.mkdir {
		if err := os.MkdirAll(dir, o.dirPerm); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Mode and owner before the data: a secret is never readable by others,
	// not even while it is written.
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if o.uid >= 0 || o.gid >= 0 {
		if err := f.Chown(o.uid, o.gid); err != nil {
			return err
		}
	}
	if err := write(f); err != nil {
		return err
	}
	if err := sync(f); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	renamed = true
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := sync(d); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
