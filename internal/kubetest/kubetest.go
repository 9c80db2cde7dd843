package kubetest

import (
	"bytes"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// The addresses the namespace's loopback carries.
const (
	NodeAddr = "10.10.0.1"
	VIPAddr  = "10.10.0.100"
)

// BinDir is the directory holding an executable kube-apiserver: $MASTERD_KUBE_BIN,
// else the build cache of integration/kube/build.sh. It skips the test when
// there is none.
func BinDir(t *testing.T) string {
	t.Helper()
	dirs := []string{os.Getenv("MASTERD_KUBE_BIN")}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache/masterd/kube/v1.37.2/bin"))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if fi, err := os.Stat(filepath.Join(d, "kube-apiserver")); err == nil && fi.Mode()&0o111 != 0 {
			return d
		}
	}
	t.Skip("kube-apiserver not built: run integration/kube/build.sh or set MASTERD_KUBE_BIN")
	return ""
}

// RunChild makes the network namespace ns (loopback up, NodeAddr and
// VIPAddr on it, deleted with the test), runs the test binary's test
// child there with env added to the environment, and fails the test unless
// the child passes. It needs root; it skips the test otherwise.
func RunChild(t *testing.T, ns, child string, env ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ip("-n", ns, "link", "set", "lo", "up")
	for _, a := range []string{NodeAddr + "/32", VIPAddr + "/32"} {
		ip("-n", ns, "addr", "add", a, "dev", "lo")
	}
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^"+child+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+child)) {
		t.Fatalf("child %s failed: %v", child, err)
	}
}

// EtcdTLS is the files of the etcd member's mutual TLS.
type EtcdTLS struct {
	CA, ServerCert, ServerKey, PeerCert, PeerKey string
}

// StartEtcd starts member m1 of a one-member embedded etcd on NodeAddr
// (client port 2379, peer port 2380, both with client certificates
// required), closed with the test, and waits until it is ready.
func StartEtcd(t *testing.T, f EtcdTLS) *embed.Etcd {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = "m1", filepath.Join(t.TempDir(), "etcd")
	cu, _ := url.Parse("https://" + NodeAddr + ":2379")
	pu, _ := url.Parse("https://" + NodeAddr + ":2380")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = "m1=https://" + NodeAddr + ":2380"
	cfg.ClientTLSInfo = transport.TLSInfo{CertFile: f.ServerCert, KeyFile: f.ServerKey, TrustedCAFile: f.CA, ClientCertAuth: true}
	cfg.PeerTLSInfo = transport.TLSInfo{CertFile: f.PeerCert, KeyFile: f.PeerKey, TrustedCAFile: f.CA, ClientCertAuth: true}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(2 * time.Minute):
		t.Fatal("etcd not ready")
	}
	return e
}

// StartProc starts bin with args, killed (by its PID, and by the kernel
// should the test binary die) when the test ends; the tail of its output is
// logged if the test failed. The channel reports its exit.
func StartProc(t *testing.T, bin string, args ...string) <-chan error {
	t.Helper()
	var log bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			out := log.String()
			if len(out) > 4000 {
				out = out[len(out)-4000:]
			}
			t.Logf("%s log (tail):\n%s", filepath.Base(bin), out)
		}
	})
	return exited
}
