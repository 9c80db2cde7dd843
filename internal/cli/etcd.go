package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/backup"
	"github.com/masterd/masterd/etcdembed"
	"github.com/spf13/cobra"
)

func init() { register(newEtcdCmd) }

// etcdTimeout bounds one etcd command.
const etcdTimeout = 5 * time.Minute

// forceAnnotation marks the etcd subcommands that take --force.
const forceAnnotation = "masterd/force"

func newEtcdCmd(Build) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "etcd COMMAND",
		Short: "etcd maintenance: members, snapshot save, restore, remove a member",
		Long: `etcd maintenance for the embedded member. Flags go before or after the
subcommand and its argument.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	// Persistent, so that they are read anywhere on the line; --force is
	// refused by the subcommands without forceAnnotation.
	configPath := configFlag(cmd.PersistentFlags())
	force := cmd.PersistentFlags().Bool("force", false, "restore only: restore although other masters run etcd (they must rejoin with empty data dirs)")
	cmd.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		if *force && c.Annotations[forceAnnotation] == "" {
			return usagef("--force applies to restore only")
		}
		return nil
	}
	// load reads the configuration and runs f with a bounded context.
	load := func(f func(ctx context.Context, cfg agent.Config, out io.Writer, args []string) error) func(*cobra.Command, []string) error {
		return func(c *cobra.Command, args []string) error {
			cfg, err := agent.LoadConfig(*configPath)
			if err != nil {
				return configError{err}
			}
			ctx, cancel := context.WithTimeout(context.Background(), etcdTimeout)
			defer cancel()
			return f(ctx, cfg, c.OutOrStdout(), args)
		}
	}
	snapshot := &cobra.Command{
		Use:   "snapshot COMMAND",
		Short: "snapshots of the running cluster",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	snapshot.AddCommand(&cobra.Command{
		Use:   "save FILE",
		Short: "write a snapshot of the running cluster to FILE",
		Long: `Write a snapshot of the running cluster to FILE. It holds every write
acknowledged before the command ran.`,
		Args: exactArgs(1),
		RunE: load(func(ctx context.Context, cfg agent.Config, out io.Writer, args []string) error {
			return etcdSnapshot(ctx, cfg, args[0], out)
		}),
	})
	listS3 := false
	list := &cobra.Command{
		Use:   "list",
		Short: "list this master's snapshots, or the cluster's in the S3 store (--s3)",
		Long: `List the snapshot files in dataDir/snapshots (the automatic ones), or with
--s3 the cluster's snapshots in the S3-compatible store of etcd.backup.s3:
name, size and when each was taken (UTC). The names of the store are what
'masterd etcd snapshot fetch' and 'masterd etcd restore s3://NAME' take.`,
		Args: noArgs,
		RunE: load(func(ctx context.Context, cfg agent.Config, out io.Writer, args []string) error {
			return etcdSnapshotList(ctx, cfg, *configPath, listS3, out)
		}),
	}
	list.Flags().BoolVar(&listS3, "s3", false, "list the S3 store's snapshots of this cluster instead of the local ones")
	fetchOut := ""
	fetch := &cobra.Command{
		Use:   "fetch NAME",
		Short: "copy a snapshot from the S3 store to a file, its checksum verified",
		Long: `Copy the snapshot NAME (as 'masterd etcd snapshot list --s3' shows it) from
the S3-compatible store of etcd.backup.s3 to a file (mode 0600; default
./NAME). The file appears only complete and with the SHA-256 recorded at
upload; an existing file is not replaced.`,
		Args: exactArgs(1),
		RunE: load(func(ctx context.Context, cfg agent.Config, out io.Writer, args []string) error {
			return etcdSnapshotFetch(ctx, cfg, *configPath, args[0], fetchOut, out)
		}),
	}
	fetch.Flags().StringVarP(&fetchOut, "output", "o", "", "the `file` to write (default: NAME in the current directory)")
	snapshot.AddCommand(list, fetch)
	cmd.AddCommand(
		&cobra.Command{
			Use:   "members",
			Short: "list the etcd members",
			Args:  noArgs,
			RunE: load(func(ctx context.Context, cfg agent.Config, out io.Writer, args []string) error {
				return etcdMembers(ctx, cfg, out)
			}),
		},
		snapshot,
		&cobra.Command{
			Use:   "restore FILE|s3://NAME",
			Short: "disaster recovery: a new one-member cluster from a snapshot",
			Long: `Disaster recovery: make this master a new one-member cluster from the
snapshot FILE, or from the snapshot NAME in the S3 store of etcd.backup.s3
(s3://NAME, as 'masterd etcd snapshot list --s3' shows it; fetched into
dataDir with its checksum verified, removed after). Refused while masterd
runs on this host, and while etcd runs on any other master (--force
restores anyway). A failed or refused restore changes nothing; the old data
is kept in DATADIR/etcd.before-restore-TIME.`,
			Args:        exactArgs(1),
			Annotations: map[string]string{forceAnnotation: "true"},
			RunE: load(func(ctx context.Context, cfg agent.Config, out io.Writer, args []string) error {
				if name, ok := strings.CutPrefix(args[0], "s3://"); ok {
					return etcdRestoreS3(ctx, cfg, *configPath, name, *force, out)
				}
				return etcdRestore(ctx, cfg, args[0], args[0], *force, out)
			}),
		},
		&cobra.Command{
			Use:   "remove NAME",
			Short: "remove a master taken away for good",
			Args:  exactArgs(1),
			RunE: load(func(ctx context.Context, cfg agent.Config, out io.Writer, args []string) error {
				return etcdRemove(ctx, cfg, args[0], out)
			}),
		},
	)
	return cmd
}

func etcdMembers(ctx context.Context, cfg agent.Config, stdout io.Writer) error {
	cli, err := agent.EtcdClient(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcd member list: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPEER URLS\tLEARNER")
	for _, m := range resp.Members {
		fmt.Fprintf(tw, "%x\t%s\t%v\t%v\n", m.ID, m.Name, m.PeerURLs, m.IsLearner)
	}
	return tw.Flush()
}

// etcdSnapshot saves a snapshot of the local member to path; it holds every
// write acknowledged before it started (etcdembed.SaveSnapshot).
func etcdSnapshot(ctx context.Context, cfg agent.Config, path string, stdout io.Writer) error {
	cli, err := agent.EtcdClient(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	n, err := etcdembed.SaveSnapshot(ctx, cli, path)
	if err != nil {
		return fmt.Errorf("etcd snapshot to %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "snapshot saved to %s (%d bytes)\n", path, n)
	return nil
}

// etcdRestore makes this master's data dir a new one-member cluster from a
// snapshot (path; shown is how the output names it), with the member configuration the daemon itself would run
// (agent.EtcdMemberConfig). etcdembed.Restore checks everything before it touches
// the data: the daemon's lock, the other masters, the snapshot.
func etcdRestore(ctx context.Context, cfg agent.Config, path, shown string, force bool, stdout io.Writer) error {
	ec := agent.EtcdMemberConfig(cfg, agent.EtcdFiles(cfg))
	aside, err := etcdembed.Restore(ctx, path, ec, etcdembed.RestoreOptions{Force: force, MoveAside: true})
	var inUse *etcdembed.DataDirInUseError
	var running *etcdembed.PeersServingError
	switch {
	case errors.As(err, &inUse):
		return fmt.Errorf(`refusing to restore: %v.
masterd runs on this host: stop it first (systemctl stop masterd), then run the
restore again. Nothing was changed`, inUse)
	case errors.As(err, &running):
		return fmt.Errorf(`refusing to restore: %v.
A restore makes this master a new one-member cluster; beside a running etcd
that means two clusters. A cluster that still has quorum needs no restore.
Otherwise stop masterd on every master (systemctl stop masterd) and run the
restore again, or pass --force if the data of those masters is to be
discarded (each then rejoins with an empty data dir). Nothing was changed`, running)
	case err != nil:
		return err
	}
	if aside != "" {
		fmt.Fprintf(stdout, "old etcd data moved to %s\n", aside)
	}
	fmt.Fprintf(stdout, `restored %s into %s as a new one-member cluster (%s).
Next: start masterd here (systemctl start masterd); it holds every role alone.
Then add the other masters back one at a time: here, masterd member add NAME
ADDRESS; on that master, stop masterd, move its dataDir/etcd and
dataDir/election aside and start it again: it joins as a learner and is
promoted.
`, shown, ec.DataDir, cfg.Name)
	return nil
}

func etcdRemove(ctx context.Context, cfg agent.Config, name string, stdout io.Writer) error {
	if name == cfg.Name {
		return usagef("refusing to remove this master itself; run it on another master")
	}
	cli, err := agent.EtcdClient(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcd member list: %w", err)
	}
	for _, m := range resp.Members {
		if m.Name == name {
			if _, err := cli.MemberRemove(ctx, m.ID); err != nil {
				return fmt.Errorf("etcd remove %s (%x): %w", name, m.ID, err)
			}
			fmt.Fprintf(stdout, "removed etcd member %s (%x); remove it from peers in every masterd.yaml\n", name, m.ID)
			return nil
		}
	}
	return fmt.Errorf("no etcd member named %q", name)
}

// backupStore opens the S3 store of etcd.backup.s3 in the configuration
// file configPath: a section left empty, or one with bad values, is a
// configuration error naming the keys.
func backupStore(cfg agent.Config, configPath string) (*backup.Store, error) {
	bc := agent.BackupStoreConfig(cfg)
	if bc.Endpoint == "" && bc.Bucket == "" {
		return nil, configError{fmt.Errorf("%s: etcd.backup.s3 is not configured: set its endpoint, bucket and credentialsFile (enabled: true also uploads the automatic snapshots)", configPath)}
	}
	if ps := bc.Problems(); len(ps) > 0 {
		var errs []error
		for _, p := range ps {
			key := "etcd.backup.s3." + p.Field
			if p.Field == "cluster" {
				key = "gossip.clusterName"
			}
			errs = append(errs, fmt.Errorf("%s: %s", key, p.Msg))
		}
		return nil, configError{fmt.Errorf("%s:\n%w", configPath, errors.Join(errs...))}
	}
	return backup.Open(bc)
}

// etcdSnapshotList prints the local snapshots, or the store's (s3).
func etcdSnapshotList(ctx context.Context, cfg agent.Config, configPath string, s3 bool, stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if s3 {
		st, err := backupStore(cfg, configPath)
		if err != nil {
			return err
		}
		objs, err := st.List(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "snapshots in %s:\n", st.Where())
		fmt.Fprintln(tw, "NAME\tSIZE\tTAKEN (UTC)\tMASTER")
		for _, o := range objs {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", o.Name, o.Size, o.Taken.Format(time.DateTime), o.Master)
		}
		return tw.Flush()
	}
	dir := agent.EtcdMemberConfig(cfg, nil).SnapshotDir
	snaps, err := backup.ListLocal(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "snapshots in %s:\n", dir)
	fmt.Fprintln(tw, "NAME\tSIZE\tTAKEN (UTC)")
	for _, s := range snaps {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", s.Name, s.Size, s.Taken.Format(time.DateTime))
	}
	return tw.Flush()
}

// s3Name is the object name in arg: NAME, or the whole
// s3://bucket/prefix/cluster/NAME that list prints above its table.
func s3Name(st *backup.Store, arg string) string {
	if where := strings.TrimPrefix(st.Where(), "s3://"); strings.HasPrefix(arg, where) {
		return strings.TrimPrefix(arg, where)
	}
	return arg
}

// etcdSnapshotFetch copies the store's snapshot name to out (default
// ./name); an existing file is refused.
func etcdSnapshotFetch(ctx context.Context, cfg agent.Config, configPath, name, out string, stdout io.Writer) error {
	st, err := backupStore(cfg, configPath)
	if err != nil {
		return err
	}
	name = s3Name(st, strings.TrimPrefix(name, "s3://"))
	if out == "" {
		out = filepath.Base(name)
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("%s exists: remove it or write elsewhere (-o FILE)", out)
	}
	o, err := st.Fetch(ctx, name, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fetched %s%s to %s (%d bytes, sha256 %s verified)\n", st.Where(), o.Name, out, o.Size, o.SHA256)
	return nil
}

// etcdRestoreS3 fetches the store's snapshot name into a temporary
// directory of dataDir and restores it (etcdRestore, with all its checks);
// the copy is removed afterwards.
func etcdRestoreS3(ctx context.Context, cfg agent.Config, configPath, name string, force bool, stdout io.Writer) error {
	st, err := backupStore(cfg, configPath)
	if err != nil {
		return err
	}
	name = s3Name(st, name)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	tmp, err := os.MkdirTemp(cfg.DataDir, ".restore-s3-")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(tmp)
	file := filepath.Join(tmp, filepath.Base(name))
	o, err := st.Fetch(ctx, name, file)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fetched %s%s (%d bytes, sha256 verified)\n", st.Where(), o.Name, o.Size)
	return etcdRestore(ctx, cfg, file, "s3://"+o.Name, force, stdout)
}
