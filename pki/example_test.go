package pki_test

import (
	"fmt"

	"github.com/masterd/masterd/pki"
)

func ExampleInitText() {
	fmt.Print(pki.InitText("/etc/masterd/cluster.key"))
	// Output:
	// Wrote the cluster secret to /etc/masterd/cluster.key (mode 0600).
	//
	// Next steps:
	//   1. Copy /etc/masterd/cluster.key to the same path on every other master, keeping mode 0600,
	//      for example:
	//        scp -p /etc/masterd/cluster.key root@<master>:/etc/masterd/cluster.key
	//        ssh root@<master> chmod 600 /etc/masterd/cluster.key
	//      It holds the cluster's CA keys and gossip key: never put it anywhere else.
	//   2. On every master, edit /etc/masterd/masterd.yaml: this node's name and
	//      address, the peers (every master's name and address) and the VIP.
	//   3. On every master: systemctl enable --now masterd
	//      Each master derives its own certificates and kubeconfigs from the secret;
	//      admin.conf for kubectl is in the data directory's pki/.
}
