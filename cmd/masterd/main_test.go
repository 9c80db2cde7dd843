package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/masterd/masterd/internal/cli"
	"github.com/masterd/masterd/internal/freeport"
)

// buildBinary compiles masterd once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "masterd")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// exitBadConfig is the exit code of a usage or configuration error.
const exitBadConfig = cli.ExitUsage

// A one-node configuration with no kube units and no VIP runs as a real process
// with its real pki and embedded etcd: it notifies READY=1 over a real NOTIFY_SOCKET, serves /metrics with
// masterd_build_info and stops cleanly on SIGTERM.
func TestOneNodeDaemonStartsAndStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.TCP(t))
	cfgPath := filepath.Join(dir, "masterd.yaml")
	os.WriteFile(cfgPath, []byte(`name: solo
peers: [{name: solo, address: 127.0.0.1}]
clusterKeyFile: `+dir+`/cluster.key
dataDir: `+dir+`/data
vip: {enabled: false}
kubernetes: {mode: none}
metrics: {listen: "`+addr+`"}
`), 0o644)
	notify := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	if out, err := exec.Command(bin, "init", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("masterd init: %v\n%s", err, out)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()

	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no READY=1: %v\nstderr:\n%s", err, stderr.String())
		}
		if strings.Contains(string(buf[:n]), "READY=1") {
			break
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`masterd_build_info{goversion="go1.`, "masterd_etcd_member_healthy 1", "etcd_server_has_leader 1", "masterd_cert_expiry_timestamp_seconds"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// /status: lowerCamel keys only, and `masterd status` decodes it into
	// the agent's own types.
	out, err := exec.Command(bin, "status", "--addr", addr, "--json").Output()
	if err != nil {
		t.Fatalf("masterd status --json: %v", err)
	}
	var doc any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("status --json is no JSON: %v\n%s", err, out)
	}
	if bad := upperKeys(doc, ""); len(bad) > 0 {
		t.Errorf("/status keys not lowerCamel: %v\n%s", bad, out)
	}
	out, err = exec.Command(bin, "status", "--addr", addr).CombinedOutput()
	for _, want := range []string{"node solo  ready", "ROLE", "etcd: member ", "healthy", "certificates: "} {
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("masterd status: %v, lacks %q:\n%s", err, want, out)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("did not exit within 30s of SIGTERM\nstderr:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("no clean stop logged:\n%s", stderr.String())
	}
}

// upperKeys returns the path of every object key of the JSON document v that
// starts with an upper-case letter.
func upperKeys(v any, path string) []string {
	var bad []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k != "" && unicode.IsUpper(rune(k[0])) {
				bad = append(bad, path+"."+k)
			}
			bad = append(bad, upperKeys(e, path+"."+k)...)
		}
	case []any:
		for _, e := range x {
			bad = append(bad, upperKeys(e, path+"[]")...)
		}
	}
	return bad
}
