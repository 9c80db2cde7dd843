// Package bootstrap is the cluster side of adding nodes: bootstrap tokens,
// what stock `kubeadm join` reads, and the RBAC of TLS bootstrapping.
//
// # Client
//
// Client is a small REST client over HTTPS with masterd's admin
// credentials (admin.conf, LoadKubeconfig): JSON in and out, and
// server-side apply (PATCH application/apply-patch+yaml, fieldManager
// masterd, force) for everything masterd keeps reconciled. No client-go.
//
// # Tokens
//
// CreateToken, ListTokens and DeleteToken manage bootstrap tokens
// ([a-z0-9]{6}.[a-z0-9]{16}) as kubeadm does: Secrets
// kube-system/bootstrap-token-<id> of type bootstrap.kubernetes.io/token
// with token-id, token-secret, expiration (RFC 3339, UTC),
// usage-bootstrap-signing and usage-bootstrap-authentication "true" and
// auth-extra-groups system:bootstrappers:kubeadm:default-node-token. The
// apiserver accepts them with --enable-bootstrap-token-auth; the
// controller-manager's tokencleaner deletes expired ones and its
// bootstrapsigner signs cluster-info with each signing token. A new token
// authenticates once the apiserver's cache of Secrets has it (its watch,
// normally milliseconds), and kubeadm join waits for its signature.
//
// # What kubeadm join reads
//
// Objects (applied by Publish) are the objects kubeadm init v1.37 leaves
// for joining nodes, with the same names: the cluster-info ConfigMap in
// kube-public (a kubeconfig whose server is the VIP and whose CA is the
// cluster's; readable by system:anonymous), kubeadm-config (a v1beta4
// ClusterConfiguration) and kubelet-config (the KubeletConfiguration written
// to /var/lib/kubelet/config.yaml on the worker) in kube-system with their
// Roles for the bootstrap group and system:nodes, and the ClusterRoleBindings
// of TLS bootstrapping: system:node-bootstrapper and kubeadm:get-nodes for
// the bootstrap group, automatic approval of node client CSRs from the group
// (nodeclient) and of their renewals by nodes (selfnodeclient).
//
// Kubelet serving certificates: each kubelet makes its own self-signed one
// (serverTLSBootstrap false). kube-controller-manager never approves
// kubelet-serving CSRs by itself, so turning serverTLSBootstrap on without
// an approver would leave every kubelet without a serving certificate;
// masterd's apiserver does not verify kubelets' serving certificates
// (no --kubelet-certificate-authority), as kubeadm's default.
//
// # Joining
//
// JoinCommand prints `kubeadm join VIP:PORT --token T
// --discovery-token-ca-cert-hash sha256:H`, H being the SHA-256 of the CA
// certificate's SubjectPublicKeyInfo (CAHash). BootstrapKubeconfig is a
// kubelet's --bootstrap-kubeconfig for a worker without kubeadm.
package bootstrap
