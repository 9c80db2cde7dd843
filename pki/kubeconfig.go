package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// The subset of the kubeconfig format (clientcmd v1) masterd writes and reads.
type kubeconfig struct {
	APIVersion     string         `yaml:"apiVersion"`
	Kind           string         `yaml:"kind"`
	Clusters       []namedCluster `yaml:"clusters"`
	Contexts       []namedContext `yaml:"contexts"`
	CurrentContext string         `yaml:"current-context"`
	Users          []namedUser    `yaml:"users"`
}

type namedCluster struct {
	Name    string     `yaml:"name"`
	Cluster kubeClster `yaml:"cluster"`
}

type kubeClster struct {
	Server                   string `yaml:"server"`
	CertificateAuthority     string `yaml:"certificate-authority,omitempty"`
	CertificateAuthorityData string `yaml:"certificate-authority-data,omitempty"`
}

type namedContext struct {
	Name    string      `yaml:"name"`
	Context kubeContext `yaml:"context"`
}

type kubeContext struct {
	Cluster string `yaml:"cluster"`
	User    string `yaml:"user"`
}

type namedUser struct {
	Name string   `yaml:"name"`
	User kubeUser `yaml:"user"`
}

type kubeUser struct {
	ClientCertificate     string `yaml:"client-certificate,omitempty"`
	ClientCertificateData string `yaml:"client-certificate-data,omitempty"`
	ClientKey             string `yaml:"client-key,omitempty"`
	ClientKeyData         string `yaml:"client-key-data,omitempty"`
}

const kubeClusterName = "kubernetes"

// encodeKubeconfig returns a kubeconfig with embedded credentials.
func encodeKubeconfig(server string, caPEM []byte, user string, cert *x509.Certificate, key crypto.Signer) ([]byte, error) {
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	ctx := user + "@" + kubeClusterName
	kc := kubeconfig{
		APIVersion: "v1",
		Kind:       "Config",
		Clusters: []namedCluster{{Name: kubeClusterName, Cluster: kubeClster{
			Server:                   server,
			CertificateAuthorityData: base64.StdEncoding.EncodeToString(caPEM),
		}}},
		Contexts:       []namedContext{{Name: ctx, Context: kubeContext{Cluster: kubeClusterName, User: user}}},
		CurrentContext: ctx,
		Users: []namedUser{{Name: user, User: kubeUser{
			ClientCertificateData: base64.StdEncoding.EncodeToString(encodeCert(cert)),
			ClientKeyData:         base64.StdEncoding.EncodeToString(keyPEM),
		}}},
	}
	return yaml.Marshal(&kc)
}

// loadedKubeconfig is what the current context of a kubeconfig resolves to.
type loadedKubeconfig struct {
	server string
	cas    []*x509.Certificate
	cert   *x509.Certificate
	key    crypto.Signer
}

// readKubeconfig parses the kubeconfig at path and resolves its current
// context; file references are relative to the kubeconfig's directory.
func readKubeconfig(path string) (*loadedKubeconfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	return parseKubeconfig(data, func(p string) ([]byte, error) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return os.ReadFile(p)
	})
}

// parseKubeconfig resolves the current context of a kubeconfig; read loads
// the files it references.
func parseKubeconfig(data []byte, read func(string) ([]byte, error)) (*loadedKubeconfig, error) {
	var kc kubeconfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, err
	}
	var ctx *kubeContext
	for i := range kc.Contexts {
		if kc.Contexts[i].Name == kc.CurrentContext {
			ctx = &kc.Contexts[i].Context
		}
	}
	if ctx == nil {
		return nil, fmt.Errorf("current context %q not found", kc.CurrentContext)
	}
	var cl *kubeClster
	for i := range kc.Clusters {
		if kc.Clusters[i].Name == ctx.Cluster {
			cl = &kc.Clusters[i].Cluster
		}
	}
	var u *kubeUser
	for i := range kc.Users {
		if kc.Users[i].Name == ctx.User {
			u = &kc.Users[i].User
		}
	}
	if cl == nil || u == nil {
		return nil, fmt.Errorf("context %q: cluster %q or user %q not found", kc.CurrentContext, ctx.Cluster, ctx.User)
	}
	caPEM, err := inlineOrFile(cl.CertificateAuthorityData, cl.CertificateAuthority, read)
	if err != nil {
		return nil, fmt.Errorf("certificate authority: %w", err)
	}
	certPEM, err := inlineOrFile(u.ClientCertificateData, u.ClientCertificate, read)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	keyPEM, err := inlineOrFile(u.ClientKeyData, u.ClientKey, read)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	out := &loadedKubeconfig{server: cl.Server}
	if out.cas, err = parseCertsPEM(caPEM); err != nil {
		return nil, fmt.Errorf("certificate authority: %w", err)
	}
	if out.cert, err = parseCertPEM(certPEM); err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	if out.key, err = parseKeyPEM(keyPEM); err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	return out, nil
}

func inlineOrFile(data, path string, read func(string) ([]byte, error)) ([]byte, error) {
	if data != "" {
		return base64.StdEncoding.DecodeString(data)
	}
	if path == "" {
		return nil, errors.New("neither data nor file given")
	}
	return read(path)
}
