package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/masterd/masterd/integration/labhost"
	"golang.org/x/sys/unix"
)

// cgroupRoot is where labhost makes each host's cgroup (masterd-lab-<name>).
const cgroupRoot = "/sys/fs/cgroup/unified"

// Clean removes everything a lab with this prefix may have left behind, from
// the names alone: the processes of its hosts (through their cgroups) and of
// its namespaces, its hosts' mounts and cgroups, its network namespaces and its
// state directory. Nothing of the lab needs to be running; nothing outside
// the prefix is touched.
func Clean(prefix string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("lab: clean: prefix %q: not a lab prefix", prefix)
	}
	var errs []error
	hosts := map[string]bool{}
	var owners []string
	if ents, err := os.ReadDir(stateRoot); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix+"-") {
				if strings.HasSuffix(e.Name(), ".owner") {
					// labhost's record of who booted the host.
					owners = append(owners, filepath.Join(stateRoot, e.Name()))
					continue
				}
				hosts[e.Name()] = true
			}
		}
	}
	if ents, err := os.ReadDir(cgroupRoot); err == nil {
		for _, e := range ents {
			if n, ok := strings.CutPrefix(e.Name(), "masterd-lab-"+prefix+"-"); ok {
				hosts[prefix+"-"+n] = true
			}
		}
	}
	for name := range hosts {
		cg := filepath.Join(cgroupRoot, "masterd-lab-"+name)
		if _, err := os.Stat(cg); err == nil {
			if err := killCgroup(cg); err != nil {
				errs = append(errs, err)
			}
		}
	}
	var nss []string
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix+"-") {
				nss = append(nss, e.Name())
			}
		}
	}
	// Processes the lab started in its namespaces (ping, kubectl, a master's
	// launcher) die before their namespaces go.
	killInNetNS(nss)
	for name := range hosts {
		dir := filepath.Join(stateRoot, name)
		if err := labhost.UnmountUnder(dir); err != nil {
			errs = append(errs, err)
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		if err := labhost.RemoveCgroup(filepath.Join(cgroupRoot, "masterd-lab-"+name)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range nss {
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns delete %s: %w: %s", ns, err, strings.TrimSpace(string(out))))
		}
	}
	for _, o := range owners {
		if err := os.Remove(o); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(stateRoot, prefix)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab: clean %s: %w", prefix, err)
	}
	return nil
}

// killInNetNS SIGKILLs every process whose network namespace is one of the
// named ones, and waits (briefly) until they are gone.
func killInNetNS(names []string) {
	inodes := map[uint64]bool{}
	for _, n := range names {
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/run/netns", n), &st) == nil {
			inodes[st.Ino] = true
		}
	}
	if len(inodes) == 0 {
		return
	}
	self := os.Getpid()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var pids []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			var st unix.Stat_t
			if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && inodes[st.Ino] {
				pids = append(pids, pid)
			}
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killCgroup SIGKILLs every process in the cgroup subtree and waits until it
// is empty.
func killCgroup(cg string) error {
	if err := os.WriteFile(filepath.Join(cg, "cgroup.kill"), []byte("1"), 0); err != nil {
		return fmt.Errorf("kill cgroup %s: %w", cg, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join(cg, "cgroup.events"))
		if err != nil || strings.Contains(string(b), "populated 0") {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("cgroup %s still populated after kill", cg)
}
