package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
)

// Growing and shrinking the lab: the hosts of masters added to (or removed
// from) a running cluster with `masterd member add/remove`. The lab only
// provides the machines; the membership commands are the test's.

// addedNameRE is the short name of an added master ("m4"): it becomes the
// bridge port's name and, after the prefix, the host's.
var addedNameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

// AddMaster brings up the host of a new master named <prefix>-name (name
// like "m4") with an address of the subnet no master of the lab has had
// (the next after the highest so far, up to .99), on the bridge like the
// others. It is
// provisioned as README's "Operations: adding ... masters" says for a new
// master: the masterd package installed from the lab's .deb, the cluster
// key copied (0600), masterd.yaml like the others' with this host's name
// and address and peers listing every master of the lab and itself (what
// `masterd member add` prints), an empty data dir, masterd enabled but not
// started: the test runs `masterd member add` on a master of the cluster,
// then StartMasterd. The host is one of Masters() from now on, and Down
// removes it with the rest.
//
// AddMaster and RetireMaster change the list of masters: do not call them
// while another method of the lab runs (a Monitor opened earlier keeps
// sampling the masters of then; open a new one to sample the new host).
func (l *Lab) AddMaster(ctx context.Context, name string) (*Master, error) {
	if !addedNameRE.MatchString(name) {
		return nil, fmt.Errorf("lab: add master %q: want a short name like m4 ([a-z][a-z0-9]*, at most 8 characters)", name)
	}
	full := l.opts.Prefix + "-" + name
	for _, m := range l.masters {
		if m.Name == full || m.Port == name {
			return nil, fmt.Errorf("lab: add master %s: the lab has it already", full)
		}
	}
	if l.lastOctet >= 99 {
		return nil, fmt.Errorf("lab: add master %s: no free address left in .11-.99 of %v", full, l.opts.Subnet)
	}
	l.lastOctet++
	base := l.opts.Subnet.Masked().Addr().As4()
	base[3] = l.lastOctet
	m := &Master{Name: full, Addr: netip.AddrFrom4(base), Port: name, lab: l}
	l.progress("%s: new master at %v (masterd not started)", m.Name, m.Addr)
	var err error
	for _, c := range l.attachCmds(m.Name, m.Port, m.Addr) {
		if _, err = run(ctx, c...); err != nil {
			break
		}
	}
	// Listed before it boots: its masterd.yaml lists every master and itself.
	l.masters = append(slices.Clip(l.masters), m)
	if err == nil {
		err = m.provision(ctx, nil, false)
	}
	if err == nil {
		err = l.saveState()
	}
	if err != nil {
		if rerr := l.RetireMaster(ctx, m); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, fmt.Errorf("lab: add master %s: %w", m.Name, err)
	}
	return m, nil
}

// RetireMaster takes a master's machine away for good, once the cluster no
// longer lists it (`masterd member remove`) or it is lost: its host is
// powered off, its network namespace (and so its bridge port) deleted, and
// it is no longer one of Masters(). See AddMaster on concurrency.
func (l *Lab) RetireMaster(ctx context.Context, m *Master) error {
	i := slices.Index(l.masters, m)
	if i < 0 {
		return fmt.Errorf("lab: retire %s: not a master of this lab", m.Name)
	}
	l.progress("%s: retired (host off, namespace deleted)", m.Name)
	var errs []error
	if h := m.Host(); h != nil {
		errs = append(errs, h.Close())
	}
	killInNetNS([]string{m.Name})
	if out, err := run(ctx, "ip", "netns", "delete", m.Name); err != nil && !notExist(out) {
		errs = append(errs, err)
	}
	l.masters = slices.Delete(slices.Clone(l.masters), i, i+1)
	errs = append(errs, l.saveState())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab: retire %s: %w", m.Name, err)
	}
	return nil
}

// notExist reports whether ip's output says the namespace is not there.
func notExist(out []byte) bool {
	return regexp.MustCompile(`No such file or directory|does not exist`).Match(out)
}
