// Package lab builds a multi-master masterd cluster on one machine: N master
// hosts, each a real systemd (package labhost) in its own network namespace
// with the masterd package installed by dpkg and enabled through systemctl,
// plus a client namespace with kubectl, all on one bridge. It is the ground
// the end-to-end scenarios (integration/scenarios) and `make demo`
// (integration/cmd/lab) stand on.
//
// # Topology
//
// Every name starts with Options.Prefix (default "mlab"):
//
//	<prefix>-br       network namespace holding bridge br0
//	<prefix>-m1..mN   master hosts: netns + labhost (systemd as PID 1), eth0 on br0
//	<prefix>-client   plain netns (no systemd), eth0 on br0: kubectl, ping, arping
//
// Addresses come from Options.Subnet (default 10.213.0.0/24, used only inside
// these namespaces): the VIP is .10, master i is .10+i, the client is .100.
// Nothing here ever sends a packet from the machine's own namespace to a lab
// address (the machine would route it to the real network).
//
// # Provisioning
//
// Up runs `masterd init` once into the lab's state directory
// (/run/masterd-lab/<prefix>), copies the one cluster.key (0600) into every
// host's /etc/masterd, writes a masterd.yaml per host (peers, address, VIP,
// profile, kubernetes mode and binDir), copies the kube binaries into
// /usr/local/bin of every host's overlay, installs the .deb with `dpkg -i`
// inside the host and runs `systemctl enable --now masterd` there.
//
// # Faults
//
// CutLink/RestoreLink take the host's bridge port down/up (a pulled cable);
// Partition/Heal drop IP traffic between one host and the other masters with
// an nftables table inside the host's namespace; KillPID1 SIGKILLs the host's
// systemd (every process of the host dies, the kernel keeps its addresses, as
// a hung machine would); Crash is CutLink plus KillPID1; Reboot brings a
// killed or running host back with its disk (/etc/masterd and
// /var/lib/masterd) and Wipe removes the data directory; StopMasterd and
// StartMasterd use systemctl.
//
// # Growing and shrinking
//
// AddMaster brings up the machine of a new master (<prefix>-m4, the next
// address after the highest a master has had) provisioned as README's
// procedure for a new master says — the package, the cluster key,
// masterd.yaml with every master and itself as peers, an empty data dir —
// with masterd enabled but not started: the test runs `masterd member add`
// and starts it. RetireMaster takes a master's machine away (host off,
// namespace deleted) once it is removed or lost for good. Down cleans added
// hosts like the others.
//
// # Observing
//
// Status and Holders read `masterd status --json` in every host; VIPHolders
// reads the addresses of every master namespace through netlink; Monitor
// samples VIPHolders every 10 ms in the background and counts dual-holder
// samples; ARPHolders asks from the client which MACs answer ARP for the VIP;
// Pinger pings the VIP from the client every 10 ms and reports the longest
// gap; Kubectl runs kubectl in the client namespace with admin.conf (from a
// master's dataDir/pki) pointing at the VIP.
//
// # Cleanup
//
// Down is idempotent and removes every process, mount, cgroup and namespace
// of the lab. Clean(prefix) does the same without a *Lab, from the names
// alone, so an interrupted run is cleaned by the next Up or by
// `go run ./integration/cmd/lab down`.
package lab
