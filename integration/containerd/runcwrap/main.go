// Command runcwrap runs runc after dropping from an OCI bundle's config the
// resource limits whose cgroup v2 controllers the host does not have.
//
// It exists for one kind of machine: a hybrid cgroup hierarchy, where cpu,
// memory, pids and io stay bound to cgroup v1 and the v2 hierarchy a lab
// host sees offers none of them (here only hugetlb). The CRI plugin of
// containerd always sets CPU shares (2 for a BestEffort container, and for
// every sandbox), and runc fails writing cpu.weight where the controller is
// absent. On a machine whose v2 hierarchy has the controllers, runcwrap
// changes nothing and only execs runc.
//
// containerd's runc options name it as BinaryName; the real runc is
// $RUNCWRAP_RUNC (default /usr/sbin/runc). Only `create` and `run` read a
// bundle; every other command goes to runc untouched.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	runc := os.Getenv("RUNCWRAP_RUNC")
	if runc == "" {
		runc = "/usr/sbin/runc"
	}
	if bundle, ok := bundleOf(os.Args[1:]); ok {
		if err := trim(filepath.Join(bundle, "config.json"), controllers("/sys/fs/cgroup/cgroup.controllers")); err != nil {
			fmt.Fprintf(os.Stderr, "runcwrap: %v\n", err)
			os.Exit(1)
		}
	}
	argv := append([]string{runc}, os.Args[1:]...)
	if err := syscall.Exec(runc, argv, os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "runcwrap: exec %s: %v\n", runc, err)
		os.Exit(1)
	}
}

// bundleOf returns the bundle directory of a `create` or `run` command line
// (runc's global flags first, then the command and its flags), defaulting to
// the working directory as runc does.
func bundleOf(args []string) (string, bool) {
	cmd := -1
	for i, a := range args {
		if a == "create" || a == "run" {
			cmd = i
			break
		}
	}
	if cmd < 0 {
		return "", false
	}
	for i := cmd + 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--bundle" || a == "-b":
			if i+1 < len(args) {
				return args[i+1], true
			}
		case strings.HasPrefix(a, "--bundle="):
			return strings.TrimPrefix(a, "--bundle="), true
		case strings.HasPrefix(a, "-b="):
			return strings.TrimPrefix(a, "-b="), true
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", false
	}
	return wd, true
}

// controllers reads a cgroup.controllers file; a missing file yields none.
func controllers(path string) map[string]bool {
	b, _ := os.ReadFile(path)
	out := map[string]bool{}
	for _, c := range strings.Fields(string(b)) {
		out[c] = true
	}
	return out
}

// trim removes the entries of linux.resources (cpu's weight and quota,
// cpu's cpuset, memory, pids, blockIO, hugepageLimits, unified files) whose
// controller is absent, and rewrites the file only if
// it removed something.
func trim(config string, have map[string]bool) error {
	b, err := os.ReadFile(config)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("%s: %w", config, err)
	}
	linux, _ := spec["linux"].(map[string]any)
	res, _ := linux["resources"].(map[string]any)
	if res == nil {
		return nil
	}
	changed := false
	drop := func(key string, need ...string) {
		if _, ok := res[key]; !ok {
			return
		}
		for _, c := range need {
			if have[c] {
				return
			}
		}
		delete(res, key)
		changed = true
	}
	if cpu, ok := res["cpu"].(map[string]any); ok {
		for _, k := range []string{"shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "idle"} {
			if _, set := cpu[k]; set && !have["cpu"] {
				delete(cpu, k)
				changed = true
			}
		}
		for _, k := range []string{"cpus", "mems"} {
			if _, set := cpu[k]; set && !have["cpuset"] {
				delete(cpu, k)
				changed = true
			}
		}
	}
	drop("memory", "memory")
	drop("pids", "pids")
	drop("blockIO", "io")
	drop("hugepageLimits", "hugetlb")
	// unified holds raw cgroup v2 files (kubelet sets memory.low, for one):
	// each names its controller before the dot.
	if unified, ok := res["unified"].(map[string]any); ok {
		for k := range unified {
			if c, _, _ := strings.Cut(k, "."); c != "cgroup" && !have[c] {
				delete(unified, k)
				changed = true
			}
		}
	}
	if !changed {
		return nil
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	st, err := os.Stat(config)
	if err != nil {
		return err
	}
	return os.WriteFile(config, out, st.Mode().Perm())
}
