// Package firewall keeps everyone but the masters off masterd's
// cluster-internal ports: memberlist's gossip port (which carries the
// elections) and etcd's peer port. Anyone on the LAN could otherwise make
// memberlist buffer a stream before it checks the key, or knock on etcd's
// peer TLS listener.
//
// Apply replaces, atomically in one netlink batch, an nftables table of
// family inet (Config.Table) in the network namespace New was called in:
//
//	set masters4 (ipv4_addr), set masters6 (ipv6_addr): the allowed sources
//	chain input (hook input, priority filter): for each protected
//	    TCP and UDP port, IPv4 and IPv6:
//	    iifname != "lo" meta l4proto P th dport PORT saddr != @masters counter drop
//
// Only new packets to the protected ports from other sources are dropped;
// every other port and all loopback traffic is left alone, and the table
// does not touch any other table's rules. A listed master always gets
// through, whatever other firewall the host has (this table only drops).
// The agent calls Apply with the masters of the membership record each time
// it changes, and Remove when it stops or when firewall.enabled is false.
//
// Drops are counted per rule in the kernel (Dropped reads them).
package firewall
