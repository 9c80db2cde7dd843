package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// errHelp is returned after --help printed the usage.
var errHelp = errors.New("help shown")

// newFlagSet returns a flag set whose --help prints "usage", the description
// and the flags to stdout.
func newFlagSet(name, argsUsage, description string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("masterd "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: masterd %s [flags] %s\n\n%s\n\nFlags:\n", name, argsUsage, description)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses args; --help prints usage (through fs.Usage, called by the
// flag package) and returns errHelp, a bad flag is a usageError.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp // the flag package has printed the usage
		}
		return usageError{err.Error()}
	}
	return nil
}

// noArgs rejects positional arguments.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}
