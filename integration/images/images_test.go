package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readArchive returns the archive's entries by name.
func readArchive(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = data
	}
}

func blob(t *testing.T, entries map[string][]byte, d descriptor) []byte {
	t.Helper()
	b, ok := entries["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")]
	if !ok {
		t.Fatalf("blob %s missing", d.Digest)
	}
	s := sha256.Sum256(b)
	if "sha256:"+hex.EncodeToString(s[:]) != d.Digest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: content does not match its descriptor (size %d, want %d)", d.Digest, len(b), d.Size)
	}
	return b
}

func TestWriteMakesAnOCILayout(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "prog")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := Image{
		Name:       "masterd.test/prog:1",
		Files:      []File{{Path: "/usr/bin/prog", Source: bin}, {Path: "/bin/p", Link: "/usr/bin/prog"}},
		Entrypoint: []string{"/usr/bin/prog"},
		Env:        []string{"A=b"},
	}
	var buf bytes.Buffer
	if err := Write(&buf, img); err != nil {
		t.Fatal(err)
	}
	entries := readArchive(t, buf.Bytes())
	if string(entries["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q", entries["oci-layout"])
	}
	var index struct{ Manifests []descriptor }
	if err := json.Unmarshal(entries["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, entries["index.json"])
	}
	md := index.Manifests[0]
	if md.Annotations[annotationName] != img.Name || md.Annotations[annotationRef] != "1" {
		t.Errorf("index annotations = %v, want the full name and the tag", md.Annotations)
	}
	var manifest struct {
		Config descriptor
		Layers []descriptor
	}
	if err := json.Unmarshal(blob(t, entries, md), &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %v", err)
	}
	var config struct {
		Config struct {
			Entrypoint []string
			Env        []string
		}
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(blob(t, entries, manifest.Config), &config); err != nil {
		t.Fatal(err)
	}
	if len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != manifest.Layers[0].Digest {
		t.Errorf("diff_ids %v, want the (uncompressed) layer's digest %s", config.RootFS.DiffIDs, manifest.Layers[0].Digest)
	}
	if strings.Join(config.Config.Entrypoint, " ") != "/usr/bin/prog" || config.Config.Env[len(config.Config.Env)-1] != "A=b" {
		t.Errorf("config = %+v", config.Config)
	}
	layer := readArchive(t, blob(t, entries, manifest.Layers[0]))
	if string(layer["usr/bin/prog"]) != "#!/bin/true\n" {
		t.Errorf("layer usr/bin/prog = %q", layer["usr/bin/prog"])
	}
	for _, d := range []string{"usr/", "usr/bin/", "bin/", "tmp/", "bin/p"} {
		if _, ok := layer[d]; !ok {
			t.Errorf("layer lacks %s", d)
		}
	}

	// The same inputs give the same bytes (fixed time stamps, sorted entries).
	var again bytes.Buffer
	if err := Write(&again, img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("two writes of the same image differ")
	}
}

func TestArchiveIsCachedUntilASourceChanges(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "prog")
	if err := os.WriteFile(bin, []byte("one"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := Image{Name: "masterd.test/prog:1", Files: []File{{Path: "/prog", Source: bin}}, Entrypoint: []string{"/prog"}}
	p1, err := Archive(img, filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(p1)
	p2, err := Archive(img, filepath.Join(dir, "cache"))
	if err != nil || p2 != p1 {
		t.Fatalf("second Archive = %q, %v; want the cached %q", p2, err, p1)
	}
	if st2, _ := os.Stat(p2); !st2.ModTime().Equal(st1.ModTime()) {
		t.Error("an up-to-date archive was rewritten")
	}
	img.Entrypoint = []string{"/prog", "-v"}
	if p3, err := Archive(img, filepath.Join(dir, "cache")); err != nil || p3 == p1 {
		t.Errorf("a changed definition reused %q (%v)", p3, err)
	}
}

func TestValidateNamesWhatIsWrong(t *testing.T) {
	for _, tc := range []struct {
		img  Image
		want string
	}{
		{Image{Name: "no-tag", Files: []File{{Path: "/a", Source: "/x"}}, Cmd: []string{"/a"}}, "want host/path:tag"},
		{Image{Name: "a.test/x:1", Cmd: []string{"/a"}}, "no files"},
		{Image{Name: "a.test/x:1", Files: []File{{Path: "rel", Source: "/x"}}, Cmd: []string{"/a"}}, "clean absolute path"},
		{Image{Name: "a.test/x:1", Files: []File{{Path: "/a", Source: "/x", Link: "/y"}}, Cmd: []string{"/a"}}, "exactly one of source and link"},
		{Image{Name: "a.test/x:1", Files: []File{{Path: "/a", Source: "/x"}, {Path: "/a", Source: "/x"}}, Cmd: []string{"/a"}}, "listed twice"},
		{Image{Name: "a.test/x:1", Files: []File{{Path: "/a", Source: "/x"}}}, "neither entrypoint nor cmd"},
	} {
		err := tc.img.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error with %q", tc.img, err, tc.want)
		}
	}
	if err := Write(io.Discard, Image{Name: "a.test/x:1", Files: []File{{Path: "/a", Source: "/nonexistent"}}, Cmd: []string{"/a"}}); err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Errorf("Write with a missing source = %v, want an error naming it", err)
	}
}

func TestWithLibsListsTheLoader(t *testing.T) {
	files, err := WithLibs(t.Context(), "/usr/sbin/nft", "/usr/sbin/nft")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nft"); serr != nil {
			t.Skip("no /usr/sbin/nft on this machine (Debian package nftables)")
		}
		t.Fatal(err)
	}
	var loader bool
	for _, f := range files {
		if strings.Contains(f.Path, "ld-linux") {
			loader = true
		}
	}
	if !loader || len(files) < 3 {
		t.Errorf("WithLibs(nft) = %v, want the program, its libraries and the dynamic loader", files)
	}
}

func TestGoBinaryKeepsAnUnchangedBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go program")
	}
	out := filepath.Join(t.TempDir(), "pause")
	if err := GoBinary(t.Context(), "", "github.com/masterd/masterd/integration/images/pause", out); err != nil {
		t.Fatal(err)
	}
	st1, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	old := st1.ModTime().Add(-time.Hour)
	if err := os.Chtimes(out, old, old); err != nil {
		t.Fatal(err)
	}
	if err := GoBinary(t.Context(), "", "github.com/masterd/masterd/integration/images/pause", out); err != nil {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(out); !st2.ModTime().Equal(old) {
		t.Errorf("an unchanged binary was rewritten (mtime %v, was %v)", st2.ModTime(), old)
	}
	if err := GoBinary(t.Context(), "", "github.com/masterd/masterd/integration/images/nonexistent", out); err == nil {
		t.Error("building a missing package: no error")
	}
}
