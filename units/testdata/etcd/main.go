// Command etcd is a plain etcd server built from go.etcd.io/etcd/server/v3
// (the version masterd embeds), for the kube-apiserver lab test.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
