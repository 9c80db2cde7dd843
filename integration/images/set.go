package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Set names the lab's images and where their binaries come from. Every name
// is configurable, as an air-gapped registry would rename them.
type Set struct {
	// CacheDir receives the archives and the built pause and echo binaries.
	CacheDir string
	// Pause is the sandbox image (containerd's pinned sandbox image and
	// kubeadm's PauseVersion).
	Pause string
	// Echo is the test server image (integration/images/echo).
	Echo string
	// KubeProxy is kube-proxy's image, built from KubeBinDir/kube-proxy with
	// nft, iptables (nft backend) and conntrack of this machine.
	KubeProxy string
	// KubeBinDir holds the kube-proxy binary. Empty: no kube-proxy image.
	KubeBinDir string
	// CoreDNS is CoreDNS's image, built from CoreDNSBinary.
	CoreDNS string
	// CoreDNSBinary is a coredns binary (integration/images/coredns.sh).
	// Empty: no CoreDNS image.
	CoreDNSBinary string
	// ModuleDir is the root of the masterd module (pause and echo are built
	// from its sources). Empty: the working directory's module.
	ModuleDir string
}

// DefaultSet returns the names a v1.37 kubelet and kubeadm expect, with the
// cache under $MASTERD_CACHE (default ~/.cache/masterd)/images and the kube
// binaries of $KUBE_BIN_DIR.
func DefaultSet() Set {
	cache := os.Getenv("MASTERD_CACHE")
	if cache == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(d, "masterd")
		}
	}
	return Set{
		CacheDir:   filepath.Join(cache, "images"),
		Pause:      "registry.k8s.io/pause:3.10.2",
		Echo:       "masterd.test/echo:1",
		KubeProxy:  "registry.k8s.io/kube-proxy:v1.37.2",
		KubeBinDir: os.Getenv("KUBE_BIN_DIR"),
		CoreDNS:    "registry.k8s.io/coredns/coredns:v1.14.6",
	}
}

// Build writes every image of the set whose sources are configured into
// CacheDir and returns the archives' paths by image name.
func (s Set) Build(ctx context.Context) (map[string]string, error) {
	if s.CacheDir == "" {
		return nil, errors.New("images: set: no cache directory")
	}
	bin := filepath.Join(s.CacheDir, "bin")
	var imgs []Image
	for _, p := range []struct{ name, bin string }{
		{s.Pause, "pause"},
		{s.Echo, "echo"},
	} {
		if p.name == "" {
			continue
		}
		out := filepath.Join(bin, p.bin)
		if err := GoBinary(ctx, s.ModuleDir, "github.com/masterd/masterd/integration/images/"+p.bin, out); err != nil {
			return nil, err
		}
		imgs = append(imgs, Image{Name: p.name, Files: []File{{Path: "/" + p.bin, Source: out, Mode: 0o755}}, Entrypoint: []string{"/" + p.bin}})
	}
	if s.KubeProxy != "" && s.KubeBinDir != "" {
		img, err := kubeProxyImage(ctx, s.KubeProxy, filepath.Join(s.KubeBinDir, "kube-proxy"))
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	if s.CoreDNS != "" && s.CoreDNSBinary != "" {
		imgs = append(imgs, Image{
			Name:       s.CoreDNS,
			Files:      []File{{Path: "/coredns", Source: s.CoreDNSBinary, Mode: 0o755}},
			Entrypoint: []string{"/coredns"},
		})
	}
	out := map[string]string{}
	for _, img := range imgs {
		p, err := Archive(img, s.CacheDir)
		if err != nil {
			return nil, err
		}
		out[img.Name] = p
	}
	return out, nil
}

// kubeProxyImage is kube-proxy plus the programs its proxiers run: nft (the
// nftables mode), iptables with the nft backend (the iptables mode and its
// cleanup of the other mode's rules) and conntrack, with their libraries and
// the xtables extensions.
func kubeProxyImage(ctx context.Context, name, binary string) (Image, error) {
	if _, err := os.Stat(binary); err != nil {
		return Image{}, fmt.Errorf("images: %s: %w", name, err)
	}
	lists := [][]File{{{Path: "/usr/local/bin/kube-proxy", Source: binary, Mode: 0o755}}}
	for _, p := range []string{"/usr/sbin/nft", "/usr/sbin/xtables-nft-multi", "/usr/sbin/conntrack"} {
		fs, err := WithLibs(ctx, p, p)
		if err != nil {
			return Image{}, fmt.Errorf("images: %s: %w", name, err)
		}
		lists = append(lists, fs)
	}
	exts, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/xtables/*.so")
	for _, e := range exts {
		fs, err := WithLibs(ctx, e, e)
		if err != nil {
			return Image{}, fmt.Errorf("images: %s: %w", name, err)
		}
		lists = append(lists, fs)
	}
	var links []File
	for _, l := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		links = append(links, File{Path: "/usr/sbin/" + l, Link: "xtables-nft-multi"})
	}
	lists = append(lists, links)
	return Image{Name: name, Files: Merge(lists...), Entrypoint: []string{"/usr/local/bin/kube-proxy"}}, nil
}

// FindCoreDNS returns the coredns binary integration/images/coredns.sh
// cached for $COREDNS_VERSION (default v1.14.6, kubeadm v1.37's), or "".
func FindCoreDNS() string {
	v := os.Getenv("COREDNS_VERSION")
	if v == "" {
		v = "v1.14.6"
	}
	cache := os.Getenv("MASTERD_CACHE")
	if cache == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(d, "masterd")
	}
	p := filepath.Join(cache, "coredns", v, "coredns")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// BuildForWorker builds the set's archives (Build) and the runc wrapper a
// lab worker's containerd calls (integration/containerd/runcwrap) into
// CacheDir/bin, and returns both: what lab.WorkerOptions needs.
func (s Set) BuildForWorker(ctx context.Context) (archives map[string]string, runcWrap string, err error) {
	archives, err = s.Build(ctx)
	if err != nil {
		return nil, "", err
	}
	runcWrap = filepath.Join(s.CacheDir, "bin", "runcwrap")
	if err := GoBinary(ctx, s.ModuleDir, "github.com/masterd/masterd/integration/containerd/runcwrap", runcWrap); err != nil {
		return nil, "", err
	}
	return archives, runcWrap, nil
}
