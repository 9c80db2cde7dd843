package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/masterd/masterd/internal/freeport"
)

// A one-node daemon (real pki, embedded etcd and election; no VIP, no kube
// units, as TestOneNodeDaemonStartsAndStopsOnSIGTERM) reloads on SIGHUP: a
// new log.level is applied (memberlist's debug lines, filtered before, follow
// in the election component's log), a new priority is
// reported as needing a restart, an invalid file is rejected with the
// running configuration kept, and neither reload drops a role or stops the
// process. Its stderr is a pipe named by JOURNAL_STREAM, as systemd connects
// it to journald, so every line carries its syslog priority.
func TestSIGHUPReloadsWithoutDroppingARole(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	freePort := func() string { return fmt.Sprintf("127.0.0.1:%d", freeport.TCPAndUDP(t)) }
	addr, gossip := freePort(), freePort()
	_, gossipPort, _ := net.SplitHostPort(gossip)
	cfgPath := filepath.Join(dir, "masterd.yaml")
	writeConfig := func(extra string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(`name: solo
peers: [{name: solo, address: 127.0.0.1}]
clusterKeyFile: `+dir+`/cluster.key
dataDir: `+dir+`/data
gossip: {port: `+gossipPort+`}
vip: {enabled: false}
kubernetes: {mode: none}
metrics: {listen: "`+addr+`"}
`+extra), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("log: {level: info}\n")
	notify := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if out, err := exec.Command(bin, "init", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("masterd init: %v\n%s", err, out)
	}

	// stderr: a pipe whose device:inode is JOURNAL_STREAM.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(pw.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	copied := make(chan struct{})
	go func() { io.Copy(stderr, pr); close(copied) }()

	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify, fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		<-copied
		if t.Failed() {
			t.Logf("stderr (tail):\n%s", tail(stderr.String(), 60))
		}
	})
	alive := func(when string) {
		t.Helper()
		select {
		case err := <-exited:
			t.Fatalf("masterd exited %s: %v", when, err)
		default:
		}
	}
	// waitNotify waits for a datagram holding want.
	waitNotify := func(want string) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("no %s from sd_notify: %v", want, err)
			}
			if strings.Contains(string(buf[:n]), want) {
				return
			}
		}
	}
	// waitLine waits for a stderr line after offset `from` that has every part.
	waitLine := func(from int, parts ...string) (line string, end int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			s := stderr.String()
			off := from
			for _, l := range strings.SplitAfter(s[from:], "\n") {
				off += len(l)
				if !strings.HasSuffix(l, "\n") {
					break
				}
				ok := true
				for _, p := range parts {
					ok = ok && strings.Contains(l, p)
				}
				if ok {
					return l, off
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no line with %q in stderr", parts)
		return "", 0
	}

	waitNotify("READY=1")
	d := &daemon{metrics: addr}
	var before map[string]roleView
	deadline := time.Now().Add(60 * time.Second)
	for {
		before, _ = d.roles()
		if before["scheduler"].Leader && before["controller-manager"].Leader {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("roles not led after READY: %v", before)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A TCP connection to memberlist that says nothing is a debug line
	// ("Stream connection") and a warning (its failed read).
	poke := func() {
		t.Helper()
		c, err := net.Dial("tcp", gossip)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	poke()
	waitLine(0, "<4>", "level=WARN", "msg=memberlist")
	if s := stderr.String(); strings.Contains(s, "level=DEBUG") {
		t.Fatalf("a debug line at level info:\n%s", tail(s, 20))
	}

	// A new level and a new priority.
	start := len(stderr.String())
	writeConfig("log: {level: debug}\npriority: 10\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitNotify("RELOADING=1")
	waitNotify("READY=1")
	line, end := waitLine(start, `msg="config reloaded"`)
	if !strings.HasPrefix(line, "<6>") || !strings.Contains(line, "applied=log.level") || !strings.Contains(line, "needs_restart=priority") {
		t.Errorf("reload line %q: want <6>, applied=log.level, needs_restart=priority", line)
	}
	poke()
	if debug, _ := waitLine(end, "level=DEBUG", "msg=memberlist"); !strings.HasPrefix(debug, "<7>") {
		t.Errorf("debug line %q lacks <7>", debug)
	}
	alive("after a valid SIGHUP")

	// An invalid file: rejected, the process and its level stay.
	start = len(stderr.String())
	writeConfig("log: {level: loud}\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitNotify("READY=1")
	line, end = waitLine(start, `msg="config reload rejected"`)
	if !strings.HasPrefix(line, "<3>") || !strings.Contains(line, "log.level") {
		t.Errorf("rejection line %q: want <3> and the bad key", line)
	}
	poke()
	waitLine(end, "level=DEBUG", "msg=memberlist")
	alive("after an invalid SIGHUP")

	after, err := d.roles()
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"scheduler", "controller-manager"} {
		if after[role] != before[role] {
			t.Errorf("role %s was %+v before the reloads, %+v after", role, before[role], after[role])
		}
	}
	if s := stderr.String(); strings.Contains(s, `msg="role lost"`) {
		t.Errorf("a role was lost during the reloads")
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("did not exit within 30s of SIGTERM")
	}
}
