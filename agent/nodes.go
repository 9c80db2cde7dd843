package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/masterd/masterd/addons"
	"github.com/masterd/masterd/bootstrap"
)

// KubernetesVersion is the Kubernetes version masterd runs and publishes
// to joining nodes (kubeadm-config's kubernetesVersion).
const KubernetesVersion = "v1.37.2"

// NodesConfig is what masterd publishes for worker nodes and keeps
// reconciled from the controller-manager role's holder. (To be wired as
// Config.Nodes, key `nodes`.)
type NodesConfig struct {
	Enabled           bool          `yaml:"enabled" doc:"publish what kubeadm join and plain kubelets need (cluster-info, kubeadm-config, kubelet-config, TLS-bootstrap RBAC and CSR auto-approval) and keep the addons reconciled, from the controller-manager role's holder"`
	APIServerEndpoint string        `yaml:"apiserverEndpoint" doc:"host:port nodes reach the API at (default: vip.address and the balancer's port); required when vip.enabled is false"`
	PodCIDR           netip.Prefix  `yaml:"podCIDR" doc:"the pod range, kube-proxy's clusterCIDR and kubeadm-config's podSubnet (optional)"`
	CgroupDriver      string        `yaml:"cgroupDriver" doc:"the kubelets' cgroup driver: systemd or cgroupfs"`
	ImageRepository   string        `yaml:"imageRepository" doc:"the registry kubeadm-config names (a mirror for air-gapped clusters)"`
	ReconcileInterval Duration      `yaml:"reconcileInterval" doc:"how often the controller-manager role's holder re-applies what nodes need and the addons"`
	CoreDNS           CoreDNSAddon  `yaml:"coreDNS" doc:"the cluster DNS addon"`
	KubeProxy         ProxyAddon    `yaml:"kubeProxy" doc:"the Service proxy on every node"`
	MasterKubelet     MasterKubelet `yaml:"masterKubelet" doc:"a kubelet on this master (opt-in; may differ between masters), so webhooks and aggregated APIs can run in pods on the masters"`
}

// CoreDNSAddon configures CoreDNS.
type CoreDNSAddon struct {
	Enabled  bool   `yaml:"enabled" doc:"apply and keep CoreDNS (Service kube-dns at the 10th address of kubernetes.serviceCIDR); false leaves the cluster's DNS alone"`
	Image    string `yaml:"image" doc:"the CoreDNS image"`
	Replicas int    `yaml:"replicas" doc:"CoreDNS replicas"`
}

// ProxyAddon configures kube-proxy.
type ProxyAddon struct {
	Enabled bool   `yaml:"enabled" doc:"apply and keep the kube-proxy DaemonSet (its kubeconfig points at the VIP); false for a CNI that replaces it"`
	Image   string `yaml:"image" doc:"the kube-proxy image (its binary at /usr/local/bin/kube-proxy)"`
	Mode    string `yaml:"mode" doc:"nftables or iptables"`
}

// DefaultNodesConfig returns the defaults.
func DefaultNodesConfig() NodesConfig {
	a := addons.DefaultConfig()
	return NodesConfig{
		Enabled: true,
		// kubeadm's and the kubelet's recommended driver on systemd hosts.
		CgroupDriver:    "systemd",
		ImageRepository: "registry.k8s.io",
		// Often enough that a deleted object comes back within a minute,
		// rare enough to cost nothing (one GET and one no-op apply each).
		ReconcileInterval: Duration(time.Minute),
		CoreDNS:           CoreDNSAddon{Enabled: a.CoreDNS.Enabled, Image: a.CoreDNS.Image, Replicas: a.CoreDNS.Replicas},
		KubeProxy:         ProxyAddon{Enabled: a.KubeProxy.Enabled, Image: a.KubeProxy.Image, Mode: a.KubeProxy.Mode},
		// Opt-in: a master runs pods only when asked to.
		MasterKubelet: MasterKubelet{ContainerRuntimeEndpoint: defaultRuntimeEndpoint},
	}
}

// NodesOf is the nodes configuration of cfg.
func NodesOf(cfg Config) NodesConfig { return cfg.Nodes }

// NodesServer is the https URL nodes reach the API at: nodes.apiserverEndpoint,
// else the VIP on the balancer's port (kubernetes.apiserverPort without the
// balancer); never a single master.
func NodesServer(cfg Config, nc NodesConfig) (string, error) {
	if nc.APIServerEndpoint != "" {
		s := "https://" + nc.APIServerEndpoint
		if _, err := bootstrap.HostPort(s); err != nil {
			return "", fmt.Errorf("nodes.apiserverEndpoint: %q is not host:port", nc.APIServerEndpoint)
		}
		return s, nil
	}
	if !cfg.VIP.Enabled || !cfg.VIP.Address.IsValid() {
		return "", errNoNodesEndpoint
	}
	port := cfg.Kubernetes.APIServerPort
	if cfg.VIP.Balancer.Enabled {
		port = cfg.VIP.Balancer.Port
	}
	return bootstrap.ServerURL(cfg.VIP.Address, uint16(port)), nil
}

// errNoNodesEndpoint: without the VIP, nodes need an endpoint that does not
// depend on one master (an external load balancer). Not a config error:
// masterd then publishes nothing for nodes and says so once.
var errNoNodesEndpoint = errors.New("nodes.apiserverEndpoint: is required when vip.enabled is false (nodes must not depend on one master); nothing is published for nodes until it is set")

// NodesCluster is what bootstrap.Publish tells joining nodes.
func NodesCluster(cfg Config, nc NodesConfig, caPEM []byte) (bootstrap.Cluster, error) {
	server, err := NodesServer(cfg, nc)
	if err != nil {
		return bootstrap.Cluster{}, err
	}
	c := bootstrap.Cluster{
		Server: server, CAPEM: caPEM, KubernetesVersion: KubernetesVersion, ClusterName: "kubernetes",
		ServiceCIDR: cfg.Kubernetes.ServiceCIDR, PodCIDR: nc.PodCIDR, ClusterDomain: cfg.Kubernetes.ClusterDomain,
		ImageRepository: nc.ImageRepository, CgroupDriver: nc.CgroupDriver,
	}
	return c, c.Validate()
}

// NodesAddons is the addons' configuration.
func NodesAddons(cfg Config, nc NodesConfig) (addons.Config, error) {
	server, err := NodesServer(cfg, nc)
	if err != nil {
		return addons.Config{}, err
	}
	a := nodesAddons(cfg, nc, server)
	return a, a.Validate()
}

func nodesAddons(cfg Config, nc NodesConfig, server string) addons.Config {
	return addons.Config{
		Server: server, ServiceCIDR: cfg.Kubernetes.ServiceCIDR, PodCIDR: nc.PodCIDR, ClusterDomain: cfg.Kubernetes.ClusterDomain,
		CoreDNS:   addons.CoreDNSConfig{Enabled: nc.CoreDNS.Enabled, Image: nc.CoreDNS.Image, Replicas: nc.CoreDNS.Replicas},
		KubeProxy: addons.KubeProxyConfig{Enabled: nc.KubeProxy.Enabled, Image: nc.KubeProxy.Image, Mode: nc.KubeProxy.Mode},
	}
}

// ValidateNodes reports every problem of nc against cfg at once, each
// naming its key.
func ValidateNodes(cfg Config, nc NodesConfig) error {
	errs := validateMasterKubelet(nc.MasterKubelet)
	if nc.MasterKubelet.Enabled {
		if _, err := bootstrap.DNSIP(cfg.Kubernetes.ServiceCIDR); err != nil && !nc.Enabled {
			errs = append(errs, fmt.Errorf("kubernetes.%w", err))
		}
		if nc.CgroupDriver != "systemd" && nc.CgroupDriver != "cgroupfs" && !nc.Enabled {
			errs = append(errs, fmt.Errorf("nodes.cgroupDriver: %q is not systemd or cgroupfs", nc.CgroupDriver))
		}
	}
	if !nc.Enabled {
		return errors.Join(errs...)
	}
	server, err := NodesServer(cfg, nc)
	if err != nil {
		if !errors.Is(err, errNoNodesEndpoint) {
			errs = append(errs, err)
		}
		server = "https://127.0.0.1:6443" // checked above; the rest is judged alone
	}
	if nc.CgroupDriver != "systemd" && nc.CgroupDriver != "cgroupfs" {
		errs = append(errs, fmt.Errorf("nodes.cgroupDriver: %q is not systemd or cgroupfs", nc.CgroupDriver))
	}
	if nc.ImageRepository == "" || strings.ContainsAny(nc.ImageRepository, " \t\n") {
		errs = append(errs, fmt.Errorf("nodes.imageRepository: %q is not a registry name", nc.ImageRepository))
	}
	if nc.ReconcileInterval.D() < time.Second {
		errs = append(errs, fmt.Errorf("nodes.reconcileInterval: %s is below 1s", nc.ReconcileInterval))
	}
	if _, err := bootstrap.DNSIP(cfg.Kubernetes.ServiceCIDR); err != nil {
		errs = append(errs, fmt.Errorf("kubernetes.%w", err))
	}
	if err := nodesAddons(cfg, nc, server).Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			switch {
			case strings.HasPrefix(line, "serviceCIDR:"): // reported above
			case strings.HasPrefix(line, "clusterDomain:"):
				errs = append(errs, errors.New("kubernetes."+line))
			default:
				errs = append(errs, errors.New("nodes."+line))
			}
		}
	}
	return errors.Join(errs...)
}

// AdminClient is a client of the API with this master's admin.conf (the
// daemon's PKI files), for the token commands.
func AdminClient(cfg Config) (*bootstrap.Client, *bootstrap.Credentials, error) {
	path := EtcdFiles(cfg).AdminConf
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("admin credentials: %w (masterd writes them at its first start)", err)
	}
	return bootstrap.NewClientFromKubeconfig(path)
}

// ReconcileNodes is one round of runNodes: with this master's admin
// credentials, publish what nodes need (bootstrap.Publish) and apply the
// addons (addons.Reconcile); it returns the objects it changed.
func ReconcileNodes(ctx context.Context, cfg Config, nc NodesConfig) ([]string, error) {
	c, cr, err := AdminClient(cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cluster, err := NodesCluster(cfg, nc, cr.CAPEM)
	if err != nil {
		return nil, err
	}
	ac, err := NodesAddons(cfg, nc)
	if err != nil {
		return nil, err
	}
	changed, err := bootstrap.Publish(ctx, c, cluster)
	if err != nil {
		return changed, err
	}
	more, err := addons.Reconcile(ctx, c, ac)
	return append(changed, more...), err
}

// runNodes runs ReconcileNodes every nc.ReconcileInterval until ctx ends.
// It runs on the controller-manager role's holder only, under the term's
// context (cancelled when the term is lost), so one master at a time
// writes; a failed round is logged and retried at the next tick.
func runNodes(ctx context.Context, n *node, nc NodesConfig) {
	if !nc.Enabled {
		return
	}
	log := n.log.With("component", "nodes")
	if _, err := NodesServer(n.cfg, nc); errors.Is(err, errNoNodesEndpoint) {
		log.Warn("nothing published for nodes", "err", err)
		return
	}
	t := time.NewTicker(nc.ReconcileInterval.D())
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, nc.ReconcileInterval.D())
		changed, err := ReconcileNodes(rctx, n.cfg, nc)
		cancel()
		if len(changed) > 0 {
			log.Info("nodes objects applied", "changed", strings.Join(changed, ", "))
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("nodes reconcile failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
