package cli

import (
	"github.com/spf13/pflag"
)

// configFlag adds --config to fs (a command's Flags, or a group's
// PersistentFlags so that it is read before and after every subcommand's
// arguments) and returns where its value goes.
func configFlag(fs *pflag.FlagSet) *string {
	p := fs.String("config", DefaultConfig, "configuration `file`")
	fs.SetAnnotation("config", "cobra_annotation_bash_completion_filename", []string{"yaml", "yml"})
	return p
}
