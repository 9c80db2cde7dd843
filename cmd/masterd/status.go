package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/masterd/masterd/agent"
)

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", "", `Show this master's view of the cluster, read from the local agent's
/status endpoint (metrics.listen in the configuration).`, stdout)
	configPath := fs.String("config", defaultConfig, "configuration `file`, to find metrics.listen")
	addr := fs.String("addr", "", "agent address host:port (overrides the configuration)")
	asJSON := fs.Bool("json", false, "print the raw JSON document")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	target := *addr
	if target == "" {
		cfg, err := agent.LoadConfig(*configPath)
		if err != nil {
			return configError{err}
		}
		target = cfg.Metrics.Listen
	}
	if host, port, err := net.SplitHostPort(target); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		target = net.JoinHostPort("127.0.0.1", port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/status", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("is masterd running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read status from %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status from %s: %s", target, resp.Status)
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var st agent.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decode status from %s: %w", target, err)
	}
	printStatus(stdout, st)
	return nil
}

// printStatus renders the status document as tables.
func printStatus(w io.Writer, st agent.Status) {
	ready := "not ready"
	if st.Ready {
		ready = "ready"
	}
	fmt.Fprintf(w, "node %s  %s  masterd %s  up %s\n\n", st.Node, ready, st.Build.Version,
		time.Duration(st.Uptime*float64(time.Second)).Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tSTATE")
	names := make([]string, 0, len(st.Components))
	for n := range st.Components {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%s\n", n, st.Components[n])
	}
	tw.Flush()
	printSections(w, st)
}
