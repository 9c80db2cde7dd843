package pki

import (
	"crypto/x509"
	"net/netip"
)

// What every leaf certificate says. Each function both issues (Ensure) and
// judges (Ensure, UseFiles) a certificate.

var (
	serverClient = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	clientOnly   = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	serverOnly   = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	loopback4    = netip.MustParseAddr("127.0.0.1")
)

// Common names and groups of the generated client certificates.
const (
	MasterdEtcdClientName   = "masterd"
	APIServerEtcdClientName = "kube-apiserver-etcd-client"
	APIServerName           = "kube-apiserver"
	KubeletClientName       = "kube-apiserver-kubelet-client"
	FrontProxyClientName    = "front-proxy-client"
	AdminName               = "kubernetes-admin"
	SchedulerName           = "system:kube-scheduler"
	ControllerManagerName   = "system:kube-controller-manager"
	MastersGroup            = "system:masters"
)

// etcdNodeSpec: etcd serving and peer certificates. Both usages on both:
// etcd uses the peer certificate as client towards other members, and the
// server certificate for its own gRPC gateway connections.
func etcdNodeSpec(p Params) leafSpec {
	return leafSpec{
		cn:    p.NodeName,
		dns:   []string{p.NodeName, "localhost"},
		ips:   []netip.Addr{p.NodeAddress, loopback4},
		usage: serverClient,
	}
}

// EtcdPeerName is a DNS name in every master's etcd peer certificate and
// in no other certificate: etcd's peer port accepts only certificates that
// carry it (--peer-cert-allowed-hostname), so the apiserver's or masterd's
// etcd client certificate, signed by the same CA, cannot act as a member.
const EtcdPeerName = "etcd-peer.masterd.invalid"

// etcdPeerSpec: the etcd peer certificate, the node's names plus EtcdPeerName.
func etcdPeerSpec(p Params) leafSpec {
	s := etcdNodeSpec(p)
	s.dns = append(s.dns, EtcdPeerName)
	return s
}

func clientSpec(cn string, groups ...string) leafSpec {
	return leafSpec{cn: cn, org: groups, usage: clientOnly}
}

// apiServerSpec: the apiserver serving certificate, valid for every way a
// client may reach any apiserver: VIP, every master, the in-cluster service.
func apiServerSpec(p Params) leafSpec {
	s := leafSpec{
		cn: APIServerName,
		dns: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc." + p.ClusterDomain, "localhost", p.NodeName},
		ips:   []netip.Addr{p.NodeAddress, loopback4},
		usage: serverOnly,
	}
	if p.VIP.IsValid() {
		s.ips = append(s.ips, p.VIP)
	}
	if p.LocalAPIAddress.IsValid() {
		s.ips = append(s.ips, p.LocalAPIAddress)
	}
	if ip, ok := firstServiceIP(p.ServiceCIDR); ok {
		s.ips = append(s.ips, ip)
	}
	for _, peer := range p.Peers {
		s.dns = append(s.dns, peer.Name)
		s.ips = append(s.ips, peer.Address)
	}
	for _, e := range p.ExtraAPIServerSANs {
		if ip, err := netip.ParseAddr(e); err == nil {
			s.ips = append(s.ips, ip)
		} else {
			s.dns = append(s.dns, e)
		}
	}
	return s
}
