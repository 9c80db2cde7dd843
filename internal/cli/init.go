package cli

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"time"

	"github.com/masterd/masterd/pki"
	"github.com/spf13/cobra"
)

func init() { register(newInitCmd) }

func newInitCmd(Build) *cobra.Command {
	var dir string
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "create the cluster secret to copy to every master",
		Long: `Create the cluster secret (cluster.key, mode 0600): the gossip encryption
key, the etcd, Kubernetes and front-proxy CAs and the service-account signing
key. Run it once, on one master, then copy the file to every master.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := filepath.Join(dir, "cluster.key")
			s, err := pki.GenerateSecret(rand.Reader, time.Now())
			if err != nil {
				return err
			}
			if err := pki.WriteSecret(path, s, force); err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), pki.InitText(path))
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "/etc/masterd", "`directory` for cluster.key")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing cluster.key (every certificate changes!)")
	cmd.MarkFlagDirname("dir")
	return cmd
}
