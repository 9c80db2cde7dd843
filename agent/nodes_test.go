package agent

import (
	"net/netip"
	"strings"
	"testing"
)

func nodesTestConfig() Config {
	cfg := DefaultConfig()
	cfg.VIP.Enabled = true
	cfg.VIP.Address = netip.MustParseAddr("10.0.0.100")
	return cfg
}

func TestNodesReachTheAPIThroughTheVIPNeverOneMaster(t *testing.T) {
	cfg := nodesTestConfig()
	nc := DefaultNodesConfig()
	if s, err := NodesServer(cfg, nc); err != nil || s != "https://10.0.0.100:6443" {
		t.Errorf("server %q, %v; want the VIP on the balancer's port", s, err)
	}
	cfg.VIP.Balancer.Port = 7443
	if s, _ := NodesServer(cfg, nc); s != "https://10.0.0.100:7443" {
		t.Errorf("server %q with balancer port 7443", s)
	}
	nc.APIServerEndpoint = "lb.example:443"
	if s, _ := NodesServer(cfg, nc); s != "https://lb.example:443" {
		t.Errorf("server %q with apiserverEndpoint", s)
	}
	cfg.VIP.Enabled = false
	nc.APIServerEndpoint = ""
	if _, err := NodesServer(cfg, nc); err == nil || !strings.Contains(err.Error(), "nodes.apiserverEndpoint: is required") {
		t.Errorf("no VIP and no endpoint: %v", err)
	}
	if err := ValidateNodes(nodesTestConfig(), DefaultNodesConfig()); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestBadNodesConfigNamesEveryKey(t *testing.T) {
	cfg := nodesTestConfig()
	cfg.Kubernetes.ClusterDomain = ""
	nc := DefaultNodesConfig()
	nc.APIServerEndpoint = "no-port"
	nc.CgroupDriver = "x"
	nc.ImageRepository = ""
	nc.ReconcileInterval = 0
	nc.KubeProxy.Mode = "ipvs"
	nc.CoreDNS.Replicas = 0
	nc.PodCIDR = netip.MustParsePrefix("10.96.0.0/16")
	err := ValidateNodes(cfg, nc)
	for _, want := range []string{`nodes.apiserverEndpoint: "no-port"`, `nodes.cgroupDriver: "x"`, "nodes.imageRepository:", "nodes.reconcileInterval: 0s",
		`nodes.kubeProxy.mode: "ipvs"`, "nodes.coreDNS.replicas: 0", "nodes.podCIDR: 10.96.0.0/16 overlaps", "kubernetes.clusterDomain:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nwant it to contain %q", err, want)
		}
	}
	nc.Enabled = false
	if err := ValidateNodes(cfg, nc); err != nil {
		t.Errorf("disabled: %v", err)
	}
}
