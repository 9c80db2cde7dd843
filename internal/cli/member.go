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
	"github.com/masterd/masterd/etcdembed"
	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func init() { register(newMemberCmd) }

func newMemberCmd(Build) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member COMMAND",
		Short: "add, remove, replace and list masters; recover from a survivor",
		Long: `The set of masters is data agreed in etcd (the membership record): peers
in masterd.yaml only seed the first boot. A change goes through a joint
membership and is finished by the daemons; one change at a time.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	configPath := configFlag(cmd.PersistentFlags())
	wait := cmd.PersistentFlags().Bool("wait", true, "add, remove, replace: wait until the change is finished")
	timeout := cmd.PersistentFlags().Duration("timeout", 10*time.Minute, "how long to wait for a change to finish")
	force := cmd.PersistentFlags().Bool("force", false, "recover only: recover although other masters still serve etcd")
	cmd.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		if *force && c.Name() != "recover" {
			return usagef("--force applies to recover only")
		}
		if *timeout <= 0 {
			return usagef("--timeout must be positive")
		}
		return nil
	}
	// withEtcd loads the configuration and connects to the local member.
	withEtcd := func(f func(ctx context.Context, cli *clientv3.Client, cfg agent.Config, out io.Writer, args []string) error) func(*cobra.Command, []string) error {
		return func(c *cobra.Command, args []string) error {
			cfg, err := agent.LoadConfig(*configPath)
			if err != nil {
				return configError{err}
			}
			cli, err := agent.EtcdClient(cfg)
			if err != nil {
				return err
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(context.Background(), *timeout+time.Minute)
			defer cancel()
			return f(ctx, cli, cfg, c.OutOrStdout(), args)
		}
	}
	waitFor := func(ctx context.Context, cli *clientv3.Client, cfg agent.Config, out io.Writer, r agent.MembershipRecord) error {
		if !*wait {
			fmt.Fprintln(out, "not waiting (--wait=false): the daemons finish the change; see masterd member list")
			return nil
		}
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		f, err := agent.WaitMembership(wctx, cli, cfg, r.Epoch+1, func(s string) {
			fmt.Fprintf(out, "waiting for %s\n", s)
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "done in %.1fs: %s\n", time.Since(start).Seconds(), f)
		return nil
	}
	add := func(ctx context.Context, cli *clientv3.Client, cfg agent.Config, out io.Writer, name, addr string) error {
		r, err := agent.AddMaster(ctx, cli, cfg, name, addr)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "adding %s (%s): joint membership epoch %d published, etcd learner requested\n", name, addr, r.Epoch)
		printJoin(out, cfg, r, name, addr)
		return waitFor(ctx, cli, cfg, out, r)
	}
	remove := func(ctx context.Context, cli *clientv3.Client, cfg agent.Config, out io.Writer, name string) error {
		r, err := agent.RemoveMaster(ctx, cli, cfg, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "removing %s: joint membership epoch %d published\n", name, r.Epoch)
		if err := waitFor(ctx, cli, cfg, out, r); err != nil {
			return err
		}
		if *wait {
			fmt.Fprintf(out, "%s is no longer a master: stop masterd there (systemctl stop masterd); its data cannot rejoin\n", name)
		}
		return nil
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "show the membership: epoch, masters, a change in progress",
			Args:  noArgs,
			RunE: withEtcd(func(ctx context.Context, cli *clientv3.Client, cfg agent.Config, out io.Writer, _ []string) error {
				return memberList(ctx, cli, cfg, out)
			}),
		},
		&cobra.Command{
			Use:   "add NAME ADDRESS",
			Short: "add a master",
			Long: `Add master NAME at ADDRESS. Run it on a master of the cluster; it checks
the cluster is healthy, publishes the joint membership, registers the new etcd
member as a learner and prints what to do on the new master. The change
finishes once the new master runs and has caught up. Running the same add
again resumes an interrupted one.`,
			Args: exactArgs(2),
			RunE: withEtcd(func(ctx context.Context, cli *clientv3.Client, cfg agent.Config, out io.Writer, args []string) error {
				return add(ctx, cli, cfg, out, args[0], args[1])
			}),
		},
		&cobra.Command{
			Use:   "remove NAME",
			Short: "remove a master",
			Long: `Remove master NAME. Refused when the masters left would not hold a quorum,
and on the master it names (run it on another one).`,
			Args: exactArgs(1),
			RunE: withEtcd(func(ctx context.Context, cli *clientv3.Client, cfg agent.Config, out io.Writer, args []string) error {
				return remove(ctx, cli, cfg, out, args[0])
			}),
		},
		&cobra.Command{
			Use:   "replace OLD NEW ADDRESS",
			Short: "replace master OLD by master NEW at ADDRESS (remove, then add)",
			Long: `Replace master OLD by NEW at ADDRESS: remove OLD, wait for it to finish,
then add NEW. With three masters the cluster runs on two meanwhile.`,
			Args: exactArgs(3),
			RunE: withEtcd(func(ctx context.Context, cli *clientv3.Client, cfg agent.Config, out io.Writer, args []string) error {
				if !*wait {
					return usagef("replace waits for the remove before the add; --wait=false is not possible")
				}
				if err := remove(ctx, cli, cfg, out, args[0]); err != nil {
					return err
				}
				return add(ctx, cli, cfg, out, args[1], args[2])
			}),
		},
		&cobra.Command{
			Use:   "wait",
			Short: "wait until the change in progress is finished",
			Args:  noArgs,
			RunE: withEtcd(func(ctx context.Context, cli *clientv3.Client, cfg agent.Config, out io.Writer, _ []string) error {
				r, _, _, err := agent.ReadMembership(ctx, cli)
				if err != nil {
					return err
				}
				if r.Change == nil {
					fmt.Fprintf(out, "no change in progress: %s\n", r)
					return nil
				}
				return waitFor(ctx, cli, cfg, out, r)
			}),
		},
		&cobra.Command{
			Use:   "abort",
			Short: "abort the change in progress (back to the masters before it)",
			Args:  noArgs,
			RunE: withEtcd(func(ctx context.Context, cli *clientv3.Client, cfg agent.Config, out io.Writer, _ []string) error {
				r, err := agent.AbortChange(ctx, cli, cfg)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "change aborted: %s\n", r)
				return nil
			}),
		},
		&cobra.Command{
			Use:   "recover",
			Short: "disaster recovery: a one-member cluster from this master's own etcd data",
			Long: `Disaster recovery when a quorum of masters is lost for good: turn this
master's own etcd data (every write it had applied) into a one-member cluster
and make it the only master of the membership. masterd must be stopped here;
refused while another master still serves etcd (--force recovers anyway).
Then start masterd here and add the other masters back as fresh ones
(masterd member add, with empty data dirs there).`,
			Args: noArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				cfg, err := agent.LoadConfig(*configPath)
				if err != nil {
					return configError{err}
				}
				ctx, cancel := context.WithTimeout(context.Background(), *timeout)
				defer cancel()
				return memberRecover(ctx, cfg, *force, c.OutOrStdout())
			},
		},
	)
	return cmd
}

// printJoin tells the operator what to run on the new master.
func printJoin(out io.Writer, cfg agent.Config, r agent.MembershipRecord, name, addr string) {
	fmt.Fprintf(out, `
On the new master %s (%s):
  1. copy the cluster secret from this master, mode 0600:
       scp %s %s:%s
  2. write /etc/masterd/masterd.yaml as on this master, with
       name: %s
       address: %s
       peers:
`, name, addr, cfg.ClusterKeyFile, addr, cfg.ClusterKeyFile, name, addr)
	for _, n := range slices.Sorted(maps.Keys(r.Voters)) {
		fmt.Fprintf(out, "         - {name: %s, address: %s}\n", n, r.Voters[n])
	}
	fmt.Fprintf(out, `  3. start it with an empty data dir: systemctl start masterd
`)
}

func memberList(ctx context.Context, cli *clientv3.Client, cfg agent.Config, out io.Writer) error {
	r, _, ok, err := agent.ReadMembership(ctx, cli)
	if err != nil {
		return err
	}
	if !ok {
		r = agent.SeedMembership(cfg)
		fmt.Fprintln(out, "no membership record yet (no daemon started): the seed from peers:")
	}
	live, learner, err := etcdembed.Liveness(ctx, cli)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "epoch %d\n", r.Epoch)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tVOTER\tETCD")
	var names []string
	for n := range r.Voters {
		names = append(names, n)
	}
	for n := range r.Old {
		if _, ok := r.Voters[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		addr, voter := r.Voters[n]
		role := "yes"
		if !voter {
			addr, role = r.Old[n], "leaving"
		} else if _, old := r.Old[n]; r.Change != nil && !old {
			role = "joining"
		}
		state := "absent"
		if a, found := live[n]; found {
			state = map[bool]string{true: "up", false: "down"}[a]
			if learner[n] {
				state += " (learner)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n, addr, role, state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Change != nil {
		_, waiting, err := agent.AdvanceMembership(ctx, cli, cfg)
		if err != nil {
			waiting = "error: " + err.Error()
		}
		fmt.Fprintf(out, "change in progress: %s\n", r.Change)
		if waiting != "" {
			fmt.Fprintf(out, "waiting for %s\n", waiting)
		}
	}
	return nil
}

func memberRecover(ctx context.Context, cfg agent.Config, force bool, out io.Writer) error {
	r, err := agent.RecoverSurvivor(ctx, cfg, force)
	var inUse *etcdembed.DataDirInUseError
	var running *etcdembed.PeersServingError
	switch {
	case errors.As(err, &inUse):
		return fmt.Errorf("refusing to recover: %v.\nmasterd runs on this host: stop it first (systemctl stop masterd). Nothing was changed", inUse)
	case errors.As(err, &running):
		return fmt.Errorf("refusing to recover: %v.\nA cluster that still serves needs no recovery; remove lost masters with masterd member remove. If those masters are to be discarded, stop them and pass --force. Nothing was changed", running)
	case err != nil:
		return err
	}
	fmt.Fprintf(out, `recovered: %s is now the only etcd member and the only master (%s).
Next: start masterd here (systemctl start masterd), then add the other masters
back one at a time as fresh ones (masterd member add NAME ADDRESS here, and on
each of them an empty data dir: move DATADIR/etcd and DATADIR/election aside).
`, cfg.Name, strings.TrimSpace(r.String()))
	return nil
}
