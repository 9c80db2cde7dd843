package units

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
)

// Processes returns the PIDs (as seen from the supervisor's root) of every
// process in the unit's control group and its sub-groups: empty when the
// unit has no cgroup (stopped and cleaned up) or it is empty. It reads
// cgroup.procs: unlike the unit's state it also sees processes that an
// installed unit with KillMode=process or none leaves behind.
func (s *Supervisor) Processes(ctx context.Context, name string) ([]int, error) {
	dir, err := s.cgroupDir(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("units: processes of %s: %w", name, err)
	}
	pids, err := groupProcesses(dir)
	if err != nil {
		return nil, fmt.Errorf("units: processes of %s: %w", name, err)
	}
	return pids, nil
}

// groupProcesses returns the PIDs listed in the cgroup.procs of the
// control group at dir and of its sub-groups; none when dir is "" or the
// group does not exist (any more).
func groupProcesses(dir string) ([]int, error) {
	if dir == "" {
		return nil, nil
	}
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed while walking: empty
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENODEV) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return pids, nil
}

// cgroupDir returns the directory of the unit's control group ("" when it
// has none), from its ControlGroup property.
func (s *Supervisor) cgroupDir(ctx context.Context, name string) (string, error) {
	var cg string
	err := s.do(ctx, func(c *sdbus.Conn) error {
		p, err := c.GetUnitTypePropertyContext(ctx, name, "Service", "ControlGroup")
		if err != nil {
			return err
		}
		cg, _ = p.Value.Value().(string)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read ControlGroup: %w", err)
	}
	if cg == "" {
		return "", nil
	}
	mnt, err := s.cgroupMount()
	if err != nil {
		return "", err
	}
	return filepath.Join(mnt, cg), nil
}

// cgroupMount finds the hierarchy systemd's ControlGroup paths are
// relative to: cgroup2 at /sys/fs/cgroup (unified), else at
// /sys/fs/cgroup/unified (hybrid), else the name=systemd v1 hierarchy.
func (s *Supervisor) cgroupMount() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st syscall.Statfs_t
		if err := syscall.Statfs(s.root+p, &st); err == nil && st.Type == cgroup2Magic {
			return s.root + p, nil
		}
	}
	p := s.root + "/sys/fs/cgroup/systemd"
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("find the cgroup hierarchy: %w", err)
	}
	return p, nil
}

// cgroup2Magic is CGROUP2_SUPER_MAGIC, statfs's f_type of a cgroup2 mount.
const cgroup2Magic = 0x63677270
