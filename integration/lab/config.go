package lab

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Options describe a lab.
type Options struct {
	// Masters is the number of master hosts: 3 (or 5) like a real cluster;
	// 1 is allowed for harness tests.
	Masters int
	// Prefix starts every namespace, host and state directory name of the lab.
	// Two labs with different prefixes can run side by side.
	Prefix string
	// Subnet is the lab's IPv4 /24. It must not be used anywhere else on the
	// machine: the lab's hosts get .11.., the client .100, the VIP .10.
	Subnet netip.Prefix
	// VIP is the floating API address. Zero: .10 of Subnet.
	VIP netip.Addr
	// Deb is the masterd package to install with dpkg -i in every host.
	Deb string
	// KubeBinDir holds kube-apiserver, kube-scheduler,
	// kube-controller-manager and kubectl. Empty: kubernetes.mode none (no kube
	// units, no kubectl).
	KubeBinDir string
	// VIPProfile is vip.profile of every master: default or fast.
	VIPProfile string
	// Fence is vip.fence of every master (fast needs it).
	Fence bool
	// ExtraYAML is appended to every master's masterd.yaml (top-level keys not
	// written by the lab, e.g. "log:\n  level: debug\n").
	ExtraYAML string
	// UnitDropIn, when set, is written to
	// /etc/systemd/system/masterd.service.d/lab.conf in every master before
	// masterd starts: a debugging aid (e.g. a hardening setting under
	// suspicion); scenarios run the unit as packaged.
	UnitDropIn string
	// Progress receives one line per step while the lab builds and boots. Nil:
	// discarded.
	Progress io.Writer
}

// DefaultOptions returns a three-master lab with the kube binaries of
// $KUBE_BIN_DIR and the newest package under dist/ of the repository that
// holds the working directory.
func DefaultOptions() Options {
	return Options{
		// Three masters: the smallest cluster that survives one failure.
		Masters: 3,
		// One lab per machine by default; tests use their own prefix.
		Prefix: "mlab",
		// A private range nothing on these machines uses (checked at Up).
		Subnet: netip.MustParsePrefix("10.213.0.0/24"),
		// KUBE_BIN_DIR is exported by the Makefile (integration/kube/build.sh).
		KubeBinDir: os.Getenv("KUBE_BIN_DIR"),
		Deb:        FindDeb(""),
		// The profile the README recommends.
		VIPProfile: "default",
	}
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}(-[a-z0-9]{1,15})?$`)

// Validate reports every problem of the options at once.
func (o Options) Validate() error {
	var errs []error
	if o.Masters < 1 || o.Masters > 9 {
		errs = append(errs, fmt.Errorf("masters: %d: want 1 to 9", o.Masters))
	}
	if !prefixRE.MatchString(o.Prefix) {
		errs = append(errs, fmt.Errorf("prefix: %q: want [a-z][a-z0-9]*(-[a-z0-9]+)?, at most 32 characters", o.Prefix))
	}
	if !o.Subnet.IsValid() || !o.Subnet.Addr().Is4() || o.Subnet.Bits() != 24 {
		errs = append(errs, fmt.Errorf("subnet: %v: want an IPv4 /24", o.Subnet))
	} else if o.VIP.IsValid() && !o.Subnet.Contains(o.VIP) {
		errs = append(errs, fmt.Errorf("vip: %v: not in subnet %v", o.VIP, o.Subnet))
	}
	if o.Deb == "" {
		errs = append(errs, errors.New("deb: empty: build it with `make package`"))
	} else if _, err := os.Stat(o.Deb); err != nil {
		errs = append(errs, fmt.Errorf("deb: %w (build it with `make package`)", err))
	}
	if o.KubeBinDir != "" {
		for _, b := range kubeBinaries {
			p, err := filepath.EvalSymlinks(filepath.Join(o.KubeBinDir, b))
			if err != nil {
				errs = append(errs, fmt.Errorf("kubeBinDir: %w (build them with `make kube`)", err))
				continue
			}
			if hostPrivate(p) {
				errs = append(errs, fmt.Errorf("kubeBinDir: %s is under /tmp or /run, which every lab host has of its own: keep the cache elsewhere (MASTERD_CACHE)", p))
				break
			}
		}
	}
	switch o.VIPProfile {
	case "default":
	case "fast":
		if !o.Fence {
			errs = append(errs, errors.New("vipProfile: fast needs fence"))
		}
	default:
		errs = append(errs, fmt.Errorf("vipProfile: %q: want default or fast", o.VIPProfile))
	}
	return errors.Join(errs...)
}

// hostPrivate reports whether path is in a directory each lab host mounts
// afresh (its own tmpfs /tmp and /run), where a host does not see the
// machine's file.
func hostPrivate(path string) bool {
	for _, d := range []string{"/tmp", "/run"} {
		if path == d || strings.HasPrefix(path, d+"/") {
			return true
		}
	}
	return false
}

var kubeBinaries = []string{"kube-apiserver", "kube-scheduler", "kube-controller-manager", "kubectl"}

// FindDeb returns the newest dist/masterd_*.deb of the repository holding
// dir (empty: the working directory), or "".
func FindDeb(dir string) string {
	if dir == "" {
		dir, _ = os.Getwd()
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			ms, _ := filepath.Glob(filepath.Join(d, "dist", "masterd_*.deb"))
			var best string
			var bestT time.Time
			for _, m := range ms {
				if fi, err := os.Stat(m); err == nil && fi.ModTime().After(bestT) {
					best, bestT = m, fi.ModTime()
				}
			}
			return best
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// CacheDir is where the builds keep their results: $MASTERD_CACHE, else
// ~/.cache/masterd ("" when there is no home directory either).
func CacheDir() string {
	if c := os.Getenv("MASTERD_CACHE"); c != "" {
		return c
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "masterd")
	}
	return ""
}

// findBinDir returns $dirEnv, or the cache directory <CacheDir>/<name>/
// <version>/bin a build script fills for $versionEnv (default version), if
// it holds every one of bins; else "".
func findBinDir(dirEnv, name, versionEnv, version string, bins []string) string {
	if v := os.Getenv(versionEnv); v != "" {
		version = v
	}
	cands := []string{os.Getenv(dirEnv)}
	if cache := CacheDir(); cache != "" {
		cands = append(cands, filepath.Join(cache, name, version, "bin"))
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		ok := true
		for _, b := range bins {
			if _, err := os.Stat(filepath.Join(c, b)); err != nil {
				ok = false
			}
		}
		if ok {
			return c
		}
	}
	return ""
}

// FindKubeBinDir returns $KUBE_BIN_DIR, or the cache integration/kube/build.sh
// fills (~/.cache/masterd/kube/<version>/bin), if it holds every binary.
func FindKubeBinDir() string {
	return findBinDir("KUBE_BIN_DIR", "kube", "KUBE_VERSION", "v1.37.2", kubeBinaries)
}

// ControlPlaneBinaries are the binaries a Kubernetes upgrade replaces on a
// master.
var ControlPlaneBinaries = []string{"kube-apiserver", "kube-scheduler", "kube-controller-manager"}

// FindPrevKubeBinDir returns $KUBE_PREV_BIN_DIR, or the cache `make
// kube-prev` fills for $KUBE_PREV_VERSION (default v1.36.3, the previous
// minor), if it holds the control-plane binaries; else "".
func FindPrevKubeBinDir() string {
	return findBinDir("KUBE_PREV_BIN_DIR", "kube", "KUBE_PREV_VERSION", "v1.36.3", ControlPlaneBinaries)
}
