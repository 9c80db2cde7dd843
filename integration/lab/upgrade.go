package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Upgrades: a scenario installs another masterd package into a running
// host (dpkg -i, as an operator upgrades), and builds the package of an
// earlier commit to start from.

// InstallDeb installs the package at path (on the machine) into m's running
// host with dpkg -i, keeping the host's configuration files. The package's
// maintainer scripts run as on a real master: an upgrade try-restarts
// masterd, which hands its roles over before it stops.
func (m *Master) InstallDeb(ctx context.Context, path string) error {
	h := m.Host()
	if h == nil {
		return fmt.Errorf("lab: install %s on %s: host not booted", filepath.Base(path), m.Name)
	}
	deb, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("lab: install on %s: %w", m.Name, err)
	}
	// The host has its own /tmp and /run: copy the package in.
	inHost := "/var/cache/masterd-lab/" + filepath.Base(path)
	if err := h.WriteFile(inHost, deb, 0o644); err != nil {
		return fmt.Errorf("lab: install on %s: %w", m.Name, err)
	}
	if out, err := h.Exec(ctx, "dpkg", "-i", "--force-confold", inHost); err != nil {
		return fmt.Errorf("lab: dpkg -i %s on %s: %w: %s", filepath.Base(path), m.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

var commitRE = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// BuildDebAt returns the masterd .deb of commit (a hash) of the repository
// at repo, building it once: a git worktree of the commit in a temporary
// directory, deploy/package.sh there (deb only, into its own output
// directory), the package cached as cacheDir/<full hash>.deb. The worktree
// is removed afterwards.
func BuildDebAt(ctx context.Context, repo, commit, cacheDir string) (string, error) {
	if !commitRE.MatchString(commit) {
		return "", fmt.Errorf("lab: build deb: commit %q: want a hexadecimal hash", commit)
	}
	full, err := run(ctx, "git", "-C", repo, "rev-parse", "--verify", commit+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("lab: build deb of %s: %w", commit, err)
	}
	hash := strings.TrimSpace(string(full))
	cached := filepath.Join(cacheDir, hash+".deb")
	if _, err := os.Stat(cached); err == nil {
		return cached, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("lab: build deb of %s: %w", commit, err)
	}
	tmp, err := os.MkdirTemp("", "masterd-deb-"+hash[:12]+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	wt, dist := filepath.Join(tmp, "src"), filepath.Join(tmp, "dist")
	if _, err := run(ctx, "git", "-C", repo, "worktree", "add", "--detach", wt, hash); err != nil {
		return "", fmt.Errorf("lab: build deb of %s: %w", commit, err)
	}
	defer func() {
		_, _ = run(context.WithoutCancel(ctx), "git", "-C", repo, "worktree", "remove", "--force", wt)
	}()
	if _, err := runEnv(ctx, []string{"DIST=" + dist, "PACKAGERS=deb"}, filepath.Join(wt, "deploy/package.sh")); err != nil {
		return "", fmt.Errorf("lab: build deb of %s: %w", commit, err)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "masterd_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("lab: build deb of %s: package.sh wrote %d .deb files in %s, want 1", commit, len(debs), dist)
	}
	b, err := os.ReadFile(debs[0])
	if err != nil {
		return "", err
	}
	// Written under a temporary name and renamed: a concurrent or killed
	// build never leaves half a package in the cache.
	part := cached + ".part"
	if err := os.WriteFile(part, b, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(part, cached); err != nil {
		return "", errors.Join(err, os.Remove(part))
	}
	return cached, nil
}

// runEnv is run with extra environment variables.
func runEnv(ctx context.Context, env []string, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
}

// FakeKubeVersion puts over the kube binary bin (kube-apiserver,
// kube-scheduler, ...) of m a wrapper script whose --version prints
// "Kubernetes <version>" and that otherwise runs the real binary: to
// masterd, a binary of another release, without building one. The wrapper
// is bind-mounted over /usr/local/bin/<bin> (a unit running the binary
// keeps it); the real binary is bound at /usr/local/lib/masterd-lab/<bin>.
func (m *Master) FakeKubeVersion(ctx context.Context, bin, version string) error {
	kubeDir := m.lab.opts.KubeBinDir
	if kubeDir == "" {
		return fmt.Errorf("lab: fake %s version on %s: the lab runs no kube binaries", bin, m.Name)
	}
	h := m.Host()
	realBin := "/usr/local/lib/masterd-lab/" + bin
	wrapper := realBin + ".wrapper"
	script := fmt.Sprintf("#!/bin/sh\n# written by integration/lab: %s reporting %s\nif [ \"${1:-}\" = --version ]; then echo 'Kubernetes %s'; exit 0; fi\nexec %s \"$@\"\n", bin, version, version, realBin)
	if err := h.WriteFile(realBin, nil, 0o755); err != nil {
		return err
	}
	if err := h.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return err
	}
	for _, s := range [][]string{
		{"mount", "--bind", "-o", "ro", filepath.Join(kubeDir, bin), realBin},
		{"mount", "--bind", "-o", "ro", wrapper, "/usr/local/bin/" + bin},
	} {
		if out, err := h.Exec(ctx, s...); err != nil {
			return fmt.Errorf("lab: fake %s version on %s: %w: %s", bin, m.Name, err, out)
		}
	}
	return nil
}

// RestoreKubeBinary undoes FakeKubeVersion: the real binary at
// /usr/local/bin/<bin> again (the wrapper's mount removed).
func (m *Master) RestoreKubeBinary(ctx context.Context, bin string) error {
	if out, err := m.Host().Exec(ctx, "umount", "/usr/local/bin/"+bin); err != nil {
		return fmt.Errorf("lab: restore %s on %s: %w: %s", bin, m.Name, err, out)
	}
	return nil
}

// UseKubeBinary puts the kube binary at path (on the machine, e.g. another
// version's cache) at /usr/local/bin/<bin> on m, over what is there: the
// binary update of a Kubernetes upgrade. The running component keeps its
// old binary until masterd restarts it.
func (m *Master) UseKubeBinary(ctx context.Context, bin, path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("lab: use %s on %s: %w", bin, m.Name, err)
	}
	if out, err := m.Host().Exec(ctx, "mount", "--bind", "-o", "ro", path, "/usr/local/bin/"+bin); err != nil {
		return fmt.Errorf("lab: use %s on %s: %w: %s", path, m.Name, err, out)
	}
	return nil
}
