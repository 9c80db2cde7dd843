package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/masterd/masterd/etcdembed"
	"github.com/masterd/masterd/pki"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const etcdUsage = `etcd maintenance for the embedded member.

Usage:
  masterd etcd members                 list the etcd members
  masterd etcd snapshot save FILE      write a snapshot of the running cluster
  masterd etcd restore FILE            disaster recovery (masterd stopped): make
                                       this master a new one-member cluster from FILE
  masterd etcd remove NAME             remove a master taken away for good

Flags (every subcommand):
  --config FILE   configuration file (default /etc/masterd/masterd.yaml)
`

func cmdEtcd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"missing subcommand (members, snapshot save, restore, remove)"}
	}
	sub := args[0]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprint(stdout, "Usage: masterd etcd <subcommand>\n\n"+etcdUsage)
		return errHelp
	}
	if sub == "snapshot" {
		if len(args) < 2 || args[1] != "save" {
			return usageError{"usage: masterd etcd snapshot save FILE"}
		}
		sub, args = "snapshot save", args[1:]
	}
	fs := newFlagSet("etcd "+sub, "", etcdUsage, stdout)
	configPath := fs.String("config", defaultConfig, "configuration `file`")
	if err := parse(fs, args[1:]); err != nil {
		return err
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
		if fs.NArg() != 1 {
			return usageError{"usage: masterd etcd snapshot save FILE"}
		}
		return etcdSnapshot(ctx, cfg, fs.Arg(0), stdout)
	case "restore":
		if fs.NArg() != 1 {
			return usageError{"usage: masterd etcd restore FILE"}
		}
		return etcdRestore(cfg, fs.Arg(0), stdout)
	case "remove":
		if fs.NArg() != 1 {
			return usageError{"usage: masterd etcd remove NAME"}
		}
		return etcdRemove(ctx, cfg, fs.Arg(0), stdout)
	}
	return usageError{fmt.Sprintf("unknown subcommand %q", sub)}
}

// etcdClient connects to the local member with masterd's own client
// certificate.
func etcdClient(cfg agent.Config) (*clientv3.Client, error) {
	dir := cfg.PKI.ExternalDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "pki")
	}
	f := pki.FilesIn(dir)
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

// etcdSnapshot streams a snapshot from the local member to path atomically.
func etcdSnapshot(ctx context.Context, cfg agent.Config, path string, stdout io.Writer) error {
	cli, err := etcdClient(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("etcd snapshot: %w", err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, rc)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("etcd snapshot to %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "snapshot saved to %s (%d bytes)\n", path, n)
	return nil
}

// etcdRestore makes this master's data dir a new one-member cluster from a
// snapshot. masterd must be stopped; the old etcd data is kept aside.
func etcdRestore(cfg agent.Config, path string, stdout io.Writer) error {
	ec := etcdembed.DefaultConfig()
	ec.Name = cfg.Name
	ec.DataDir = filepath.Join(cfg.DataDir, "etcd")
	ec.Address = cfg.Address
	ec.ClientPort, ec.PeerPort = uint16(cfg.Etcd.ClientPort), uint16(cfg.Etcd.PeerPort)
	ec.Members = []etcdembed.Peer{{Name: cfg.Name, Address: cfg.Address}}
	if _, err := os.Stat(ec.DataDir); err == nil {
		aside := ec.DataDir + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(ec.DataDir, aside); err != nil {
			return fmt.Errorf("move old etcd data aside: %w", err)
		}
		fmt.Fprintf(stdout, "old etcd data moved to %s\n", aside)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := etcdembed.Restore(path, ec); err != nil {
		return err
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
