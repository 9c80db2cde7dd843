package units

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"testing"
	"time"
)

// testPKI is a throwaway cluster CA with the certificates the control plane
// needs; the real ones come from the pki package.
type testPKI struct {
	files map[string][]byte // name -> content, e.g. "ca.crt"
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func newTestPKI(t *testing.T, apiserverIPs []net.IP, server string) *testPKI {
	t.Helper()
	p := &testPKI{files: map[string][]byte{}}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unitst-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.files["ca.crt"] = pemBlock("CERTIFICATE", caDER)
	p.files["ca.key"] = p.ecKey(t, caKey)

	serial := int64(2)
	issue := func(cn string, orgs []string, ext x509.ExtKeyUsage, ips []net.IP, dns []string) ([]byte, []byte) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		serial++
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: orgs},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{ext}, IPAddresses: ips, DNSNames: dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return pemBlock("CERTIFICATE", der), p.ecKey(t, k)
	}
	p.files["apiserver.crt"], p.files["apiserver.key"] = issue("kube-apiserver", nil, x509.ExtKeyUsageServerAuth,
		apiserverIPs, []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p.files["sa.key"] = pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey))
	pub, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	p.files["sa.pub"] = pemBlock("PUBLIC KEY", pub)
	for _, c := range []struct{ file, cn string }{
		{"scheduler.conf", "system:kube-scheduler"},
		{"controller-manager.conf", "system:kube-controller-manager"},
		{"admin.conf", "unitst-admin"},
	} {
		var orgs []string
		if c.file == "admin.conf" {
			orgs = []string{"system:masters"}
		}
		crt, key := issue(c.cn, orgs, x509.ExtKeyUsageClientAuth, nil, nil)
		p.files[c.file] = kubeconfig(server, p.files["ca.crt"], crt, key, c.cn)
		if c.file == "admin.conf" {
			p.files["admin.crt"], p.files["admin.key"] = crt, key
		}
	}
	return p
}

func (p *testPKI) ecKey(t *testing.T, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("EC PRIVATE KEY", der)
}

func kubeconfig(server string, ca, crt, key []byte, user string) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: unitst
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: unitst
  context: {cluster: unitst, user: %s}
current-context: unitst
`, server, b64(ca), user, b64(crt), b64(key), user))
}
