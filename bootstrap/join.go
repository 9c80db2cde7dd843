package bootstrap

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// CAHash is kubeadm's --discovery-token-ca-cert-hash of the CA:
// "sha256:" and the hex SHA-256 of the certificate's DER
// SubjectPublicKeyInfo. With several certificates in caPEM, the first.
func CAHash(caPEM []byte) (string, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("ca: no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("ca: %w", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// JoinCommand is the command a user runs on a worker with kubeadm:
// kubeadm join HOST:PORT --token T --discovery-token-ca-cert-hash sha256:H.
func JoinCommand(server string, caPEM []byte, t Token) (string, error) {
	host, err := HostPort(server)
	if err != nil {
		return "", fmt.Errorf("bootstrap: join command: %w", err)
	}
	hash, err := CAHash(caPEM)
	if err != nil {
		return "", fmt.Errorf("bootstrap: join command: %w", err)
	}
	return fmt.Sprintf("kubeadm join %s --token %s --discovery-token-ca-cert-hash %s", host, t, hash), nil
}

// BootstrapKubeconfig is a kubelet's --bootstrap-kubeconfig for a worker
// without kubeadm: the VIP server, the CA inline and the token. The kubelet
// posts a CSR with it (approved automatically, see Objects) and writes its
// own --kubeconfig with the certificate it gets. It holds the token: keep
// it mode 0600.
func BootstrapKubeconfig(server string, caPEM []byte, t Token) (string, error) {
	if _, err := HostPort(server); err != nil {
		return "", fmt.Errorf("bootstrap: bootstrap kubeconfig: %w", err)
	}
	if _, err := CAHash(caPEM); err != nil {
		return "", fmt.Errorf("bootstrap: bootstrap kubeconfig: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n")
	fmt.Fprintf(&b, "    server: %s\n    certificate-authority-data: %s\n", server, base64.StdEncoding.EncodeToString(caPEM))
	fmt.Fprintf(&b, "contexts:\n- name: tls-bootstrap-token-user@kubernetes\n  context:\n    cluster: kubernetes\n    user: tls-bootstrap-token-user\n")
	fmt.Fprintf(&b, "current-context: tls-bootstrap-token-user@kubernetes\n")
	fmt.Fprintf(&b, "users:\n- name: tls-bootstrap-token-user\n  user:\n    token: %s\n", t)
	return b.String(), nil
}
