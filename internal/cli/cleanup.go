package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/masterd/masterd/agent"
	"github.com/spf13/cobra"
)

func init() { register(newCleanupCmd) }

// newCleanupCmd is what masterd.service runs after any exit of the daemon
// (ExecStopPost=), SIGKILL and OOM included: agent.Cleanup.
func newCleanupCmd(Build) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "remove what a dead daemon left: the VIP, leader-only units",
		Long: `Remove what a stopped or crashed daemon may still hold: delete the VIP
from every interface and stop kube-scheduler and kube-controller-manager.
With vip.fence, a VIP the fence still lets answer is deleted when the fence
expires (the dead daemon's lease deadline, at most one lease from now).
masterd.service runs it after every exit of the daemon (ExecStopPost=).`,
		Args: noArgs,
	}
	configPath := configFlag(cmd.Flags())
	cmd.Flags().DurationVar(&timeout, "timeout", 20*time.Second, "give up after this long")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := agent.LoadConfig(*configPath)
		if err != nil {
			return configError{err}
		}
		log, err := agent.NewLogger(cmd.ErrOrStderr(), cfg.Log.Format, cfg.Log.Level)
		if err != nil {
			return configError{err}
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := agent.Cleanup(ctx, cfg, log); err != nil {
			return err
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), "cleanup: done")
		return err
	}
	return cmd
}
