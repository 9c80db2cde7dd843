package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/bootstrap"
	"github.com/spf13/cobra"
)

func init() { register(newTokenCmd) }

// tokenTimeout bounds one token command.
const tokenTimeout = 30 * time.Second

func newTokenCmd(Build) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token COMMAND",
		Short: "bootstrap tokens for joining worker nodes",
		Long: `Bootstrap tokens let a new worker's kubelet join the cluster, through
'kubeadm join' or a kubelet's --bootstrap-kubeconfig. They are Secrets
kube-system/bootstrap-token-ID, as kubeadm writes them; the controller-manager
deletes expired ones. The commands use this master's admin credentials.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	configPath := configFlag(cmd.PersistentFlags())
	load := func(f func(ctx context.Context, cfg agent.Config, c *bootstrap.Client, cr *bootstrap.Credentials, out io.Writer, args []string) error) func(*cobra.Command, []string) error {
		return func(c *cobra.Command, args []string) error {
			cfg, err := agent.LoadConfig(*configPath)
			if err != nil {
				return configError{err}
			}
			client, cr, err := agent.AdminClient(cfg)
			if err != nil {
				return err
			}
			defer client.Close()
			ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
			defer cancel()
			return f(ctx, cfg, client, cr, c.OutOrStdout(), args)
		}
	}

	create := &cobra.Command{
		Use:   "create",
		Short: "create a bootstrap token and print it",
		Long: `Create a bootstrap token and print it (id.secret). With --print-join-command,
print the 'kubeadm join' command a worker runs instead; with
--bootstrap-kubeconfig, a kubeconfig for a kubelet's --bootstrap-kubeconfig
(keep it mode 0600: it holds the token). Both name the VIP, never one master.`,
		Args: noArgs,
	}
	ttl := create.Flags().Duration("ttl", bootstrap.DefaultTTL, "lifetime of the token (0: never expires)")
	description := create.Flags().String("description", "", "a description shown by 'masterd token list'")
	printJoin := create.Flags().Bool("print-join-command", false, "print the kubeadm join command instead of the token")
	printKubeconfig := create.Flags().Bool("bootstrap-kubeconfig", false, "print a bootstrap kubeconfig for a plain kubelet instead of the token")
	create.RunE = func(c *cobra.Command, args []string) error {
		if *printJoin && *printKubeconfig {
			return usagef("--print-join-command and --bootstrap-kubeconfig exclude each other")
		}
		if *ttl < 0 {
			return usagef("--ttl %s: must not be negative (0: never expires)", *ttl)
		}
		return load(func(ctx context.Context, cfg agent.Config, client *bootstrap.Client, cr *bootstrap.Credentials, out io.Writer, args []string) error {
			server, err := agent.NodesServer(cfg, agent.NodesOf(cfg))
			if err != nil && (*printJoin || *printKubeconfig) {
				return err
			}
			tok, err := bootstrap.CreateToken(ctx, client, bootstrap.TokenOptions{TTL: *ttl, Description: *description}, time.Now())
			if err != nil {
				return err
			}
			switch {
			case *printJoin:
				line, err := bootstrap.JoinCommand(server, cr.CAPEM, tok)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, line)
			case *printKubeconfig:
				kc, err := bootstrap.BootstrapKubeconfig(server, cr.CAPEM, tok)
				if err != nil {
					return err
				}
				fmt.Fprint(out, kc)
			default:
				fmt.Fprintln(out, tok)
			}
			return nil
		})(c, args)
	}

	cmd.AddCommand(create,
		&cobra.Command{
			Use:   "list",
			Short: "list the bootstrap tokens (ids, never secrets)",
			Args:  noArgs,
			RunE: load(func(ctx context.Context, cfg agent.Config, client *bootstrap.Client, cr *bootstrap.Credentials, out io.Writer, args []string) error {
				list, err := bootstrap.ListTokens(ctx, client)
				printTokens(out, list, time.Now())
				return err
			}),
		},
		&cobra.Command{
			Use:   "delete ID",
			Short: "delete a bootstrap token (its id, or the whole token)",
			Args:  exactArgs(1),
			RunE: load(func(ctx context.Context, cfg agent.Config, client *bootstrap.Client, cr *bootstrap.Credentials, out io.Writer, args []string) error {
				if err := bootstrap.DeleteToken(ctx, client, args[0]); err != nil {
					return err
				}
				id, _, _ := strings.Cut(args[0], ".")
				fmt.Fprintf(out, "bootstrap token %q deleted\n", id)
				return nil
			}),
		},
	)
	return cmd
}

// printTokens writes the table of tokens, as kubeadm token list without the
// secrets.
func printTokens(w io.Writer, list []bootstrap.TokenInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tTTL\tEXPIRES\tUSAGES\tDESCRIPTION\tEXTRA GROUPS")
	for _, t := range list {
		ttl, expires := "<forever>", "<never>"
		if !t.Expires.IsZero() {
			expires = t.Expires.UTC().Format(time.RFC3339)
			ttl = "<invalid>"
			if !t.Expired(now) {
				ttl = shortDuration(t.Expires.Sub(now))
			}
		}
		desc := t.Description
		if desc == "" {
			desc = "<none>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, ttl, expires, strings.Join(t.Usages, ","), desc, strings.Join(t.Groups, ","))
	}
	tw.Flush()
}

// shortDuration is d in its largest whole unit, as kubeadm token list
// shows a TTL: 45s, 59m, 23h, 6d.
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
