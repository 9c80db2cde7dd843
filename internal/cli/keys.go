package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/spf13/cobra"
)

func init() { register(newKeysCmd) }

func newKeysCmd(Build) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys COMMAND",
		Short: "rotate the cluster's shared keys online",
		Long: `Rotate the keys the masters share, without stopping anything.

The gossip key encrypts and authenticates memberlist between the masters. Its
generations derive from the cluster secret (0 is the secret's own key), so the
cluster secret file stays as it is; the agreed keyring is a record in etcd that
every running masterd applies and acknowledges.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	configPath := configFlag(cmd.PersistentFlags())
	timeout := cmd.PersistentFlags().Duration("timeout", 2*time.Minute, "how long each step waits for every master")
	withEtcd := func(f func(ctx context.Context, cfg agent.Config, out io.Writer) error) func(*cobra.Command, []string) error {
		return func(c *cobra.Command, args []string) error {
			if *timeout <= 0 {
				return usagef("--timeout %s: must be positive", *timeout)
			}
			cfg, err := agent.LoadConfig(*configPath)
			if err != nil {
				return configError{err}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3**timeout+time.Minute)
			defer cancel()
			return f(ctx, cfg, c.OutOrStdout())
		}
	}
	rotate := &cobra.Command{
		Use:   "rotate-gossip",
		Short: "roll the gossip key to a new generation on every master",
		Long: `Roll the gossip key to the next generation in three steps, each started only
once every master of the membership applied the one before: install the new key
beside the current one, make it the key that encrypts, remove the old one. At
no moment do two masters lack a common key, so no election is lost.

Every master must be running. When one does not answer within --timeout the
roll stops where it is (still safe) and names it; start it and run the command
again: it resumes the unfinished roll. A master that was down during a whole
roll reads the keyring from etcd when it starts and rejoins.`,
		Args: noArgs,
		RunE: withEtcd(func(ctx context.Context, cfg agent.Config, out io.Writer) error {
			cli, err := agent.EtcdClient(cfg)
			if err != nil {
				return err
			}
			defer cli.Close()
			names := map[int]string{agent.GossipStepInstall: "install", agent.GossipStepUse: "use", agent.GossipStepRemove: "remove"}
			r, err := agent.RotateGossipKey(ctx, cli, *timeout, func(s agent.GossipRollStep) {
				fmt.Fprintf(out, "step %d/3 %-7s %s: applied by %s (%.1fs)\n", s.Step, names[s.Step], s.Record,
					strings.Join(s.Acked, ", "), s.Duration.Seconds())
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "gossip key rotated: %s\n", r)
			return nil
		}),
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "show the agreed gossip keyring and what each master applied",
		Args:  noArgs,
		RunE: withEtcd(func(ctx context.Context, cfg agent.Config, out io.Writer) error {
			cli, err := agent.EtcdClient(cfg)
			if err != nil {
				return err
			}
			defer cli.Close()
			r, rev, err := agent.ReadGossipKeys(ctx, cli)
			if err != nil {
				return err
			}
			acks, err := agent.GossipKeyAcks(ctx, cli)
			if err != nil {
				return err
			}
			state := "no roll in progress"
			if r.Step != agent.GossipStepIdle {
				state = fmt.Sprintf("roll to generation %d at step %d/3: run 'masterd keys rotate-gossip' to finish it", r.Next, r.Step)
			}
			fmt.Fprintf(out, "gossip keyring: %s (revision %d), %s\n", r, rev, state)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MASTER\tAPPLIED REVISION\tCURRENT")
			for _, name := range slices.Sorted(maps.Keys(acks)) {
				cur := "yes"
				if acks[name] < rev {
					cur = "no"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\n", name, acks[name], cur)
			}
			return tw.Flush()
		}),
	}
	cmd.AddCommand(rotate, status)
	return cmd
}
