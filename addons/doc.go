// Package addons renders and reconciles the two cluster addons every
// cluster needs: CoreDNS and kube-proxy.
//
// The manifests follow kubeadm v1.37's (same names, labels and RBAC):
// CoreDNS is a Deployment coredns with the Service kube-dns at the 10th
// address of the Service range (the kubelets' clusterDNS, see package
// bootstrap), the ConfigMap coredns holding the Corefile, the ClusterRole
// and binding system:coredns and the ServiceAccount coredns. kube-proxy is
// a DaemonSet on every node with the ServiceAccount kube-proxy bound to
// system:node-proxier, and the ConfigMap kube-proxy holding its kubeconfig
// (server: the VIP, never a single master; credentials: the pod's
// service-account token) and its KubeProxyConfiguration (mode nftables by
// default, iptables on request).
//
// Image names are configuration, for air-gapped registries; each addon can
// be switched off. Reconcile applies everything with server-side apply
// (field manager masterd, forced) and reports what changed; it is meant to
// run periodically on one master at a time, the holder of the
// controller-manager role (see agent/nodes.go).
package addons
