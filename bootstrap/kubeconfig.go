package bootstrap

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// Credentials are what a kubeconfig's current context resolves to.
type Credentials struct {
	Server string
	CAPEM  []byte
	Cert   tls.Certificate
}

// LoadKubeconfig reads a kubeconfig with a client certificate (masterd's
// admin.conf): the current context's server, CA and client pair, inline or
// in files (relative to the kubeconfig's directory).
func LoadKubeconfig(path string) (*Credentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: kubeconfig: %w", err)
	}
	var kc struct {
		Clusters []struct {
			Name    string `yaml:"name"`
			Cluster struct {
				Server string `yaml:"server"`
				CA     string `yaml:"certificate-authority"`
				CAData string `yaml:"certificate-authority-data"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Contexts []struct {
			Name    string `yaml:"name"`
			Context struct {
				Cluster string `yaml:"cluster"`
				User    string `yaml:"user"`
			} `yaml:"context"`
		} `yaml:"contexts"`
		CurrentContext string `yaml:"current-context"`
		Users          []struct {
			Name string `yaml:"name"`
			User struct {
				Cert     string `yaml:"client-certificate"`
				CertData string `yaml:"client-certificate-data"`
				Key      string `yaml:"client-key"`
				KeyData  string `yaml:"client-key-data"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, fmt.Errorf("bootstrap: kubeconfig %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	read := func(inline, file string) ([]byte, error) {
		if inline != "" {
			return base64.StdEncoding.DecodeString(inline)
		}
		if file == "" {
			return nil, errors.New("missing")
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		return os.ReadFile(file)
	}
	bad := func(format string, a ...any) (*Credentials, error) {
		return nil, fmt.Errorf("bootstrap: kubeconfig %s: %s", path, fmt.Sprintf(format, a...))
	}
	var clusterName, userName string
	for _, c := range kc.Contexts {
		if c.Name == kc.CurrentContext {
			clusterName, userName = c.Context.Cluster, c.Context.User
		}
	}
	if clusterName == "" {
		return bad("current context %q not found", kc.CurrentContext)
	}
	cr := &Credentials{}
	found := false
	for _, c := range kc.Clusters {
		if c.Name == clusterName {
			found = true
			cr.Server = c.Cluster.Server
			if cr.CAPEM, err = read(c.Cluster.CAData, c.Cluster.CA); err != nil {
				return bad("cluster %q: certificate authority: %v", clusterName, err)
			}
		}
	}
	if !found {
		return bad("cluster %q not found", clusterName)
	}
	found = false
	for _, u := range kc.Users {
		if u.Name == userName {
			found = true
			cert, err := read(u.User.CertData, u.User.Cert)
			if err != nil {
				return bad("user %q: client certificate: %v", userName, err)
			}
			key, err := read(u.User.KeyData, u.User.Key)
			if err != nil {
				return bad("user %q: client key: %v", userName, err)
			}
			if cr.Cert, err = tls.X509KeyPair(cert, key); err != nil {
				return bad("user %q: %v", userName, err)
			}
		}
	}
	if !found {
		return bad("user %q not found", userName)
	}
	return cr, nil
}

// NewClientFromKubeconfig is NewClient on LoadKubeconfig(path).
func NewClientFromKubeconfig(path string) (*Client, *Credentials, error) {
	cr, err := LoadKubeconfig(path)
	if err != nil {
		return nil, nil, err
	}
	c, err := NewClient(cr.Server, cr.CAPEM, cr.Cert)
	if err != nil {
		return nil, nil, err
	}
	return c, cr, nil
}
