// Command masterd runs one master of a highly available Kubernetes control
// plane: an embedded etcd member, quorum-lease elections over memberlist, the
// floating VIP and the kube components as systemd units. The command line is
// package internal/cli; see `masterd --help`.
package main

import (
	"os"

	"github.com/masterd/masterd/internal/cli"
)

// Set at build time: -ldflags "-X main.version=... -X main.revision=...".
var (
	version  = "dev"
	revision = "unknown"
)

func main() {
	os.Exit(cli.Main(cli.Build{Version: version, Revision: revision}, os.Args[1:], os.Stdout, os.Stderr))
}
