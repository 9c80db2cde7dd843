package agent

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdClient connects to this master's etcd member as the daemon does: the
// loopback client URL (the node's own address when that is a loopback one,
// several members on one host) and masterd's client certificate from
// EtcdMemberConfig. Commands that run beside the daemon (masterd etcd
// members, snapshot save, remove) use it. The caller closes it.
func EtcdClient(cfg Config) (*clientv3.Client, error) {
	ec := EtcdMemberConfig(cfg, EtcdFiles(cfg))
	info := transport.TLSInfo{CertFile: ec.TLS.ClientCertFile, KeyFile: ec.TLS.ClientKeyFile, TrustedCAFile: ec.TLS.CAFile}
	tc, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate %s: %w", ec.TLS.ClientCertFile, err)
	}
	tc.MinVersion = tls.VersionTLS12
	host := "127.0.0.1"
	if ec.Address.IsLoopback() {
		host = ec.Address.String()
	}
	endpoint := "https://" + net.JoinHostPort(host, strconv.Itoa(int(ec.ClientPort)))
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		TLS:         tc,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", endpoint, err)
	}
	return cli, nil
}
