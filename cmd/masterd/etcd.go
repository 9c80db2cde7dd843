package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/etcdembed"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const etcdUsage = `etcd maintenance for the embedded member.

Subcommands:
  members              list the etcd members
  snapshot save FILE   write a snapshot of the running cluster to FILE; it
                       holds every write acknowledged before the command ran
  restore FILE         disaster recovery: make this master a new one-member
                       cluster from the snapshot FILE. Refused while masterd
                       runs on this host, and while etcd runs on any other
                       master (--force restores anyway). A failed or refused
                       restore changes nothing; the old data is kept in
                       <dataDir>/etcd.before-restore-<time>
  remove NAME          remove a master taken away for good

Flags go before or after the subcommand and its argument.`

// etcdArgs names each subcommand's one positional argument ("" for none).
var etcdArgs = map[string]string{"members": "", "snapshot save": "FILE", "restore": "FILE", "remove": "NAME"}

func cmdEtcd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("etcd", "<subcommand> [argument]", etcdUsage, stdout)
	configPath := fs.String("config", defaultConfig, "configuration `file`")
	force := fs.Bool("force", false, "restore only: restore although other masters run etcd (they must rejoin with empty data dirs)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError{"missing subcommand (members, snapshot save, restore, remove)"}
	}
	sub, rest := pos[0], pos[1:]
	if sub == "help" {
		fs.Usage()
		return errHelp
	}
	if sub == "snapshot" {
		if len(rest) == 0 || rest[0] != "save" {
			return usageError{"usage: masterd etcd snapshot save FILE"}
		}
		sub, rest = "snapshot save", rest[1:]
	}
	argName, ok := etcdArgs[sub]
	if !ok {
		return usageError{fmt.Sprintf("unknown subcommand %q", sub)}
	}
	if want := map[bool]int{true: 1, false: 0}[argName != ""]; len(rest) != want {
		return usageError{strings.TrimSpace("usage: masterd etcd " + sub + " " + argName)}
	}
	if *force && sub != "restore" {
		return usageError{"--force applies to restore only"}
	}
	cfg, err := agent.LoadConfig(*configPath)
	if err != nil {
		return configError{err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	switch sub {
	case "members":
		return etcdMembers(ctx, cfg, stdout)
	case "snapshot save":
		return etcdSnapshot(ctx, cfg, rest[0], stdout)
	case "restore":
		return etcdRestore(ctx, cfg, rest[0], *force, stdout)
	default: // "remove"
		return etcdRemove(ctx, cfg, rest[0], stdout)
	}
}

// parseInterspersed parses args with fs, letting flags come before, between
// and after the positional arguments, which it returns in order; everything
// after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// etcdClient connects to the local member with masterd's own client
// certificate.
func etcdClient(cfg agent.Config) (*clientv3.Client, error) {
	f := agent.EtcdFiles(cfg)
	dir := f.Dir
	tlsInfo := transport.TLSInfo{CertFile: f.EtcdClient.Cert, KeyFile: f.EtcdClient.Key, TrustedCAFile: f.EtcdCA}
	tc, err := tlsInfo.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate in %s: %w", dir, err)
	}
	tc.MinVersion = tls.VersionTLS12
	host := "127.0.0.1"
	if cfg.Address.IsLoopback() {
		host = cfg.Address.String()
	}
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{"https://" + net.JoinHostPort(host, strconv.Itoa(cfg.Etcd.ClientPort))},
		TLS:         tc,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

func etcdMembers(ctx context.Context, cfg agent.Config, stdout io.Writer) error {
	cli, err := etcdClient(cfg)
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
	cli, err := etcdClient(cfg)
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
// snapshot, with the member configuration the daemon itself would run
// (agent.EtcdMemberConfig). etcdembed.Restore checks everything before it touches
// the data: the daemon's lock, the other masters, the snapshot.
func etcdRestore(ctx context.Context, cfg agent.Config, path string, force bool, stdout io.Writer) error {
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
Next: start masterd here (systemctl start masterd); then on every other master
stop masterd, move its dataDir/etcd aside and start it again: it joins this
member as a learner and is promoted, one master at a time.
`, path, ec.DataDir, cfg.Name)
	return nil
}

func etcdRemove(ctx context.Context, cfg agent.Config, name string, stdout io.Writer) error {
	if name == cfg.Name {
		return usageError{"refusing to remove this master itself; run it on another master"}
	}
	cli, err := etcdClient(cfg)
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
