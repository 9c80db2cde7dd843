package etcdembed

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sort"
	"strings"

	"go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// notDecided is the cluster version a member reports before its cluster
// has ever formed (it is persisted once decided).
const notDecided = "not_decided"

// peerState is what one peer's peer port says about it.
type peerState int

const (
	peerSilent peerState = iota // no answer (down, not listening yet, TLS refused)
	peerEmpty                   // answers, its cluster never formed (empty data dir, or first boot in progress)
	peerFormed                  // answers with a decided cluster version: its cluster formed before
)

// survey is what the other members' peer ports answered, by peer name.
type survey struct {
	formed, empty, silent []string
	detail                map[string]string // formed: "cluster version 3.7.0"; silent: the error
}

// surveyPeers asks every other member's peer port for its version,
// concurrently, each within probeTimeout. A member whose data dir holds a
// formed cluster answers with its cluster version even without quorum (it is
// recovered from its data at start); an empty member waiting in plan answers
// not_decided through answerEmpty. Client ports are no use here: etcd serves
// them only once its member is ready, which takes quorum.
func surveyPeers(ctx context.Context, c Config, debug func(peer string, err error)) (survey, error) {
	info := transport.TLSInfo{
		CertFile:      c.TLS.PeerCertFile,
		KeyFile:       c.TLS.PeerKeyFile,
		TrustedCAFile: c.TLS.CAFile,
	}
	tc, err := info.ClientConfig()
	if err != nil {
		return survey{}, fmt.Errorf("etcdembed: peer tls: %w", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: probeTimeout}
	defer hc.CloseIdleConnections()
	type answer struct {
		name, version string
		err           error
	}
	peers := c.otherMembers()
	answers := make(chan answer, len(peers))
	for _, p := range peers {
		go func() {
			u := c.peerURL(p)
			v, err := peerClusterVersion(ctx, hc, u.String()+"/version")
			answers <- answer{p.Name, v, err}
		}()
	}
	s := survey{detail: map[string]string{}}
	for range peers {
		a := <-answers
		switch classify(a.version, a.err) {
		case peerFormed:
			s.formed = append(s.formed, a.name)
			s.detail[a.name] = "cluster version " + a.version
		case peerEmpty:
			s.empty = append(s.empty, a.name)
		default:
			s.silent = append(s.silent, a.name)
			s.detail[a.name] = a.err.Error()
			if debug != nil {
				debug(a.name, a.err)
			}
		}
	}
	sort.Strings(s.formed)
	sort.Strings(s.empty)
	sort.Strings(s.silent)
	return s, nil
}

// otherMembers is c.Members without this member.
func (c Config) otherMembers() []Peer {
	var peers []Peer
	for _, p := range c.Members {
		if p.Name != c.Name {
			peers = append(peers, p)
		}
	}
	return peers
}

func classify(v string, err error) peerState {
	switch {
	case err != nil:
		return peerSilent
	case v == notDecided || v == "":
		return peerEmpty
	default:
		return peerFormed
	}
}

// peerClusterVersion reads {"etcdserver": ..., "etcdcluster": ...}.
func peerClusterVersion(ctx context.Context, hc *http.Client, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return decodeVersion(io.LimitReader(resp.Body, 64<<10))
}

func decodeVersion(r io.Reader) (string, error) {
	var v struct {
		Cluster string `json:"etcdcluster"`
	}
	if err := json.NewDecoder(r).Decode(&v); err != nil {
		return "", fmt.Errorf("decode version: %w", err)
	}
	return v.Cluster, nil
}

// answerEmpty serves GET /version on this member's peer port, as etcd itself
// does, answering that this member's cluster is not decided: while an empty
// member waits to decide how to enter the cluster, the other empty members
// see it and can count it towards the quorum a new cluster needs. Only peers
// with a certificate of the cluster CA are answered. The returned function
// closes the listener (synchronously, so etcd can bind the port next).
func (m *Member) answerEmpty() (stop func(), err error) {
	info := transport.TLSInfo{
		CertFile:       m.cfg.TLS.PeerCertFile,
		KeyFile:        m.cfg.TLS.PeerKeyFile,
		TrustedCAFile:  m.cfg.TLS.CAFile,
		ClientCertAuth: true,
	}
	tc, err := info.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("etcdembed: peer tls: %w", err)
	}
	u := m.cfg.peerURL(m.cfg.self())
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, m.startError(err)
	}
	body, _ := json.Marshal(map[string]string{"etcdserver": version.Version, "etcdcluster": notDecided})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: probeTimeout,
		ErrorLog:          log.New(io.Discard, "", 0), // TLS handshakes of raft peers and scanners
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(tls.NewListener(ln, tc))
	}()
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}

// servingPeers returns the names of the peers whose client port answers an
// etcd Status call (over cli, with masterd's client certificate) within
// probeTimeout. A member answers Status even without quorum: "serves" means
// its etcd runs, not that its cluster is healthy.
func servingPeers(ctx context.Context, c Config, cli *clientv3.Client, log func(peer string, err error)) []string {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	type answer struct {
		name string
		ok   bool
	}
	peers := c.otherMembers()
	answers := make(chan answer, len(peers))
	for _, p := range peers {
		go func() {
			u := c.clientURL(p)
			_, err := cli.Status(ctx, u.String())
			if err != nil && log != nil {
				log(p.Name, err)
			}
			answers <- answer{p.Name, err == nil}
		}()
	}
	var names []string
	for range peers {
		if a := <-answers; a.ok {
			names = append(names, a.name)
		}
	}
	sort.Strings(names)
	return names
}

// PeersServingError is returned by Restore when other members still run
// etcd.
type PeersServingError struct {
	// Peers are the names of those members, sorted; Details says for each
	// what answered ("serves clients at https://...", "runs etcd without
	// quorum, cluster version 3.7.0", "waits to join, data dir empty").
	Peers   []string
	Details map[string]string
}

func (e *PeersServingError) Error() string {
	return "etcd still runs on " + peerList(e.Peers, e.Details)
}

// RunningPeers reports the members of c.Members other than c.Name that run
// etcd (or a masterd that waits to enter the cluster), probing each, within a
// short timeout, on its client port (an etcd Status call over mutual TLS with
// masterd's client certificate: a ready member) and on its peer port (etcd's
// /version over mutual TLS: any running member, with or without quorum). It
// returns nil when none answers.
func RunningPeers(ctx context.Context, c Config) (*PeersServingError, error) {
	var eps []string
	for _, p := range c.otherMembers() {
		u := c.clientURL(p)
		eps = append(eps, u.String())
	}
	if len(eps) == 0 {
		return nil, nil
	}
	cli, err := c.newClient(eps)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	var serving []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		serving = servingPeers(ctx, c, cli, nil)
	}()
	s, err := surveyPeers(ctx, c, nil)
	<-done
	if err != nil {
		return nil, err
	}
	e := &PeersServingError{Details: map[string]string{}}
	for _, name := range serving {
		for _, p := range c.otherMembers() {
			if p.Name == name {
				u := c.clientURL(p)
				e.Details[name] = "serves clients at " + u.String()
			}
		}
	}
	for _, name := range s.formed {
		if _, ok := e.Details[name]; !ok {
			e.Details[name] = "runs etcd without serving clients (no quorum?), " + s.detail[name]
		}
	}
	for _, name := range s.empty {
		if _, ok := e.Details[name]; !ok {
			e.Details[name] = "runs etcd or waits to join with an empty data dir"
		}
	}
	for name := range e.Details {
		e.Peers = append(e.Peers, name)
	}
	if len(e.Peers) == 0 {
		return nil, nil
	}
	sort.Strings(e.Peers)
	return e, nil
}

// peerList formats names for a message: "m1 (detail), m2 (detail)".
func peerList(names []string, detail map[string]string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n
		if d := detail[n]; d != "" {
			parts[i] += " (" + d + ")"
		}
	}
	return strings.Join(parts, ", ")
}
