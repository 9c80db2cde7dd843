// Package pki owns masterd's key material: the one cluster secret that is
// copied to every master, and the per-node certificates and kubeconfigs
// derived from it.
//
// # The cluster secret
//
// `masterd init` calls [GenerateSecret] and [WriteSecret]. The secret holds
// everything that must be identical on every master:
//
//   - the gossip keys (32-byte AES-256 keys for memberlist; the first is the
//     primary used to encrypt, the others are still accepted, for rotation);
//   - the etcd CA, the Kubernetes CA and the front-proxy CA (ECDSA P-256,
//     valid 10 years), certificate and private key each;
//   - the service-account signing key pair (ECDSA P-256, ES256 tokens).
//
// The file is a PEM bundle readable by openssl: a first block of type
// "MASTERD CLUSTER SECRET" carries the format version and a "Blocks" header
// naming, in order, the role of every following block ("gossip-key",
// "etcd-ca-cert", "etcd-ca-key", ...). Gossip keys are "MASTERD GOSSIP KEY"
// blocks, certificates "CERTIFICATE" and keys PKCS#8 "PRIVATE KEY" blocks.
// [LoadSecret] first calls [CheckPermissions]: it refuses a file that is not
// a regular file, is owned by anyone but root or the user the daemon runs
// as, or is accessible by group or others, and a parent directory owned by
// anyone else or writable by group or others (whoever can write the
// directory can replace the file); the error names every problem and the
// chown/chmod that fixes it. [DecodeSecret] reports what is wrong and never
// panics (it is fuzzed).
//
// # Node material
//
// At start the agent calls [CheckDir] on the pki directory, when it exists,
// then [Ensure] with the secret and the node's [Params]. CheckDir refuses the
// directory, or any file of its layout, owned by anyone but root or the
// daemon's user or writable by group or others, and a private key or
// kubeconfig accessible by them, naming each file and the fix; it must run
// first because Ensure tightens the modes it finds without a word. Ensure
// writes into the pki directory (mode 0700; private keys and
// kubeconfigs 0600, certificates 0644) the CA certificates, the etcd server,
// peer and client certificates, the apiserver's etcd client, serving and
// kubelet-client certificates, the front-proxy client certificate, the
// service-account key pair and the kubeconfigs admin.conf,
// scheduler.conf and controller-manager.conf. It leaves every file that is
// still good alone and regenerates only what is missing, unparsable, signed by
// another CA, not matching Params (names, addresses, usages, kubeconfig
// server) or within Params.RenewBefore of expiry, judged at the injected time.
// The returned [Files] names every path and lists what was regenerated and why,
// for the agent to log.
//
// The etcd peer certificate also carries the DNS name [EtcdPeerName], which no
// other certificate has: etcd's peer port demands it (package etcdembed), so
// a client certificate of the same CA cannot act as a member.
//
// # Secrets encryption at rest
//
// [Secret.EncryptionKey] derives generation n (1, 2, ...) of the key that
// encrypts Kubernetes Secrets in etcd: HKDF-SHA256 of the Kubernetes CA's
// private key, the same on every master, one-way (a key tells nothing about
// the CA key or other generations). [EncryptionConfig] writes
// kube-apiserver's EncryptionConfiguration for `secrets`: secretbox with the
// listed generations (the first encrypts), then identity; with encryption
// off, identity first. The agent writes it, with [WriteFile], to
// [EncryptionConfigName] (0600) in the pki directory, beside the audit
// policy ([AuditPolicyName], 0644); [CheckDir] checks both.
//
// # Bring your own PKI
//
// Operators who create certificates themselves (cfssl, an enterprise CA)
// name the files in the config; [UseFiles] checks them — key matches
// certificate, chain to the named CA, required names and addresses, not
// expired — and generates nothing.
//
// # Metrics
//
//	masterd_cert_expiry_timestamp_seconds{cert}  NotAfter of each certificate
//	                                             (Unix seconds), see [Metrics].
//
// Keys are ECDSA P-256 everywhere: every consumer (etcd, kube-apiserver,
// kubelet, client-go, openssl) accepts it, while Ed25519 is still refused by
// some Kubernetes clients. Randomness comes from crypto/rand; GenerateSecret
// takes a reader for serial numbers and gossip keys, but Go's ECDSA key
// generation always draws from the system source.
package pki
