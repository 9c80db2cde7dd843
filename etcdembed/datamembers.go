package etcdembed

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// withDataMembers returns c with the etcd members its own data lists added
// to c.Members: masters added after masterd.yaml's peers were written
// (peers only seed the first boot; members come and go with `masterd
// member add/remove`) are then probed by Restore's and Recover's checks
// that no other member still serves etcd. It reads the members bucket of
// the member's backend (the state it had applied), read-only; the caller
// holds the data-dir lock. A data dir without a backend adds nothing.
func (c Config) withDataMembers() (Config, error) {
	path := filepath.Join(c.DataDir, "member", "snap", "db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return c, fmt.Errorf("read the members of %s: %w", path, err)
	}
	defer db.Close()
	known := slices.Clone(c.Members)
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("members"))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var m struct {
				Name       string   `json:"name"`
				PeerURLs   []string `json:"peerURLs"`
				ClientURLs []string `json:"clientURLs"`
			}
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("member %s: %w", k, err)
			}
			if m.Name == "" {
				// Added, never started: named after its ID.
				m.Name = "unstarted-" + string(k)
			}
			p, ok := peerFromURLs(m.Name, m.PeerURLs, m.ClientURLs, c)
			if ok && !slices.ContainsFunc(known, func(q Peer) bool {
				return q.Name == p.Name || q.Address == p.Address && c.peerPortOf(q) == c.peerPortOf(p)
			}) {
				known = append(known, p)
			}
			return nil
		})
	})
	if err != nil {
		return c, fmt.Errorf("read the members of %s: %w", path, err)
	}
	c.Members = known
	return c, nil
}

// peerFromURLs is member name at its first peer URL's address; a port other
// than c's goes into the Peer (members of one test share an address).
func peerFromURLs(name string, peerURLs, clientURLs []string, c Config) (Peer, bool) {
	p := Peer{Name: name}
	addrPort := func(raw string) (netip.AddrPort, bool) {
		u, err := url.Parse(raw)
		if err != nil {
			return netip.AddrPort{}, false
		}
		ap, err := netip.ParseAddrPort(u.Host)
		return ap, err == nil
	}
	for _, u := range peerURLs {
		if ap, ok := addrPort(u); ok {
			p.Address = ap.Addr()
			if ap.Port() != c.PeerPort {
				p.PeerPort = ap.Port()
			}
			break
		}
	}
	if !p.Address.IsValid() {
		return p, false
	}
	for _, u := range clientURLs {
		if ap, ok := addrPort(u); ok && ap.Addr() == p.Address {
			if ap.Port() != c.ClientPort {
				p.ClientPort = ap.Port()
			}
			break
		}
	}
	return p, true
}

// peerPortOf is p's peer port under c.
func (c Config) peerPortOf(p Peer) uint16 {
	if p.PeerPort != 0 {
		return p.PeerPort
	}
	return c.PeerPort
}
