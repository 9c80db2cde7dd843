package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Server is a running weed S3 gateway.
type Server struct {
	// Endpoint is http://127.0.0.1:PORT.
	Endpoint string
	// AccessKeyID and SecretAccessKey may do anything (an admin identity).
	AccessKeyID, SecretAccessKey string
	// ReaderKeyID and ReaderSecret may only read and list.
	ReaderKeyID, ReaderSecret string
	// Log is the server's output file.
	Log string

	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

var (
	buildOnce sync.Once
	binPath   string
	binErr    error
)

// Binary returns the path of the weed binary: $MASTERD_WEED when set, else
// the cache's, built by build.sh when missing (once per process).
func Binary() (string, error) {
	if p := os.Getenv("MASTERD_WEED"); p != "" {
		return p, nil
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command(filepath.Join(filepath.Dir(file), "build.sh"))
		cmd.Stderr = os.Stderr // the progress of a cold build
		out, err := cmd.Output()
		binPath, binErr = strings.TrimSpace(string(out)), err
		if err == nil && binPath == "" {
			binErr = errors.New("printed no path")
		}
		if binErr != nil {
			binErr = fmt.Errorf("s3: integration/s3/build.sh: %w", binErr)
		}
	})
	return binPath, binErr
}

// Start runs a weed S3 server for the test and stops it with the test's
// cleanup; see the package doc.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("weed log (tail):\n%s", s.LogTail(30))
		}
		s.Close()
	})
	return s
}

// New runs a weed S3 server; Close stops it and removes its data.
func New() (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		s, err := start(bin)
		if err == nil {
			return s, nil
		}
		// Another process may take a port between the pick and the bind.
		if attempt == 3 || !errors.Is(err, errPortTaken) {
			return nil, fmt.Errorf("s3: start weed: %w", err)
		}
	}
}

var errPortTaken = errors.New("a port was taken")

func start(bin string) (_ *Server, err error) {
	// A short directory: unix sockets of the filer and the gateway go in it.
	dir, err := os.MkdirTemp("", "weed-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		AccessKeyID: "AK" + randHex(9), SecretAccessKey: randHex(20),
		ReaderKeyID: "RK" + randHex(9), ReaderSecret: randHex(20),
		Log: filepath.Join(dir, "weed.log"), dir: dir,
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	ident := map[string]any{"identities": []any{
		map[string]any{"name": "admin", "credentials": []any{map[string]string{"accessKey": s.AccessKeyID, "secretKey": s.SecretAccessKey}},
			"actions": []string{"Admin", "Read", "List", "Tagging", "Write"}},
		map[string]any{"name": "reader", "credentials": []any{map[string]string{"accessKey": s.ReaderKeyID, "secretKey": s.ReaderSecret}},
			"actions": []string{"Read", "List"}},
	}}
	data, _ := json.Marshal(ident)
	conf := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(conf, data, 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(10)
	if err != nil {
		return nil, err
	}
	p := func(i int) string { return strconv.Itoa(ports[i]) }
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	args := []string{"mini",
		"-dir=" + filepath.Join(dir, "data"),
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port=" + p(0), "-master.port.grpc=" + p(1),
		"-volume.port=" + p(2), "-volume.port.grpc=" + p(3),
		"-filer.port=" + p(4), "-filer.port.grpc=" + p(5),
		"-filer.localSocket=" + filepath.Join(dir, "filer.sock"),
		"-s3.port=" + p(6), "-s3.port.grpc=" + p(7),
		"-s3.localSocket=" + filepath.Join(dir, "s3.sock"),
		"-admin.port=" + p(8), "-admin.port.grpc=" + p(9), "-admin.port.legacy=0",
		"-admin.ui=false", "-webdav=false",
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		"-s3.config=" + conf, "-s3.autoCreateBucket=false",
		"-master.telemetry=false",
		"-master.volumeSizeLimitMB=64",
	}
	log, err := os.Create(s.Log)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = dir
	// No AWS_* variables: weed would add them as one more admin identity.
	s.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dir, "TMPDIR=" + dir}
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	s.Endpoint = "http://127.0.0.1:" + p(6)
	if err := s.waitReady(2 * time.Minute); err != nil {
		tail := s.LogTail(40)
		if strings.Contains(tail, "address already in use") {
			return nil, fmt.Errorf("%w: %v\n%s", errPortTaken, err, tail)
		}
		return nil, fmt.Errorf("%v\nweed log (tail):\n%s", err, tail)
	}
	return s, nil
}

// waitReady polls a signed ListBuckets until it succeeds.
func (s *Server) waitReady(limit time.Duration) error {
	cli, err := s.client(s.AccessKeyID, s.SecretAccessKey)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.ListBuckets(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("weed exited before serving S3: %v", s.cmd.ProcessState)
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("weed's S3 API at %s did not answer within %s: %v", s.Endpoint, limit, err)
		}
	}
}

// Close stops the server by its PID (SIGTERM, SIGKILL after 15 s) and
// removes its data.
func (s *Server) Close() {
	if s.cmd != nil && s.cmd.Process != nil && s.exited != nil {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(15 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exited
			}
		}
	}
	os.RemoveAll(s.dir)
}

// LogTail is the last n lines of the server's output.
func (s *Server) LogTail(n int) string {
	data, _ := os.ReadFile(s.Log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// client is a minio client of the server with the given keys.
func (s *Server) client(id, secret string) (*minio.Client, error) {
	return minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(id, secret, ""), Secure: false, MaxRetries: 1,
	})
}

// Client is an admin client of the server.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	cli, err := s.client(s.AccessKeyID, s.SecretAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("s3: make bucket %s: %v", name, err)
	}
}

// WriteCredentials writes a credentials file (backup's format, mode 0600)
// with the given keys to path.
func WriteCredentials(t testing.TB, path, id, secret string) {
	t.Helper()
	data := fmt.Sprintf("accessKeyID: %s\nsecretAccessKey: %s\n", id, secret)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago (all held open until the last is picked).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (Go 1.24+)
	return strings.ToUpper(hex.EncodeToString(b))
}
