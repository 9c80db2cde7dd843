// Package cli is masterd's command line: the cobra command tree that
// cmd/masterd runs (Main) and that the man page generator walks (NewRoot,
// internal/cmd/gendocs).
//
// # Conventions
//
// Flags go anywhere on the line, before or after positional arguments
// (pflag's interspersed parsing). A command group declares --config (and any
// flag its subcommands share) on its PersistentFlags, so `masterd etcd
// --config X members` and `masterd etcd members --config X` read the same
// file; configFlag adds it.
//
// Exit codes (Main): 0 success; 1 the command ran and failed; 2 a usage error
// (unknown command or flag, wrong argument count: one line on stderr and
// "Run 'masterd CMD --help' for usage.") or a configuration that does not
// load (configError). Help (`masterd help CMD`, `CMD --help`) goes to stdout
// and exits 0. A command's RunE returns usagef(...) for a bad command line
// it detects itself, configError{err} for agent.LoadConfig's errors and
// plain errors for failures; it writes to cmd.OutOrStdout and
// cmd.ErrOrStderr, never to os.Stdout.
//
// Commands go through the agent: they load agent.Config and call agent
// functions (agent.Cleanup, agent.EtcdClient, agent.EtcdMemberConfig,
// agent.DecodeStatus); they do not assemble the domain packages' own
// configurations.
//
// # Adding a command group
//
// One new file per group, e.g. member.go:
//
//	func init() { register(newMemberCmd) }
//
//	func newMemberCmd(b Build) *cobra.Command {
//		cmd := &cobra.Command{
//			Use:   "member",
//			Short: "add, remove and list masters",
//			Args:  cobra.ArbitraryArgs,
//			RunE:  groupRunE, // "missing subcommand", "unknown subcommand"
//		}
//		configPath := configFlag(cmd.PersistentFlags())
//		cmd.AddCommand(&cobra.Command{
//			Use:  "add NAME ADDRESS",
//			Short: "add a master",
//			Args: exactArgs(2),
//			RunE: func(c *cobra.Command, args []string) error { ... },
//		})
//		return cmd
//	}
//
// Nothing else changes: the help, the completions and the man pages
// (masterd-member.1, masterd-member-add.1) follow from the tree. Short is a
// lowercase phrase without a full stop; Long is sentences.
package cli
