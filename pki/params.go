package pki

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Peer is one master of the cluster as named in the config.
type Peer struct {
	Name    string
	Address netip.Addr
}

// Params are the facts about this node and cluster that certificates and
// kubeconfigs depend on. A change in any of them that shows in a certificate
// (a new VIP, a renamed node, a new peer) makes Ensure regenerate exactly the
// files that carry it.
type Params struct {
	// NodeName is this master's name: CN and DNS SAN of its etcd certificates.
	NodeName string
	// NodeAddress is this master's address: IP SAN of its etcd and apiserver
	// certificates.
	NodeAddress netip.Addr
	// Peers are all masters, this one included or not; each name and address
	// goes into the apiserver serving certificate so clients may reach any
	// apiserver directly.
	Peers []Peer
	// VIP is the floating API address; the zero Addr means no VIP, and then
	// admin.conf points at NodeAddress.
	VIP netip.Addr
	// APIServerPort is the port of the apiserver and of the VIP balancer.
	APIServerPort uint16
	// LocalAPIAddress is where scheduler.conf and controller-manager.conf
	// reach the local apiserver; the zero Addr means NodeAddress, because the
	// apiserver binds the node address (the VIP's port on the same host
	// belongs to the balancer).
	LocalAPIAddress netip.Addr
	// ServiceCIDR is the Kubernetes service range; its first address is the
	// in-cluster "kubernetes" service and must be an apiserver SAN.
	ServiceCIDR netip.Prefix
	// ClusterDomain is the DNS domain of the cluster (kubernetes.default.svc.<domain>).
	ClusterDomain string
	// ExtraAPIServerSANs are extra DNS names or IP addresses for the apiserver
	// serving certificate (a load-balancer name, for example).
	ExtraAPIServerSANs []string
	// LeafValidity is the lifetime of generated leaf certificates.
	LeafValidity time.Duration
	// RenewBefore: a certificate that expires sooner than this is regenerated.
	RenewBefore time.Duration
	// ServiceAccountSigner is the service-account key generation sa.key and
	// sa.pub hold (Secret.ServiceAccountKeyGen): the one that signs. 0, the
	// cluster secret's own key, until a rotation.
	ServiceAccountSigner int
}

// MinLeafValidity is the shortest leaf lifetime Params accept: short
// lifetimes are for exercising renewal (the lab renews every few minutes),
// and a certificate must outlive a renewal check and a unit restart.
const MinLeafValidity = 2 * time.Minute

// DefaultParams returns Params with the cluster-wide defaults filled in; the
// node's name and addresses are left for the caller.
func DefaultParams() Params {
	return Params{
		// kube-apiserver's conventional port, the one kubeadm and every guide use.
		APIServerPort: 6443,
		// kubeadm's default service range; its first address 10.96.0.1 is the
		// "kubernetes" service.
		ServiceCIDR: netip.MustParsePrefix("10.96.0.0/12"),
		// The domain kubelet and CoreDNS use unless told otherwise.
		ClusterDomain: "cluster.local",
		// One year, as kubeadm: short enough that rotation is exercised, long
		// enough that a forgotten cluster does not break within weeks; masterd
		// renews automatically at start.
		LeafValidity: 365 * 24 * time.Hour,
		// 30 days gives a restart (or `masterd status` warning) plenty of
		// margin before anything expires.
		RenewBefore: 30 * 24 * time.Hour,
	}
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !dnsLabel.MatchString(l) {
			return false
		}
	}
	return true
}

// ValidSAN reports whether s can be an extra apiserver SAN: an IP address
// or a lowercase DNS name, optionally a wildcard ("*.lb.example.com").
func ValidSAN(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil || validDNSName(strings.TrimPrefix(s, "*."))
}

// Validate reports every problem with p at once; it changes nothing.
func (p Params) Validate() error {
	var errs []error
	if !validDNSName(p.NodeName) {
		errs = append(errs, fmt.Errorf("pki: node name %q: must be a lowercase DNS name", p.NodeName))
	}
	if !p.NodeAddress.IsValid() || p.NodeAddress.IsUnspecified() {
		errs = append(errs, errors.New("pki: node address: must be a unicast IP address"))
	}
	for i, peer := range p.Peers {
		if !validDNSName(peer.Name) {
			errs = append(errs, fmt.Errorf("pki: peers[%d].name %q: must be a lowercase DNS name", i, peer.Name))
		}
		if !peer.Address.IsValid() || peer.Address.IsUnspecified() {
			errs = append(errs, fmt.Errorf("pki: peers[%d].address: must be a unicast IP address", i))
		}
	}
	if p.VIP.IsValid() && p.VIP.IsUnspecified() {
		errs = append(errs, errors.New("pki: vip: must be a unicast IP address or empty"))
	}
	if p.LocalAPIAddress.IsValid() && p.LocalAPIAddress.IsUnspecified() {
		errs = append(errs, errors.New("pki: local api address: must be a unicast IP address or empty"))
	}
	if p.APIServerPort == 0 {
		errs = append(errs, errors.New("pki: apiserver port: must be 1-65535"))
	}
	if !p.ServiceCIDR.IsValid() {
		errs = append(errs, errors.New("pki: service cidr: must be an IP prefix"))
	} else if _, ok := firstServiceIP(p.ServiceCIDR); !ok {
		errs = append(errs, fmt.Errorf("pki: service cidr %s: too small", p.ServiceCIDR))
	}
	if !validDNSName(p.ClusterDomain) {
		errs = append(errs, fmt.Errorf("pki: cluster domain %q: must be a lowercase DNS name", p.ClusterDomain))
	}
	for i, s := range p.ExtraAPIServerSANs {
		if !ValidSAN(s) {
			errs = append(errs, fmt.Errorf("pki: extra apiserver sans[%d] %q: must be an IP address or DNS name", i, s))
		}
	}
	if p.LeafValidity < MinLeafValidity {
		errs = append(errs, fmt.Errorf("pki: leaf validity %s: must be at least %s", p.LeafValidity, MinLeafValidity))
	}
	if p.RenewBefore < 0 || p.RenewBefore >= p.LeafValidity {
		errs = append(errs, fmt.Errorf("pki: renew before %s: must be at least 0 and less than leaf validity %s", p.RenewBefore, p.LeafValidity))
	}
	return errors.Join(errs...)
}

// firstServiceIP is the first usable address of the service range: the
// ClusterIP of the "kubernetes" service.
func firstServiceIP(p netip.Prefix) (netip.Addr, bool) {
	p = p.Masked()
	if p.Addr().BitLen()-p.Bits() < 2 {
		return netip.Addr{}, false
	}
	return p.Addr().Next(), true
}

func (p Params) localAPIAddress() netip.Addr {
	if p.LocalAPIAddress.IsValid() {
		return p.LocalAPIAddress.Unmap()
	}
	return p.NodeAddress.Unmap()
}

func (p Params) adminAPIAddress() netip.Addr {
	if p.VIP.IsValid() {
		return p.VIP.Unmap()
	}
	return p.NodeAddress.Unmap()
}
