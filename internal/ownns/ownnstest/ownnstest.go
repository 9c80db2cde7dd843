package ownnstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ChildArgs is the command line that re-runs this test binary's test child
// with env (NAME=value) set and CAP_SYS_ADMIN dropped from its bounding and
// inheritable sets by setpriv, for a host's Exec. It skips the test when
// setpriv is missing. Passed tells whether the child passed from its output.
func ChildArgs(t *testing.T, env, child string) []string {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux) to drop CAP_SYS_ADMIN")
	}
	return []string{"env", env,
		"setpriv", "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin",
		os.Args[0], "-test.run=^" + child + "$", "-test.v", "-test.count=1"}
}

// Passed reports whether out, the output of ChildArgs' command, says that
// child passed.
func Passed(out, child string) bool {
	return strings.Contains(out, "--- PASS: "+child)
}

// RequireNoCapSysAdmin fails the test unless the process lacks
// CAP_SYS_ADMIN: it is not in the effective set and setns(2) into the
// thread's own network namespace is refused with EPERM.
func RequireNoCapSysAdmin(t *testing.T) {
	t.Helper()
	eff, err := capEffective()
	if err != nil {
		t.Fatal(err)
	}
	if eff&(1<<unix.CAP_SYS_ADMIN) != 0 {
		t.Fatalf("CapEff %#x still holds CAP_SYS_ADMIN: the test would prove nothing", eff)
	}
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open the thread's network namespace: %v", err)
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("setns into the own network namespace: %v, want EPERM", err)
	}
}

// capEffective reads this process's effective capability set.
func capEffective() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read /proc/self/status: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}
