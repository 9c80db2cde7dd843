package addons

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/masterd/masterd/bootstrap"
)

// Config is what the addons are rendered from.
type Config struct {
	// Server is the API address every node's kube-proxy uses:
	// https://VIP:port, never a single master.
	Server string
	// ServiceCIDR is the Service range; CoreDNS's Service takes its 10th
	// address.
	ServiceCIDR netip.Prefix
	// PodCIDR is kube-proxy's clusterCIDR (optional: empty lets kube-proxy
	// tell pod traffic by interface).
	PodCIDR netip.Prefix
	// ClusterDomain is the DNS domain CoreDNS serves (cluster.local).
	ClusterDomain string

	CoreDNS   CoreDNSConfig
	KubeProxy KubeProxyConfig
}

// CoreDNSConfig is the cluster DNS addon.
type CoreDNSConfig struct {
	// Enabled: masterd applies and keeps CoreDNS; off, it leaves whatever
	// is in the cluster alone.
	Enabled bool
	// Image is the CoreDNS image (a mirror's name for air-gapped clusters).
	Image string
	// Replicas of the Deployment.
	Replicas int
}

// KubeProxyConfig is the Service proxy on every node.
type KubeProxyConfig struct {
	// Enabled: masterd applies and keeps the DaemonSet; off, it leaves
	// whatever is in the cluster alone (e.g. a CNI that replaces it).
	Enabled bool
	// Image is the kube-proxy image; its binary is /usr/local/bin/kube-proxy
	// as in the upstream image.
	Image string
	// Mode is nftables or iptables.
	Mode string
}

// DefaultConfig returns the defaults; Server and the CIDRs are the
// cluster's, left to the caller.
func DefaultConfig() Config {
	return Config{
		ServiceCIDR:   netip.MustParsePrefix("10.96.0.0/12"), // kubeadm's default
		ClusterDomain: "cluster.local",
		CoreDNS: CoreDNSConfig{
			Enabled: true,
			// The CoreDNS version kubeadm v1.37 deploys.
			Image: "registry.k8s.io/coredns/coredns:v1.14.6",
			// Two, as kubeadm: one pod lost with its node still answers.
			Replicas: 2,
		},
		KubeProxy: KubeProxyConfig{
			Enabled: true,
			// The control plane's own version: kube-proxy must not be newer.
			Image: "registry.k8s.io/kube-proxy:v1.37.2",
			// GA since v1.33 and what masterd's own fence uses; scales with
			// Services where iptables rewrites whole chains.
			Mode: "nftables",
		},
	}
}

// Validate reports every problem at once, naming the field.
func (c Config) Validate() error {
	var errs []error
	if c.KubeProxy.Enabled {
		if _, err := bootstrap.HostPort(c.Server); err != nil {
			errs = append(errs, err)
		}
		if c.KubeProxy.Mode != "nftables" && c.KubeProxy.Mode != "iptables" {
			errs = append(errs, fmt.Errorf("kubeProxy.mode: %q is not nftables or iptables", c.KubeProxy.Mode))
		}
		if err := checkImage("kubeProxy.image", c.KubeProxy.Image); err != nil {
			errs = append(errs, err)
		}
	}
	if c.CoreDNS.Enabled {
		if _, err := bootstrap.DNSIP(c.ServiceCIDR); err != nil {
			errs = append(errs, err)
		}
		if c.ClusterDomain == "" || strings.ContainsAny(c.ClusterDomain, " \t\n{}") {
			errs = append(errs, fmt.Errorf("clusterDomain: %q is not a DNS domain", c.ClusterDomain))
		}
		if c.CoreDNS.Replicas < 1 || c.CoreDNS.Replicas > 100 {
			errs = append(errs, fmt.Errorf("coreDNS.replicas: %d is not in 1..100", c.CoreDNS.Replicas))
		}
		if err := checkImage("coreDNS.image", c.CoreDNS.Image); err != nil {
			errs = append(errs, err)
		}
	}
	if c.PodCIDR.IsValid() && c.PodCIDR.Overlaps(c.ServiceCIDR) {
		errs = append(errs, fmt.Errorf("podCIDR: %s overlaps serviceCIDR %s", c.PodCIDR, c.ServiceCIDR))
	}
	return errors.Join(errs...)
}

func checkImage(field, image string) error {
	if image == "" || strings.ContainsAny(image, " \t\n\"'") {
		return fmt.Errorf("%s: %q is not an image name", field, image)
	}
	return nil
}
