package etcdembed

import (
	"slices"

	"github.com/masterd/masterd/pki"
)

// peerAllowedHostnames is what the peer port demands of a certificate
// besides the etcd CA's signature: one of these names, pki.EtcdPeerName
// first, when this master's own peer certificate carries it (pki.Ensure puts it in every master's peer
// certificate and in no other). Without it any certificate of the etcd CA,
// the apiserver's etcd client certificate among them, could join raft as a
// member. A brought-your-own peer certificate without the name leaves the
// check off (nil): add the name to every master's peer certificate to get it.
//
// etcd applies the same check to the certificate of the peer it dials, which
// is that peer's own peer certificate: it carries the name too.
func (c Config) peerAllowedHostnames() ([]string, error) {
	cert, err := readLeaf("peer", c.TLS.PeerCertFile)
	if err != nil || cert == nil {
		return nil, err // a missing file: etcd's own start names it
	}
	if !slices.Contains(cert.DNSNames, pki.EtcdPeerName) {
		return nil, nil
	}
	// The configured members' names too: a master still running a version
	// whose peer certificates lack EtcdPeerName (a rolling upgrade) names
	// itself in its certificate, and etcd applies the check both ways.
	// Client certificates carry no names and match none of them.
	allowed := []string{pki.EtcdPeerName}
	for _, m := range c.Members {
		if !slices.Contains(allowed, m.Name) {
			allowed = append(allowed, m.Name)
		}
	}
	return allowed, nil
}
