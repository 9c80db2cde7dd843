package etcdembed

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DataDirInUseError is returned by Start and Restore when another process
// (or another Member of this one) holds the data dir's lock: a running member.
type DataDirInUseError struct {
	// DataDir is the etcd data dir, LockFile the lock beside it.
	DataDir, LockFile string
	// PID is the holder's process ID as it wrote it into the lock file; 0
	// when unknown.
	PID int
}

func (e *DataDirInUseError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder = "process " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("etcd data dir %s is in use by %s (lock %s held)", e.DataDir, holder, e.LockFile)
}

// lockFile is the lock beside the data dir: <DataDir>.lock. It sits beside
// and not inside, so that moving the data dir aside (restore) keeps it.
func (c Config) lockFile() string {
	return filepath.Clean(c.DataDir) + ".lock"
}

// dataDirLock is an exclusive flock(2) on Config.lockFile. The kernel drops
// it when its holder exits, so a crashed member leaves no stale lock.
type dataDirLock struct{ f *os.File }

// lockDataDir takes the data dir's lock without waiting and writes this
// process's ID into the lock file; a held lock is a *DataDirInUseError.
// flock conflicts between two open files of one process too, so two Members
// of one process on one data dir also exclude each other.
func lockDataDir(c Config) (*dataDirLock, error) {
	path := c.lockFile()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("etcdembed: lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("etcdembed: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &DataDirInUseError{DataDir: c.DataDir, LockFile: path, PID: readPID(f)}
		}
		return nil, fmt.Errorf("etcdembed: lock %s: %w", path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(pid, 0) // the PID only improves the message of a refusal
	}
	return &dataDirLock{f: f}, nil
}

// readPID reads the holder's process ID from a lock file; 0 if unreadable.
func readPID(f *os.File) int {
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, 32), 32))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// unlock releases the lock; the file stays (removing it would race with a
// process that opened it and waits to lock it). Safe on a nil lock.
func (l *dataDirLock) unlock() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Close() // closing the only descriptor releases the flock
	l.f = nil
}
