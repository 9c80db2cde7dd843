package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func init() { register(newKeysCmd) }

func newKeysCmd(Build) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys COMMAND",
		Short: "rotate the cluster's shared keys online",
		Long: `Rotate the keys the masters share, without stopping anything.

The gossip key encrypts and authenticates memberlist between the masters; the
service-account key signs the tokens of Kubernetes service accounts. Their
generations derive from the cluster secret (0 is the secret's own key), so the
cluster secret file stays as it is; each agreed key ring is a record in etcd
that every running masterd applies and acknowledges.`,
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
			r, err := agent.RotateGossipKey(ctx, cli, *timeout, func(s agent.KeyRollStep) {
				fmt.Fprintf(out, "step %d/3 %-7s %s: applied by %s (%.1fs)\n", s.Step, stepNames[s.Step], s.Record,
					strings.Join(s.Acked, ", "), s.Duration.Seconds())
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "gossip key rotated: %s\n", r)
			return nil
		}),
	}
	removeNow := false
	rotateSA := &cobra.Command{
		Use:   "rotate-service-account",
		Short: "roll the service-account signing key to a new generation",
		Long: `Roll the key that signs service-account tokens to the next generation, with
no apiserver restart (masterd serves the apiservers' token signer): install the
new key so every apiserver accepts it, make it the key that signs, and, once
every token the old key signed has expired (` + agent.ServiceAccountKeyKeep.String() + ` after the switch), remove
the old one. The controller-manager, which signs legacy token Secrets with the
key file, restarts in place on the master that runs it.

The command stops after the switch and says when the old key may go: run it
again after that time to finish. --remove-now removes the old key at once;
tokens it signed stop working then (pods get new ones from their kubelet within
the hour, tokens made with 'kubectl create token' do not).

Every master must be running; a master that does not answer within --timeout
stops the roll where it is (still safe) and is named.`,
		Args: noArgs,
		RunE: withEtcd(func(ctx context.Context, cfg agent.Config, out io.Writer) error {
			cli, err := agent.EtcdClient(cfg)
			if err != nil {
				return err
			}
			defer cli.Close()
			r, err := agent.RotateServiceAccountKey(ctx, cfg, cli, *timeout, removeNow, func(s agent.KeyRollStep) {
				fmt.Fprintf(out, "step %d/3 %-7s %s: applied by %s (%.1fs)\n", s.Step, stepNames[s.Step], s.Record,
					strings.Join(s.Acked, ", "), s.Duration.Seconds())
			})
			if errors.Is(err, agent.ErrServiceAccountKeyKept) {
				fmt.Fprintf(out, "service-account key switched: %s\n%v\n", r, err)
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "service-account key rotated: %s\n", r)
			return nil
		}),
	}
	rotateSA.Flags().BoolVar(&removeNow, "remove-now", false, "remove the old key without waiting for its tokens to expire (they stop working)")
	status := &cobra.Command{
		Use:   "status",
		Short: "show the agreed key rings and what each master applied",
		Args:  noArgs,
		RunE: withEtcd(func(ctx context.Context, cfg agent.Config, out io.Writer) error {
			cli, err := agent.EtcdClient(cfg)
			if err != nil {
				return err
			}
			defer cli.Close()
			if err := printKeyRing(ctx, out, "gossip keyring", "rotate-gossip", agent.ReadGossipKeys, agent.GossipKeyAcks, cli); err != nil {
				return err
			}
			fmt.Fprintln(out)
			return printKeyRing(ctx, out, "service-account keys", "rotate-service-account", agent.ReadServiceAccountKeys, agent.ServiceAccountKeyAcks, cli)
		}),
	}
	cmd.AddCommand(rotate, rotateSA, status)
	return cmd
}

var stepNames = map[int]string{agent.RollStepInstall: "install", agent.RollStepUse: "use", agent.RollStepRemove: "remove"}

// printKeyRing prints one key ring's record and each master's
// acknowledgement.
func printKeyRing(ctx context.Context, out io.Writer, what, command string,
	read func(context.Context, *clientv3.Client) (agent.KeyRing, int64, error),
	acked func(context.Context, *clientv3.Client) (map[string]int64, error), cli *clientv3.Client) error {
	r, rev, err := read(ctx, cli)
	if err != nil {
		return err
	}
	acks, err := acked(ctx, cli)
	if err != nil {
		return err
	}
	state := "no roll in progress"
	if r.Step != agent.RollStepIdle {
		state = fmt.Sprintf("roll to generation %d at step %d/3: run 'masterd keys %s' to finish it", r.Next, r.Step, command)
	}
	fmt.Fprintf(out, "%s: %s (revision %d), %s\n", what, r, rev, state)
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
}
