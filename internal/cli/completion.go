package cli

import (
	"github.com/spf13/cobra"
)

func init() { register(newCompletionCmd) }

// newCompletionCmd prints the shell completion scripts. cobra's own
// completion command is disabled: it also offers powershell and describes
// itself with another program's paths.
func newCompletionCmd(Build) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "completion SHELL",
		Short: "print the shell completion script for bash, zsh or fish",
		Long: `Print the script that completes masterd's commands, flags and arguments in
bash, zsh or fish. The packages install all three; to load one by hand:

  bash:  source <(masterd completion bash)
  zsh:   masterd completion zsh > "${fpath[1]}/_masterd"
  fish:  masterd completion fish | source`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	for _, sh := range []struct {
		name, short string
		gen         func(cmd *cobra.Command) error
	}{
		{"bash", "print the bash completion script", func(c *cobra.Command) error { return c.Root().GenBashCompletionV2(c.OutOrStdout(), true) }},
		{"zsh", "print the zsh completion script", func(c *cobra.Command) error { return c.Root().GenZshCompletion(c.OutOrStdout()) }},
		{"fish", "print the fish completion script", func(c *cobra.Command) error { return c.Root().GenFishCompletion(c.OutOrStdout(), true) }},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   sh.name,
			Short: sh.short,
			Args:  noArgs,
			RunE:  func(c *cobra.Command, args []string) error { return sh.gen(c) },
		})
	}
	return cmd
}
