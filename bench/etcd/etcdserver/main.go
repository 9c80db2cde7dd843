// Command etcdserver is the standalone etcd server of the version masterd
// embeds (go.mod's go.etcd.io/etcd/server/v3), for bench/etcd's comparison.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
