package bootstrap

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Names kubeadm v1.37 uses (cmd/kubeadm/app/constants, phases/bootstraptoken,
// phases/uploadconfig, phases/kubelet); stock `kubeadm join` reads exactly
// these.
const (
	clusterInfoRole       = "kubeadm:bootstrap-signer-clusterinfo"
	kubeadmConfigRole     = "kubeadm:nodes-kubeadm-config"
	kubeletConfigRole     = "kubeadm:kubelet-config"
	kubeletBootstrapCRB   = "kubeadm:kubelet-bootstrap"
	getNodesRole          = "kubeadm:get-nodes"
	autoApproveCRB        = "kubeadm:node-autoapprove-bootstrap"
	autoApproveRenewalCRB = "kubeadm:node-autoapprove-certificate-rotation"
	// kubeletPKIDir is where kubeadm join puts the cluster CA on a worker.
	kubeletPKIDir = "/etc/kubernetes/pki"
)

// Cluster is what the published objects say about the cluster.
type Cluster struct {
	// Server is the API's address for every node: https://VIP:port, never a
	// single master.
	Server string
	// CAPEM is the Kubernetes CA certificate (PEM).
	CAPEM []byte
	// KubernetesVersion is the control plane's version (v1.37.2).
	KubernetesVersion string
	// ClusterName names the cluster in kubeadm's ClusterConfiguration.
	ClusterName string
	// ServiceCIDR is the Service range; its 10th address is the cluster DNS.
	ServiceCIDR netip.Prefix
	// PodCIDR is the pod range, if the cluster has one (may be zero).
	PodCIDR netip.Prefix
	// ClusterDomain is the DNS domain (cluster.local).
	ClusterDomain string
	// ImageRepository is the registry kubeadm is told the cluster uses.
	ImageRepository string
	// CgroupDriver is the kubelets' cgroup driver (systemd).
	CgroupDriver string
}

// Validate reports every problem at once.
func (c Cluster) Validate() error {
	var errs []error
	if _, err := HostPort(c.Server); err != nil {
		errs = append(errs, err)
	}
	if len(c.CAPEM) == 0 {
		errs = append(errs, errors.New("ca: is required"))
	} else if _, err := CAHash(c.CAPEM); err != nil {
		errs = append(errs, err)
	}
	if !strings.HasPrefix(c.KubernetesVersion, "v") {
		errs = append(errs, fmt.Errorf("kubernetesVersion: %q does not start with v", c.KubernetesVersion))
	}
	if _, err := DNSIP(c.ServiceCIDR); err != nil {
		errs = append(errs, err)
	}
	if c.ClusterDomain == "" {
		errs = append(errs, errors.New("clusterDomain: is required"))
	}
	if c.ClusterName == "" {
		errs = append(errs, errors.New("clusterName: is required"))
	}
	if c.CgroupDriver != "systemd" && c.CgroupDriver != "cgroupfs" {
		errs = append(errs, fmt.Errorf("cgroupDriver: %q is not systemd or cgroupfs", c.CgroupDriver))
	}
	return errors.Join(errs...)
}

// HostPort is the host:port of an https server URL (what `kubeadm join`
// takes as its argument).
func HostPort(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("server: %q is not https://host:port", server)
	}
	if _, err := strconv.ParseUint(u.Port(), 10, 16); err != nil {
		return "", fmt.Errorf("server: %q has a bad port", server)
	}
	return u.Host, nil
}

// DNSIP is the cluster DNS address: the 10th address of the Service range
// (10.96.0.10 for 10.96.0.0/12), as kubeadm.
func DNSIP(serviceCIDR netip.Prefix) (netip.Addr, error) {
	if !serviceCIDR.IsValid() {
		return netip.Addr{}, errors.New("serviceCIDR: is required")
	}
	a := serviceCIDR.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	if !a.IsValid() || !serviceCIDR.Contains(a) {
		return netip.Addr{}, fmt.Errorf("serviceCIDR: %s has no 10th address for the cluster DNS", serviceCIDR)
	}
	return a, nil
}

// ClusterInfoKubeconfig is the kubeconfig kubeadm puts in the cluster-info
// ConfigMap: one unnamed cluster with the server and the CA, nothing else
// (clientcmd.Write of a Config with Clusters[""]).
func ClusterInfoKubeconfig(server string, caPEM []byte) string {
	return "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: " +
		base64.StdEncoding.EncodeToString(caPEM) + "\n    server: " + server +
		"\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\nusers: null\n"
}

func kubeadmClusterConfiguration(c Cluster) string {
	host, _ := HostPort(c.Server)
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n")
	fmt.Fprintf(&b, "clusterName: %s\nkubernetesVersion: %s\ncontrolPlaneEndpoint: %s\n", c.ClusterName, c.KubernetesVersion, host)
	fmt.Fprintf(&b, "certificatesDir: %s\nimageRepository: %s\n", kubeletPKIDir, c.ImageRepository)
	fmt.Fprintf(&b, "networking:\n  dnsDomain: %s\n  serviceSubnet: %s\n", c.ClusterDomain, c.ServiceCIDR.Masked())
	if c.PodCIDR.IsValid() {
		fmt.Fprintf(&b, "  podSubnet: %s\n", c.PodCIDR.Masked())
	}
	return b.String()
}

// kubeletConfiguration is the cluster-wide KubeletConfiguration kubeadm
// join writes to /var/lib/kubelet/config.yaml. Serving certificates: the
// kubelet makes its own self-signed one (serverTLSBootstrap false), since
// kube-controller-manager never approves kubelet-serving CSRs by itself and
// masterd's apiserver does not verify kubelets' serving certificates;
// client certificates rotate, renewals approved through selfnodeclient.
func kubeletConfiguration(c Cluster) string {
	dns, _ := DNSIP(c.ServiceCIDR)
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s/ca.crt
authorization:
  mode: Webhook
cgroupDriver: %s
clusterDNS:
- %s
clusterDomain: %s
rotateCertificates: true
serverTLSBootstrap: false
staticPodPath: /etc/kubernetes/manifests
`, kubeletPKIDir, c.CgroupDriver, dns, c.ClusterDomain)
}

func meta(name, ns string) map[string]any {
	m := map[string]any{"name": name}
	if ns != "" {
		m["namespace"] = ns
	}
	return m
}

func configMap(name, ns string, data map[string]any) Object {
	return Object{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, ns), "data": data}
}

func getConfigMapRole(name, ns, configMapName string) Object {
	return Object{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(name, ns),
		"rules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"configmaps"}, "verbs": []any{"get"}, "resourceNames": []any{configMapName}}}}
}

// Subject is an RBAC subject: kind User, Group or ServiceAccount.
func Subject(kind, name, ns string) map[string]any {
	s := map[string]any{"kind": kind, "name": name}
	if kind == "ServiceAccount" {
		s["namespace"] = ns
	} else {
		s["apiGroup"] = "rbac.authorization.k8s.io"
	}
	return s
}

func roleBinding(name, ns, role string, subjects ...map[string]any) Object {
	subs := make([]any, len(subjects))
	for i, s := range subjects {
		subs[i] = s
	}
	return Object{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(name, ns),
		"roleRef": map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}, "subjects": subs}
}

// ClusterRoleBinding binds a ClusterRole to subjects.
func ClusterRoleBinding(name, role string, subjects ...map[string]any) Object {
	subs := make([]any, len(subjects))
	for i, s := range subjects {
		subs[i] = s
	}
	return Object{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta(name, ""),
		"roleRef": map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}, "subjects": subs}
}

// Objects are what kubeadm init publishes for nodes to join, in the order
// they are applied:
//   - kube-public/cluster-info (kubeconfig with the VIP server and the CA;
//     kube-controller-manager's bootstrapsigner adds jws-kubeconfig-<id>
//     signatures, fields masterd does not own) and the Role and RoleBinding
//     that let system:anonymous get it;
//   - kube-system/kubeadm-config (ClusterConfiguration) and
//     kube-system/kubelet-config (KubeletConfiguration), each readable by
//     the bootstrap tokens' group and system:nodes;
//   - TLS bootstrapping: system:node-bootstrapper for the tokens' group (post
//     CSRs), kubeadm:get-nodes (join checks for an existing Node), automatic
//     approval of node client CSRs from the group (nodeclient) and of
//     renewals by nodes (selfnodeclient).
func Objects(c Cluster) ([]Object, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("bootstrap: cluster: %w", err)
	}
	bootstrappers := Subject("Group", NodeBootstrapGroup, "")
	nodes := Subject("Group", NodesGroup, "")
	return []Object{
		configMap("cluster-info", "kube-public", map[string]any{"kubeconfig": ClusterInfoKubeconfig(c.Server, c.CAPEM)}),
		getConfigMapRole(clusterInfoRole, "kube-public", "cluster-info"),
		roleBinding(clusterInfoRole, "kube-public", clusterInfoRole, Subject("User", "system:anonymous", "")),

		configMap("kubeadm-config", "kube-system", map[string]any{"ClusterConfiguration": kubeadmClusterConfiguration(c)}),
		getConfigMapRole(kubeadmConfigRole, "kube-system", "kubeadm-config"),
		roleBinding(kubeadmConfigRole, "kube-system", kubeadmConfigRole, bootstrappers, nodes),

		configMap("kubelet-config", "kube-system", map[string]any{"kubelet": kubeletConfiguration(c)}),
		getConfigMapRole(kubeletConfigRole, "kube-system", "kubelet-config"),
		roleBinding(kubeletConfigRole, "kube-system", kubeletConfigRole, nodes, bootstrappers),

		ClusterRoleBinding(kubeletBootstrapCRB, "system:node-bootstrapper", bootstrappers),
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(getNodesRole, ""),
			"rules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"nodes"}, "verbs": []any{"get"}}}},
		ClusterRoleBinding(getNodesRole, getNodesRole, bootstrappers),
		ClusterRoleBinding(autoApproveCRB, "system:certificates.k8s.io:certificatesigningrequests:nodeclient", bootstrappers),
		ClusterRoleBinding(autoApproveRenewalCRB, "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", nodes),
	}, nil
}

// Applier applies objects (Client does, with server-side apply).
type Applier interface {
	Apply(ctx context.Context, obj Object) (before, after string, err error)
}

var _ Applier = (*Client)(nil)

// ApplyAll applies objs in order and returns the ones that changed
// (created or modified), named as Object.String.
func ApplyAll(ctx context.Context, a Applier, objs []Object) ([]string, error) {
	var changed []string
	for _, o := range objs {
		before, after, err := a.Apply(ctx, o)
		if err != nil {
			return changed, err
		}
		if before != after {
			changed = append(changed, o.String())
		}
	}
	return changed, nil
}

// Publish applies Objects(c): what nodes need to join. It is idempotent;
// it returns the objects it changed.
func Publish(ctx context.Context, a Applier, c Cluster) ([]string, error) {
	objs, err := Objects(c)
	if err != nil {
		return nil, err
	}
	changed, err := ApplyAll(ctx, a, objs)
	if err != nil {
		return changed, fmt.Errorf("bootstrap: publish: %w", err)
	}
	return changed, nil
}

// ServerURL is https://addr:port (brackets for IPv6).
func ServerURL(addr netip.Addr, port uint16) string {
	return "https://" + net.JoinHostPort(addr.String(), strconv.Itoa(int(port)))
}
