package cli

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes of masterd.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and failed
	ExitUsage   = 2 // bad command line or bad configuration
)

// DefaultConfig is the configuration file every command reads by default.
const DefaultConfig = "/etc/masterd/masterd.yaml"

// Build identifies the binary: set by cmd/masterd from its -ldflags -X
// variables.
type Build struct {
	Version  string
	Revision string
}

// String is the line `masterd version` prints.
func (b Build) String() string {
	return fmt.Sprintf("masterd %s (revision %s, %s %s/%s)", b.Version, b.Revision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// usageError is a bad command line: printed with a pointer to the command's
// --help, exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// usagef returns a usageError.
func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// configError is a configuration that does not decode or validate: exit 2.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// exitError ends a command with a code and no further message: what it had
// to say it printed itself (run --check).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// groups holds the constructors of the top-level commands, one per file,
// added by register from the file's init.
var groups []func(Build) *cobra.Command

// register adds a top-level command to every tree NewRoot builds. Call it
// from an init function of the file that defines the command.
func register(newCmd func(Build) *cobra.Command) { groups = append(groups, newCmd) }

// NewRoot builds the whole command tree. Output goes to the command's
// OutOrStdout and ErrOrStderr (SetOut, SetErr); Main sets both.
func NewRoot(b Build) *cobra.Command {
	root := &cobra.Command{
		Use:   "masterd COMMAND",
		Short: "run one master of a highly available Kubernetes control plane",
		Long: `masterd runs one master of a highly available Kubernetes control plane: an
embedded etcd member, quorum-lease elections over memberlist, the floating
VIP and the kube components as systemd units.

Exit codes: 0 success, 1 the command failed, 2 bad command line or bad
configuration.`,
		Version: b.Version,
		// `masterd` alone is a usage error (exit 2), not the help.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q", args[0])
			}
			return usagef("missing command")
		},
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetVersionTemplate(b.String() + "\n")
	root.Flags().BoolP("version", "v", false, "print version, revision and Go version (as masterd version)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	root.SetUsageTemplate(usageTemplate)
	root.SetHelpCommand(newHelpCmd())
	for _, g := range groups {
		root.AddCommand(g(b))
	}
	markRunE(root)
	return root
}

// Main runs the command line args (without the program name) and returns the
// exit code: usage errors and bad configuration print a short message to
// stderr and return 2, failures print the error and return 1.
func Main(b Build, args []string, stdout, stderr io.Writer) int {
	root := NewRoot(b)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return ExitOK
	}
	if cmd == nil {
		cmd = root
	}
	path := cmd.CommandPath()
	var ue usageError
	var ce configError
	var ee exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return ExitUsage
	case errors.As(err, &ue), !ran(cmd):
		// Flag, argument and unknown-command errors come from cobra
		// before the command ran.
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", path, err, path)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return ExitFailure
	}
}

// ranAnnotation marks, on a command, that its RunE started.
const ranAnnotation = "masterd/ran"

// markRunE wraps the RunE of every command in the tree so that Main can tell
// an error of the command itself (exit 1) from one cobra returned before
// running it (a bad argument count, exit 2).
func markRunE(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if cmd.Annotations == nil {
				cmd.Annotations = map[string]string{}
			}
			cmd.Annotations[ranAnnotation] = "true"
			return run(cmd, args)
		}
	}
	for _, sub := range c.Commands() {
		markRunE(sub)
	}
}

func ran(c *cobra.Command) bool { return c.Annotations[ranAnnotation] == "true" }

// newHelpCmd is `masterd help [command]`: the command's help on stdout, and
// an unknown command a usage error (cobra's own prints the top-level usage and
// exits 0).
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "help about any command",
		Long:  "Print the help of a command, the same as masterd COMMAND --help.",
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return usagef("unknown command %q", strings.Join(args, " "))
			}
			return cmd.Help()
		},
	}
}

// groupRunE is the RunE of a command that only holds subcommands: it names
// what is missing or unknown (cobra would print the help and exit 0), and
// `GROUP help [SUBCOMMAND]` prints the help.
func groupRunE(cmd *cobra.Command, args []string) error {
	var names []string
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	slices.Sort(names)
	if len(args) == 0 {
		return usagef("missing subcommand (%s)", strings.Join(names, ", "))
	}
	if args[0] == "help" { // `masterd etcd help [restore]`
		sub, rest, err := cmd.Find(args[1:])
		if err != nil || len(rest) > 0 {
			return usagef("unknown subcommand %q", strings.Join(args[1:], " "))
		}
		return sub.Help()
	}
	return usagef("unknown subcommand %q (want %s)", args[0], strings.Join(names, ", "))
}

// exactArgs is cobra.ExactArgs with the usage line in the message.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("usage: %s", strings.TrimSuffix(cmd.UseLine(), " [flags]"))
		}
		return nil
	}
}

// noArgs rejects positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

// usageTemplate is cobra's, with "Usage: masterd CMD" on one line and no
// section that would be empty.
const usageTemplate = `Usage: {{if .HasAvailableSubCommands}}{{.CommandPath}} <command> [flags]{{else}}{{.UseLine}}{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Run '{{.CommandPath}} <command> --help' for a command's flags.{{end}}
`
