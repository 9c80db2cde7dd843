// Command echo is the lab's test server image: every HTTP request gets the
// host name (a pod's name) and the requested path back, one line. It listens
// on the address of $LISTEN (default :8080) and exits 0 on SIGTERM.
//
// `echo get URL` is its client: it resolves URL's host (through the pod's
// resolv.conf, so cluster DNS), GETs URL until a 200 answer or 60 seconds
// pass, and writes "<resolved address> <body>" (or "error: ...") to stdout
// and to /dev/termination-log, where kubelet reads a container's termination
// message; it exits 0 on a 200 answer, 1 otherwise.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "get" {
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: echo get URL")
			os.Exit(2)
		}
		os.Exit(get(os.Args[2], 60*time.Second))
	}
	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = ":8080"
	}
	host, err := os.Hostname()
	if err != nil {
		fmt.Fprintf(os.Stderr, "echo: hostname: %v\n", err)
		os.Exit(1)
	}
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s\n", host, r.URL.Path)
	})}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	fmt.Fprintf(os.Stderr, "echo: %s listening on %s\n", host, addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "echo: %v\n", err)
		os.Exit(1)
	}
}

// get fetches raw until a 200 answer or limit passes, reports the result
// and returns the exit code.
func get(raw string, limit time.Duration) int {
	msg, code := fetch(raw, limit)
	fmt.Println(msg)
	_ = os.WriteFile("/dev/termination-log", []byte(msg), 0o644)
	return code
}

func fetch(raw string, limit time.Duration) (string, int) {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return fmt.Sprintf("error: URL %q: want http://host[:port]/path (%v)", raw, err), 2
	}
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		addrs, err := net.LookupHost(u.Hostname())
		if err != nil {
			last = fmt.Errorf("resolve %s: %w", u.Hostname(), err)
			time.Sleep(time.Second)
			continue
		}
		resp, err := client.Get(raw)
		if err != nil {
			last = err
			time.Sleep(time.Second)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			return strings.Join(addrs, ",") + " " + strings.TrimSpace(string(body)), 0
		}
		last = fmt.Errorf("GET %s: %d %q (%v)", raw, resp.StatusCode, body, err)
		time.Sleep(time.Second)
	}
	return fmt.Sprintf("error: no 200 answer within %v: %v", limit, last), 1
}
