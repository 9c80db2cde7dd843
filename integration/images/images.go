package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Image is one image to build: a single layer of files and a config.
type Image struct {
	// Name is the full reference containerd records, e.g.
	// registry.k8s.io/pause:3.10.2 (the tag is required).
	Name string
	// Files are the layer's contents. Parent directories are added.
	Files []File
	// Entrypoint and Cmd are the config's; Env is added to a default PATH.
	Entrypoint []string
	Cmd        []string
	Env        []string
}

// File is one entry of an image's layer.
type File struct {
	// Path is the absolute path in the image.
	Path string
	// Source is the file on this machine whose contents Path gets. Empty with
	// Link set: a symlink.
	Source string
	// Link is a symlink target (Source empty).
	Link string
	// Mode is the permission bits. Zero: those of Source.
	Mode os.FileMode
}

// epoch is every entry's modification time: the same inputs make the same
// digests.
var epoch = time.Unix(0, 0).UTC()

var refRE = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// Validate reports what is wrong with img, or nil.
func (img Image) Validate() error {
	var errs []error
	if !refRE.MatchString(img.Name) {
		errs = append(errs, fmt.Errorf("name %q: want host/path:tag", img.Name))
	}
	if len(img.Files) == 0 {
		errs = append(errs, errors.New("no files"))
	}
	seen := map[string]bool{}
	for _, f := range img.Files {
		switch {
		case !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/":
			errs = append(errs, fmt.Errorf("file %q: want a clean absolute path", f.Path))
		case seen[f.Path]:
			errs = append(errs, fmt.Errorf("file %q: listed twice", f.Path))
		case (f.Source == "") == (f.Link == ""):
			errs = append(errs, fmt.Errorf("file %q: want exactly one of source and link", f.Path))
		}
		seen[f.Path] = true
	}
	if len(img.Entrypoint) == 0 && len(img.Cmd) == 0 {
		errs = append(errs, errors.New("neither entrypoint nor cmd"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("images: %s: %w", img.Name, err)
	}
	return nil
}

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
	// annotationName is the full image name containerd's importer uses.
	annotationName = "io.containerd.image.name"
	// annotationRef is the OCI tag annotation.
	annotationRef = "org.opencontainers.image.ref.name"
)

// Write writes img as an OCI image layout archive (the format `ctr images
// import` and `docker load` read) to w.
func Write(w io.Writer, img Image) error {
	if err := img.Validate(); err != nil {
		return err
	}
	layer, err := layerTar(img.Files)
	if err != nil {
		return fmt.Errorf("images: %s: layer: %w", img.Name, err)
	}
	layerDigest := digest(layer)
	env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, img.Env...)
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config": map[string]any{
			"Entrypoint": img.Entrypoint,
			"Cmd":        img.Cmd,
			"Env":        env,
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        descriptor{MediaType: mediaConfig, Digest: digest(config), Size: int64(len(config))},
		"layers":        []descriptor{{MediaType: mediaLayer, Digest: layerDigest, Size: int64(len(layer))}},
	})
	if err != nil {
		return err
	}
	tag := img.Name[strings.LastIndex(img.Name, ":")+1:]
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaIndex,
		"manifests": []descriptor{{
			MediaType:   mediaManifest,
			Digest:      digest(manifest),
			Size:        int64(len(manifest)),
			Annotations: map[string]string{annotationName: img.Name, annotationRef: tag},
			Platform:    &platform{Architecture: runtime.GOARCH, OS: "linux"},
		}},
	})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	blob := func(data []byte) error { return add("blobs/sha256/"+strings.TrimPrefix(digest(data), "sha256:"), data) }
	for _, step := range []func() error{
		func() error { return add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)) },
		func() error { return add("index.json", index) },
		func() error { return blob(manifest) },
		func() error { return blob(config) },
		func() error { return blob(layer) },
		tw.Close,
	} {
		if err := step(); err != nil {
			return fmt.Errorf("images: %s: write archive: %w", img.Name, err)
		}
	}
	return nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// layerTar returns the uncompressed layer: every file with its parent
// directories (0755), plus /tmp (1777), in path order.
func layerTar(files []File) ([]byte, error) {
	dirs := map[string]bool{"tmp": true}
	entries := map[string]File{}
	for _, f := range files {
		rel := strings.TrimPrefix(f.Path, "/")
		entries[rel] = f
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for d := range dirs {
		if _, isFile := entries[d]; !isFile {
			names = append(names, d+"/")
		}
	}
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		if strings.HasSuffix(n, "/") {
			mode := int64(0o755)
			if n == "tmp/" {
				mode = 0o1777
			}
			if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, ModTime: epoch, Typeflag: tar.TypeDir}); err != nil {
				return nil, err
			}
			continue
		}
		f := entries[n]
		if f.Link != "" {
			if err := tw.WriteHeader(&tar.Header{Name: n, Linkname: f.Link, Mode: 0o777, ModTime: epoch, Typeflag: tar.TypeSymlink}); err != nil {
				return nil, err
			}
			continue
		}
		data, err := os.ReadFile(f.Source)
		if err != nil {
			return nil, err
		}
		mode := f.Mode
		if mode == 0 {
			st, err := os.Stat(f.Source)
			if err != nil {
				return nil, err
			}
			mode = st.Mode().Perm()
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: int64(mode.Perm()), Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Archive writes img into dir (created if missing) as an OCI archive and
// returns its path. The file name carries a hash of the image's definition
// and an archive newer than every source file is reused.
func Archive(img Image, dir string) (string, error) {
	if err := img.Validate(); err != nil {
		return "", err
	}
	spec, err := json.Marshal(img)
	if err != nil {
		return "", err
	}
	name := regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(img.Name, "_")
	out := filepath.Join(dir, fmt.Sprintf("%s-%s.tar", name, strings.TrimPrefix(digest(spec), "sha256:")[:12]))
	if st, err := os.Stat(out); err == nil && !newerSource(img.Files, st.ModTime()) {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("images: %s: %w", img.Name, err)
	}
	tmp, err := os.CreateTemp(dir, ".archive-*")
	if err != nil {
		return "", fmt.Errorf("images: %s: %w", img.Name, err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriter(tmp)
	err = Write(bw, img)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		return "", fmt.Errorf("images: %s: write %s: %w", img.Name, out, err)
	}
	return out, nil
}

func newerSource(files []File, t time.Time) bool {
	for _, f := range files {
		if f.Source == "" {
			continue
		}
		st, err := os.Stat(f.Source)
		if err != nil || st.ModTime().After(t) {
			return true
		}
	}
	return false
}

// GoBinary builds the Go package pkg into out as a static binary
// (CGO_ENABLED=0), running go in dir (empty: the working directory), which
// must be inside a module that can build pkg.
func GoBinary(ctx context.Context, dir, pkg, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("images: build %s: %w", pkg, err)
	}
	// Build beside out and replace it only when the binary changed: an
	// unchanged out keeps its time stamp, so the archives made from it stay
	// cached (Archive compares time stamps).
	tmp := out + ".new"
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", tmp, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("images: go build %s: %w: %s", pkg, err, bytes.TrimSpace(b))
	}
	built, err := os.ReadFile(tmp)
	if err != nil {
		return fmt.Errorf("images: build %s: %w", pkg, err)
	}
	if old, err := os.ReadFile(out); err == nil && bytes.Equal(old, built) {
		return nil
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("images: build %s: %w", pkg, err)
	}
	return nil
}

// WithLibs returns the file at src (placed at dst in the image) and every
// shared library ldd lists for it, including the dynamic loader, at the
// paths ldd names: enough to run a dynamically linked program of this
// machine in an image without a distribution.
func WithLibs(ctx context.Context, src, dst string) ([]File, error) {
	files := []File{{Path: dst, Source: src}}
	out, err := exec.CommandContext(ctx, "ldd", src).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return files, nil
		}
		return nil, fmt.Errorf("images: ldd %s: %w: %s", src, err, bytes.TrimSpace(out))
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		}
		if lib != "" {
			files = append(files, File{Path: lib, Source: lib})
		}
	}
	return files, nil
}

// Merge concatenates file lists, keeping the first entry of each path.
func Merge(lists ...[]File) []File {
	seen := map[string]bool{}
	var out []File
	for _, l := range lists {
		for _, f := range l {
			if !seen[f.Path] {
				seen[f.Path] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// Runner runs a command where containerd runs (for a lab host:
// (*labhost.Host).Exec) and returns its combined output.
type Runner func(ctx context.Context, argv ...string) ([]byte, error)

// Import loads an OCI archive into containerd's k8s.io namespace (the one
// the CRI plugin serves to kubelet), unpacked for snapshotter, with ctr. The
// archive path must be readable where run runs.
func Import(ctx context.Context, run Runner, archive, snapshotter string) error {
	argv := []string{"ctr", "--namespace", "k8s.io", "images", "import"}
	if snapshotter != "" {
		argv = append(argv, "--snapshotter", snapshotter)
	}
	argv = append(argv, archive)
	if _, err := run(ctx, argv...); err != nil {
		return fmt.Errorf("images: import %s: %w", archive, err)
	}
	return nil
}
