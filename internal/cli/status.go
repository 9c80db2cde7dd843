package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/spf13/cobra"
)

func init() { register(newStatusCmd) }

func newStatusCmd(Build) *cobra.Command {
	var addr string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show the cluster: members, roles, etcd, certificates",
		Long: `Show this master's view of the cluster, read from the local agent's
/status endpoint (metrics.listen in the configuration).`,
		Args: noArgs,
	}
	configPath := configFlag(cmd.Flags())
	cmd.Flags().Lookup("config").Usage = "configuration `file`, to find metrics.listen"
	cmd.Flags().StringVar(&addr, "addr", "", "agent address `host:port` (overrides the configuration)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON document")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		target := addr
		if target == "" {
			cfg, err := agent.LoadConfig(*configPath)
			if err != nil {
				return configError{err}
			}
			target = cfg.Metrics.Listen
		}
		body, err := fetchStatus(target)
		if err != nil {
			return err
		}
		if asJSON {
			_, err := cmd.OutOrStdout().Write(body)
			return err
		}
		st, err := agent.DecodeStatus(body)
		if err != nil {
			return fmt.Errorf("decode status from %s: %w", target, err)
		}
		printStatus(cmd.OutOrStdout(), st)
		return nil
	}
	return cmd
}

// fetchStatus reads /status from the agent at target (host:port; an
// unspecified host is this host's loopback).
func fetchStatus(target string) ([]byte, error) {
	if host, port, err := net.SplitHostPort(target); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		target = net.JoinHostPort("127.0.0.1", port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is masterd running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read status from %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status from %s: %s", target, resp.Status)
	}
	return body, nil
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
