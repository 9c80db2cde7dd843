package labhost

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// owner records which process booted a lab host, so that a later Boot can
// remove the leftovers of a test process that died without Close (SIGKILL,
// timeout): its mounts, cgroup and created namespace stay behind, and its
// host name (with the dead PID in it) would never be booted again.
type owner struct {
	PID          int    `json:"pid"`
	NetNS        string `json:"netns"`
	CreatedNetNS bool   `json:"created_netns"`
}

func ownerFile(name string) string { return filepath.Join(stateRoot, name+".owner") }

func (h *Host) writeOwner() error {
	b, _ := json.Marshal(owner{PID: os.Getpid(), NetNS: h.netns, CreatedNetNS: h.createdNetNS})
	if err := os.MkdirAll(stateRoot, 0o700); err != nil {
		return err
	}
	return os.WriteFile(ownerFile(h.name), b, 0o600)
}

// CleanStale removes the leftovers of lab hosts whose owning process is
// gone. Boot calls it; it is safe to call at any time.
func CleanStale() error {
	files, _ := filepath.Glob(filepath.Join(stateRoot, "*.owner"))
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var o owner
		if json.Unmarshal(b, &o) != nil || o.PID <= 0 || o.PID == os.Getpid() {
			continue
		}
		if err := syscall.Kill(o.PID, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // owner alive
		}
		name := strings.TrimSuffix(filepath.Base(f), ".owner")
		if !nameRE.MatchString(name) {
			continue
		}
		h := &Host{name: name, netns: o.NetNS, createdNetNS: o.CreatedNetNS,
			dir: filepath.Join(stateRoot, name), cgroup: filepath.Join(cgroupRoot, "masterd-lab-"+name)}
		if err := h.cleanup(); err != nil {
			errs = append(errs, err)
			continue
		}
		_ = os.Remove(f)
	}
	return errors.Join(errs...)
}
