package sched

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Paths of the kernel interfaces used; variables so that tests can point
// them at files.
var (
	autogroupPath = "/proc/self/autogroup"
	enabledPath   = "/proc/sys/kernel/sched_autogroup_enabled"
)

// Result says what MatchAutogroup found and did.
type Result struct {
	// Nice is the process's nice value.
	Nice int
	// Before and After are the autogroup's nice values; equal when nothing
	// was written.
	Before, After int
	// Skipped names why nothing was written ("" when it was).
	Skipped string
}

// MatchAutogroup sets the nice value of the calling process's autogroup to
// the process's own nice value when that is negative. See the package
// documentation for why.
func MatchAutogroup() (Result, error) {
	var r Result
	nice, err := Nice()
	if err != nil {
		return r, err
	}
	r.Nice = nice
	if b, err := os.ReadFile(enabledPath); err != nil || strings.TrimSpace(string(b)) != "1" {
		r.Skipped = "autogroup scheduling is off (kernel.sched_autogroup_enabled is not 1)"
		return r, nil
	}
	before, err := AutogroupNice()
	if errors.Is(err, os.ErrNotExist) {
		r.Skipped = "the kernel has no autogroup scheduling"
		return r, nil
	}
	if err != nil {
		return r, err
	}
	r.Before, r.After = before, before
	switch {
	case nice >= 0:
		r.Skipped = "the process nice value is not negative"
		return r, nil
	case before <= nice:
		r.Skipped = "the autogroup already has that priority or a higher one"
		return r, nil
	}
	// The kernel refuses a second change within 100 ms (EAGAIN) to callers
	// without CAP_SYS_ADMIN; someone else in the session may just have
	// written it.
	for attempt := 0; ; attempt++ {
		err = os.WriteFile(autogroupPath, []byte(strconv.Itoa(nice)), 0)
		if err == nil || !errors.Is(err, unix.EAGAIN) || attempt == 3 {
			break
		}
		time.Sleep(110 * time.Millisecond)
	}
	if err != nil {
		return r, fmt.Errorf("sched: set autogroup nice to %d: %w (needs CAP_SYS_NICE or LimitNICE=%d)", nice, err, nice)
	}
	after, err := AutogroupNice()
	if err != nil {
		return r, err
	}
	r.After = after
	return r, nil
}

// Nice returns the calling process's nice value (-20 to 19).
func Nice() (int, error) {
	// The raw system call returns 20 - nice (1 to 40); unlike glibc's
	// wrapper, x/sys/unix does not convert it.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0, fmt.Errorf("sched: getpriority: %w", err)
	}
	return 20 - p, nil
}

// AutogroupNice returns the nice value of the calling process's autogroup.
func AutogroupNice() (int, error) {
	b, err := os.ReadFile(autogroupPath)
	if err != nil {
		return 0, fmt.Errorf("sched: %w", err)
	}
	return parseAutogroup(string(b))
}

// parseAutogroup reads the kernel's "/autogroup-123 nice -10\n".
func parseAutogroup(s string) (int, error) {
	f := strings.Fields(s)
	if len(f) != 3 || f[1] != "nice" || !strings.HasPrefix(f[0], "/autogroup-") {
		return 0, fmt.Errorf("sched: %s: unexpected content %q", autogroupPath, s)
	}
	n, err := strconv.Atoi(f[2])
	if err != nil || n < -20 || n > 19 {
		return 0, fmt.Errorf("sched: %s: bad nice value in %q", autogroupPath, s)
	}
	return n, nil
}
