package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Config says which ports only the masters may reach.
type Config struct {
	// Table is the nftables table's name (family inet).
	Table string
	// TCPPorts and UDPPorts are the protected ports (gossip: both; etcd
	// peer: TCP).
	TCPPorts, UDPPorts []uint16
}

// DefaultConfig names the table; the ports come from masterd's config.
func DefaultConfig() Config { return Config{Table: "masterd_allow"} }

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Table == "" || len(c.Table) > 63 {
		errs = append(errs, fmt.Errorf("firewall: table %q: want 1 to 63 characters", c.Table))
	}
	if len(c.TCPPorts)+len(c.UDPPorts) == 0 {
		errs = append(errs, errors.New("firewall: ports: at least one TCP or UDP port required"))
	}
	for _, p := range append(append([]uint16{}, c.TCPPorts...), c.UDPPorts...) {
		if p == 0 {
			errs = append(errs, errors.New("firewall: port 0: not a port"))
		}
	}
	return errors.Join(errs...)
}

// Firewall manages the table in one network namespace.
type Firewall struct {
	cfg Config
	mu  sync.Mutex
	nft *nftables.Conn
}

// New opens a netlink socket in the calling thread's network namespace;
// every later call acts there.
func New(cfg Config) (*Firewall, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("firewall: netlink: %w", err)
	}
	return &Firewall{cfg: cfg, nft: c}, nil
}

// Apply makes the table allow exactly allowed (besides loopback) on the
// protected ports. The replacement is one batch: there is no moment without
// the table or with a half-built one.
func (f *Firewall) Apply(allowed []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(allowed) == 0 {
		return errors.New("firewall: apply: no allowed address (that would cut every master off)")
	}
	t := &nftables.Table{Name: f.cfg.Table, Family: nftables.TableFamilyINet}
	cc := f.nft
	cc.AddTable(t)
	cc.DelTable(t)
	cc.AddTable(t)
	var e4, e6 []nftables.SetElement
	for _, a := range allowed {
		a = a.Unmap()
		if a.Is4() {
			e4 = append(e4, nftables.SetElement{Key: a.AsSlice()})
		} else {
			e6 = append(e6, nftables.SetElement{Key: a.AsSlice()})
		}
	}
	s4 := &nftables.Set{Table: t, Name: "masters4", KeyType: nftables.TypeIPAddr}
	s6 := &nftables.Set{Table: t, Name: "masters6", KeyType: nftables.TypeIP6Addr}
	if err := cc.AddSet(s4, e4); err != nil {
		return fmt.Errorf("firewall: set masters4: %w", err)
	}
	if err := cc.AddSet(s6, e6); err != nil {
		return fmt.Errorf("firewall: set masters6: %w", err)
	}
	in := cc.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	for _, r := range f.rules() {
		set, saddr := s4, load(expr.PayloadBaseNetworkHeader, 12, 4)
		if r.family == unix.NFPROTO_IPV6 {
			set, saddr = s6, load(expr.PayloadBaseNetworkHeader, 8, 16)
		}
		port := make([]byte, 2)
		binary.BigEndian.PutUint16(port, r.port)
		cc.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: concat(
			[]expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}}, eq([]byte{r.family}),
			notLoopback(),
			[]expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}}, eq([]byte{r.proto}),
			load(expr.PayloadBaseTransportHeader, 2, 2), eq(port),
			saddr,
			[]expr.Any{
				&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID, Invert: true},
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictDrop},
			})})
	}
	if err := cc.Flush(); err != nil {
		return fmt.Errorf("firewall: install table inet %s: %w", f.cfg.Table, err)
	}
	return nil
}

// Remove deletes the table (nothing when it is absent) and closes the socket.
func (f *Firewall) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &nftables.Table{Name: f.cfg.Table, Family: nftables.TableFamilyINet}
	f.nft.AddTable(t) // makes the delete succeed when the table is absent
	f.nft.DelTable(t)
	err := f.nft.Flush()
	if cerr := f.nft.CloseLasting(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("firewall: remove table inet %s: %w", f.cfg.Table, err)
	}
	return nil
}

// Dropped is the number of packets the table dropped so far.
func (f *Firewall) Dropped() (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &nftables.Table{Name: f.cfg.Table, Family: nftables.TableFamilyINet}
	rules, err := f.nft.GetRules(t, &nftables.Chain{Name: "input", Table: t})
	if err != nil {
		return 0, fmt.Errorf("firewall: read rules of inet %s: %w", f.cfg.Table, err)
	}
	var n uint64
	for _, r := range rules {
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				n += c.Packets
			}
		}
	}
	return n, nil
}

type rule struct {
	family, proto byte
	port          uint16
}

func (f *Firewall) rules() []rule {
	var out []rule
	for _, fam := range []byte{unix.NFPROTO_IPV4, unix.NFPROTO_IPV6} {
		for _, p := range f.cfg.TCPPorts {
			out = append(out, rule{fam, unix.IPPROTO_TCP, p})
		}
		for _, p := range f.cfg.UDPPorts {
			out = append(out, rule{fam, unix.IPPROTO_UDP, p})
		}
	}
	return out
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func load(base expr.PayloadBase, off, n uint32) []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: n}}
}

func eq(b []byte) []expr.Any {
	return []expr.Any{&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b}}
}

func notLoopback() []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, "lo")
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: name}}
}
