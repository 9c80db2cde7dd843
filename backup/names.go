package backup

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// timeLayout is the UTC time in object names (and in the local snapshot
// files etcdembed writes: etcd-20260102T030405Z.db).
const timeLayout = "20060102T150405Z"

// nameSuffix ends every object name.
const nameSuffix = ".db"

// masterRE is a master's name as masterd.yaml allows it (a DNS label or
// name).
var masterRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// ObjectName is the name (below the cluster's directory) of master's
// snapshot taken at taken.
func ObjectName(master string, taken time.Time) string {
	return master + "-" + taken.UTC().Format(timeLayout) + nameSuffix
}

// ParseName splits an object name into the master and the time it was
// taken; it refuses anything ObjectName does not make.
func ParseName(name string) (master string, taken time.Time, err error) {
	base, ok := strings.CutSuffix(name, nameSuffix)
	if !ok || len(base) < len(timeLayout)+2 || base[len(base)-len(timeLayout)-1] != '-' {
		return "", time.Time{}, fmt.Errorf("%q is not a snapshot name (MASTER-YYYYMMDDTHHMMSSZ.db)", name)
	}
	master, ts := base[:len(base)-len(timeLayout)-1], base[len(base)-len(timeLayout):]
	if !masterRE.MatchString(master) {
		return "", time.Time{}, fmt.Errorf("%q is not a snapshot name: %q is not a master name", name, master)
	}
	taken, err = time.Parse(timeLayout, ts)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%q is not a snapshot name: bad time %q", name, ts)
	}
	return master, taken, nil
}

// SnapshotTime is when the local snapshot file name (etcd-<UTC time>.db,
// etcdembed's automatic snapshots) says it was taken; ok is false for other
// names.
func SnapshotTime(base string) (t time.Time, ok bool) {
	s, found := strings.CutPrefix(base, "etcd-")
	if !found {
		return time.Time{}, false
	}
	s, found = strings.CutSuffix(s, nameSuffix)
	if !found {
		return time.Time{}, false
	}
	t, err := time.Parse(timeLayout, s)
	return t, err == nil
}
