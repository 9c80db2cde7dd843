// Command masterd runs one master of a highly available Kubernetes control
// plane: an embedded etcd member, quorum-lease elections over memberlist, the
// floating VIP and the kube components as systemd units. See `masterd --help`.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// Set at build time: -ldflags "-X main.version=... -X main.revision=...".
var (
	version  = "dev"
	revision = "unknown"
)

// Exit codes.
const (
	exitOK        = 0
	exitFailure   = 1
	exitBadConfig = 2 // bad configuration or bad command line
)

// usageError is a bad command line; main prints it with the usage and exits 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// configError is a configuration that does not decode or validate; exit 2.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run the daemon (what masterd.service starts)", cmdRun},
		{"init", "create the cluster secret to copy to every master", cmdInit},
		{"status", "show the cluster: members, roles, etcd, certificates", cmdStatus},
		{"cleanup", "remove what a dead daemon left: the VIP, leader-only units", cmdCleanup},
		{"etcd", "etcd maintenance: snapshot save, restore, remove a member", cmdEtcd},
		{"version", "print version, revision and Go version", cmdVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `masterd runs one master of a highly available Kubernetes control plane.

Usage:
  masterd <command> [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'masterd <command> --help' for a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitBadConfig
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		usage(stdout)
		return exitOK
	case "--version", "-version":
		args = []string{"version"}
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		var ue usageError
		var ce configError
		switch {
		case err == nil, errors.Is(err, errHelp):
			return exitOK
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "masterd %s: %v\nRun 'masterd %s --help' for usage.\n", c.name, err, c.name)
			return exitBadConfig
		case errors.As(err, &ce):
			fmt.Fprintf(stderr, "masterd %s: %v\n", c.name, err)
			return exitBadConfig
		default:
			fmt.Fprintf(stderr, "masterd %s: %v\n", c.name, err)
			return exitFailure
		}
	}
	fmt.Fprintf(stderr, "masterd: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitBadConfig
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", "Print version, revision and Go version.", stdout)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "masterd %s (revision %s, %s %s/%s)\n", version, revision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
