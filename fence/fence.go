package fence

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrMissing is wrapped by Check's error when the fence is (partly) gone.
var ErrMissing = errors.New("fence missing")

// ErrExpired is wrapped by RefreshUntil's error when the VIP's element was
// no longer there when the kernel processed the refresh: it had expired
// (or was deleted), so the fence lapsed under the caller, and the refresh,
// aborted as a whole, did not revive it. The VIP stays silent until a
// first arm of a new term (ArmUntil).
var ErrExpired = errors.New("fence element expired")

// Fence installs and refreshes the kernel fence for the VIPs of its Config.
// Its methods are safe for concurrent use.
type Fence struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	ns  netns.NsHandle

	// Lock order: nftMu, rawMu, mu. Check takes only nftMu, so the
	// renewal path (Arm: rawMu) never waits for a check's netlink dumps;
	// Install, Repair and Remove take both, so no Arm slips between their
	// snapshot of the armed VIPs and the table replacement.
	nftMu sync.Mutex
	nft   *nftables.Conn // guarded by nftMu
	rawMu sync.Mutex
	raw   *netlink.Conn  // guarded by rawMu
	rb    *nftables.Conn // guarded by rawMu: reads armed elements back
	// beforeSend, when set (tests only), runs between computing an arm's
	// relative timeout and sending it: a stall injected there is what the
	// read-back must correct.
	beforeSend func()
	// kick wakes Run for a check at once (an Arm found the tables gone,
	// or the kernel announced a change to them).
	kick chan struct{}

	mu    sync.Mutex
	armed map[netip.Addr]time.Time // end of each VIP's last Arm (monotonic)
	// installed is true between a successful Install and Remove: Check
	// reports a missing fence only when one should be there.
	installed bool
	closed    bool
}

// New validates cfg and opens netlink sockets in the network namespace of
// the calling OS thread. It changes nothing in the kernel. logger and reg
// may be nil.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Fence, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fence: config: %w", err)
	}
	cfg.VIPs = slices.Clone(cfg.VIPs)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mt, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("fence: open network namespace: %w", err)
	}
	f := &Fence{cfg: cfg, m: mt, ns: ns, armed: map[netip.Addr]time.Time{}, kick: make(chan struct{}, 1),
		log: logger.With("component", "fence", "table", cfg.Table, "interface", cfg.Interface)}
	// The sockets open in the calling thread's namespace, which ns is:
	// no setns(2), which would need CAP_SYS_ADMIN.
	if f.nft, err = nftables.New(nftables.AsLasting()); err != nil {
		f.Close()
		return nil, fmt.Errorf("fence: open nftables netlink: %w", err)
	}
	if f.rb, err = nftables.New(nftables.AsLasting()); err != nil {
		f.Close()
		return nil, fmt.Errorf("fence: open nftables netlink: %w", err)
	}
	if f.raw, err = netlink.Dial(unix.NETLINK_NETFILTER, nil); err != nil {
		f.Close()
		return nil, fmt.Errorf("fence: open netfilter netlink: %w", err)
	}
	return f, nil
}

// Close releases the sockets. It leaves the fence in the kernel (Remove
// takes it out).
func (f *Fence) Close() error {
	f.nftMu.Lock()
	defer f.nftMu.Unlock()
	f.rawMu.Lock()
	defer f.rawMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	var errs []error
	if f.nft != nil {
		errs = append(errs, f.nft.CloseLasting())
	}
	if f.rb != nil {
		errs = append(errs, f.rb.CloseLasting())
	}
	if f.raw != nil {
		errs = append(errs, f.raw.Close())
	}
	if f.ns.IsOpen() {
		errs = append(errs, f.ns.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fence: close: %w", err)
	}
	return nil
}

// Install replaces the fence's tables atomically. Every VIP starts fenced
// (silent) unless an earlier Arm of this Fence still has time left. Call it
// at start-up, before the election can make this node a holder.
func (f *Fence) Install() error {
	f.nftMu.Lock()
	defer f.nftMu.Unlock()
	f.rawMu.Lock()
	defer f.rawMu.Unlock()
	if err := f.installLocked(); err != nil {
		return err
	}
	f.log.Info("fence installed", "vips", len(f.cfg.VIPs))
	return nil
}

// installLocked replaces the tables; called with nftMu and rawMu held. A
// VIP armed before gets what is left of its last arm, read back and
// corrected like an Arm's.
func (f *Fence) installLocked() error {
	f.mu.Lock()
	closed := f.closed
	now := time.Now()
	live := map[netip.Addr]time.Duration{}
	ends := map[netip.Addr]time.Time{}
	for a, end := range f.armed {
		if d := end.Sub(now).Truncate(time.Millisecond); d >= time.Millisecond {
			live[a] = d
			ends[a] = end
		}
	}
	f.mu.Unlock()
	if closed {
		return errors.New("fence: install: closed")
	}
	for _, ts := range layout {
		addTable(f.nft, ts, f.cfg.Table, f.cfg.Interface, f.cfg.VIPs, live)
	}
	if f.beforeSend != nil {
		f.beforeSend()
	}
	if err := f.nft.Flush(); err != nil {
		return fmt.Errorf("fence: install table %s on %s: %w", f.cfg.Table, f.cfg.Interface, err)
	}
	f.mu.Lock()
	f.installed = true
	f.mu.Unlock()
	var errs []error
	for a, end := range ends {
		errs = append(errs, f.readBackLocked(a, end, false))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fence: install table %s on %s: %w", f.cfg.Table, f.cfg.Interface, err)
	}
	return nil
}

// RemoveTables deletes the fence tables called table in the calling
// thread's network namespace, without a Fence: for tables a previous
// configuration left behind (the fence or the VIP turned off since). It
// succeeds when they are already gone.
func RemoveTables(table string) error {
	if !tableName.MatchString(table) {
		return fmt.Errorf("fence: remove: table %q: must be 1-63 letters, digits or _, not starting with a digit", table)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("fence: open nftables netlink: %w", err)
	}
	return delTables(c, table)
}

// LiveFor returns how much longer the fence tables called table, in the
// calling thread's network namespace, let vip answer: the latest expiry of
// its element in the live sets, without a Fence. It is zero when vip is in
// no live set, and also when a table is missing: without the fence nothing
// silences vip (a flushed ruleset), so it answers as long as it is
// configured. `masterd cleanup` uses it to delete a dead holder's VIP the
// moment the kernel silences it, not later.
func LiveFor(table string, vip netip.Addr) (time.Duration, error) {
	if !tableName.MatchString(table) {
		return 0, fmt.Errorf("fence: live time of %s: table %q: must be 1-63 letters, digits or _, not starting with a digit", vip, table)
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return 0, fmt.Errorf("fence: open netfilter netlink: %w", err)
	}
	defer c.Close()
	left, _, err := liveFor(c, table, vip)
	if err != nil {
		return 0, fmt.Errorf("fence: live time of %s: %w", vip, err)
	}
	return left, nil
}

// delTables deletes table in every family of the layout (adding it first, so
// that a missing table is no error) in one batch.
func delTables(c *nftables.Conn, table string) error {
	for _, ts := range layout {
		t := &nftables.Table{Name: table, Family: ts.family}
		c.AddTable(t)
		c.DelTable(t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("fence: remove table %s: %w", table, err)
	}
	return nil
}

// Remove deletes the fence's tables (uninstall, or a clean stop after the
// VIP was released). It succeeds when they are already gone.
func (f *Fence) Remove() error {
	f.nftMu.Lock()
	defer f.nftMu.Unlock()
	f.rawMu.Lock()
	defer f.rawMu.Unlock()
	if f.isClosed() {
		return errors.New("fence: remove: closed")
	}
	if err := delTables(f.nft, f.cfg.Table); err != nil {
		return err
	}
	f.mu.Lock()
	f.installed = false
	clear(f.armed)
	f.mu.Unlock()
	return nil
}

func (f *Fence) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// Arm lets vip answer and carry traffic for d from now; then the kernel
// silences it unless Arm is called again. d under one millisecond disarms.
// Prefer ArmUntil: d computed by the caller ages while Arm waits.
func (f *Fence) Arm(vip netip.Addr, d time.Duration) error {
	return f.ArmUntil(vip, time.Now().Add(d))
}

// ArmUntil lets vip answer and carry traffic until end (monotonic), then
// the kernel silences it unless armed again. The remaining time is taken
// just before the netlink message is built and rounded down to a
// millisecond; the kernel starts it when it processes the message, so a
// stall between the two (SIGSTOP, CPU throttling, preemption) would push
// the expiry past end by the stall's length. ArmUntil therefore reads the
// element's expiry back from the kernel after every arm and, if it lies
// past end (beyond ExpirySlack), re-arms it shorter, and disarms it when
// that does not help (see readBackLocked). Call it only right after a lease
// renewal was validated, with end = lease deadline - margin (the margin
// must cover ExpirySlack). An end less than a millisecond away disarms.
// When the fence's tables are gone, the error wraps ErrMissing and Run is
// woken to repair them at once.
func (f *Fence) ArmUntil(vip netip.Addr, end time.Time) error {
	if !slices.Contains(f.cfg.VIPs, vip) {
		return fmt.Errorf("fence: arm %s: not a fenced vip", vip)
	}
	f.rawMu.Lock()
	defer f.rawMu.Unlock()
	if f.isClosed() {
		return fmt.Errorf("fence: arm %s: closed", vip)
	}
	if err := f.armLocked(vip, end, false); err != nil {
		return err
	}
	return f.readBackLocked(vip, end, false)
}

// RefreshUntil extends vip's live element, armed earlier in the same term,
// until end: every arm after the first one of a term. Unlike ArmUntil it
// never creates the element: it sends one batch that deletes the element
// and adds it with the new timeout, and the kernel aborts the whole batch
// when the delete finds no element. An element that expired before the
// kernel processed the refresh (a stall between computing the timeout and
// the send longer than what was left of it) therefore stays expired, and
// RefreshUntil returns an error wrapping ErrExpired: the fence lapsed
// under a role the caller still holds, and must not come back in that
// term. Otherwise it is ArmUntil: read back and corrected, an error
// wrapping ErrMissing when the tables are gone, an end less than a
// millisecond away disarms.
func (f *Fence) RefreshUntil(vip netip.Addr, end time.Time) error {
	if !slices.Contains(f.cfg.VIPs, vip) {
		return fmt.Errorf("fence: refresh %s: not a fenced vip", vip)
	}
	f.rawMu.Lock()
	defer f.rawMu.Unlock()
	if f.isClosed() {
		return fmt.Errorf("fence: refresh %s: closed", vip)
	}
	if err := f.armLocked(vip, end, true); err != nil {
		return err
	}
	return f.readBackLocked(vip, end, true)
}

// armLocked sends one arm of vip until end; called with rawMu held. A
// first arm (refresh false) adds the element, creating it when absent. A
// refresh deletes and re-adds it in one batch per the tables: when the
// element is gone, the delete fails with ENOENT, the kernel aborts the
// batch (the add included) and armLocked returns an error wrapping
// ErrExpired. When a table or set is gone, the add fails with ENOENT too:
// that is ErrMissing.
func (f *Fence) armLocked(vip netip.Addr, end time.Time, refresh bool) error {
	op := "arm"
	if refresh {
		op = "refresh"
	}
	start := time.Now()
	d := end.Sub(start).Truncate(time.Millisecond)
	if d < time.Millisecond {
		return f.disarmLocked(vip)
	}
	ms := uint64(d / time.Millisecond)
	var msgs []netlink.Message
	for _, ts := range layout {
		if vip.Is6() && !ts.v6 {
			continue
		}
		if refresh {
			m, err := elemMsg(unix.NFT_MSG_DELSETELEM, ts.family, f.cfg.Table, liveSet(vip), key(vip), 0)
			if err != nil {
				return fmt.Errorf("fence: %s %s: %w", op, vip, err)
			}
			msgs = append(msgs, m)
		}
		m, err := elemMsg(unix.NFT_MSG_NEWSETELEM, ts.family, f.cfg.Table, liveSet(vip), key(vip), ms)
		if err != nil {
			return fmt.Errorf("fence: %s %s: %w", op, vip, err)
		}
		msgs = append(msgs, m)
	}
	if f.beforeSend != nil {
		f.beforeSend()
	}
	res, err := f.execBatchResults(msgs)
	if err != nil {
		return fmt.Errorf("fence: %s %s for %s: %w", op, vip, d, errors.Join(append(res, err)...))
	}
	if err := errors.Join(res...); err != nil {
		// Which message failed tells why: an add (NEWSETELEM) fails only
		// when its table or set is gone; a refresh's delete alone fails
		// when the element is.
		var addMissing, delMissing bool
		var delErr error
		for i, r := range res {
			if !errors.Is(r, unix.ENOENT) {
				continue
			}
			if refresh && i%2 == 0 {
				delMissing = true
				delErr = r
			} else {
				addMissing = true
			}
		}
		switch {
		case addMissing:
			// The tables are gone (nft flush ruleset): the VIP is unfenced
			// right now. Run repairs at once instead of at its next tick.
			f.wake()
			return fmt.Errorf("fence: %s %s for %s: %w: %w", op, vip, d, ErrMissing, err)
		case delMissing:
			f.mu.Lock()
			delete(f.armed, vip)
			f.mu.Unlock()
			f.m.expiredRefreshes.Inc()
			return fmt.Errorf("fence: %s %s for %s: the element was gone when the kernel got the refresh, batch aborted: %w: %w", op, vip, d, ErrExpired, delErr)
		}
		return fmt.Errorf("fence: %s %s for %s: %w", op, vip, d, err)
	}
	f.mu.Lock()
	f.armed[vip] = start.Add(d)
	f.mu.Unlock()
	f.m.armDuration.Observe(time.Since(start).Seconds())
	return nil
}

// wake asks Run for a check now.
func (f *Fence) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Disarm silences vip at once (graceful release). It succeeds when vip is
// not armed.
func (f *Fence) Disarm(vip netip.Addr) error {
	if !slices.Contains(f.cfg.VIPs, vip) {
		return fmt.Errorf("fence: disarm %s: not a fenced vip", vip)
	}
	f.rawMu.Lock()
	defer f.rawMu.Unlock()
	if f.isClosed() {
		return fmt.Errorf("fence: disarm %s: closed", vip)
	}
	return f.disarmLocked(vip)
}

// disarmLocked is Disarm with rawMu held.
func (f *Fence) disarmLocked(vip netip.Addr) error {
	f.mu.Lock()
	delete(f.armed, vip)
	f.mu.Unlock()
	// Add then delete in one batch: deleting an absent element fails the
	// whole batch, adding first makes the delete always valid.
	var msgs []netlink.Message
	for _, ts := range layout {
		if vip.Is6() && !ts.v6 {
			continue
		}
		add, err := elemMsg(unix.NFT_MSG_NEWSETELEM, ts.family, f.cfg.Table, liveSet(vip), key(vip), 1)
		if err != nil {
			return fmt.Errorf("fence: disarm %s: %w", vip, err)
		}
		del, err := elemMsg(unix.NFT_MSG_DELSETELEM, ts.family, f.cfg.Table, liveSet(vip), key(vip), 0)
		if err != nil {
			return fmt.Errorf("fence: disarm %s: %w", vip, err)
		}
		msgs = append(msgs, add, del)
	}
	if err := f.execBatch(msgs); err != nil {
		return fmt.Errorf("fence: disarm %s: %w", vip, err)
	}
	return nil
}

// Check verifies that the tables, chains, rules and vips sets are all in
// place. It returns nil before Install and after Remove. A missing piece
// is counted in masterd_vip_fence_missing_total and reported as an error
// wrapping ErrMissing.
func (f *Fence) Check() error {
	f.nftMu.Lock()
	defer f.nftMu.Unlock()
	f.mu.Lock()
	skip := !f.installed || f.closed
	f.mu.Unlock()
	if skip {
		return nil
	}
	problems, err := f.inspectLocked()
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		f.m.missing.Inc()
		return fmt.Errorf("fence: check table %s: %w: %w", f.cfg.Table, ErrMissing, errors.Join(problems...))
	}
	return nil
}

func (f *Fence) inspectLocked() ([]error, error) {
	var problems []error
	for _, ts := range layout {
		tables, err := f.nft.ListTablesOfFamily(ts.family)
		if err != nil {
			return nil, fmt.Errorf("fence: list tables: %w", err)
		}
		fam := familyName(ts.family)
		if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == f.cfg.Table }) {
			problems = append(problems, fmt.Errorf("table %s %s missing", fam, f.cfg.Table))
			continue
		}
		t := &nftables.Table{Name: f.cfg.Table, Family: ts.family}
		for _, cs := range ts.chains {
			rules, err := f.nft.GetRules(t, &nftables.Chain{Name: cs.name, Table: t})
			if err != nil {
				if errors.Is(err, unix.ENOENT) {
					problems = append(problems, fmt.Errorf("chain %s %s %s missing", fam, f.cfg.Table, cs.name))
					continue
				}
				return nil, fmt.Errorf("fence: list rules of %s %s: %w", fam, cs.name, err)
			}
			if len(rules) != cs.rules {
				problems = append(problems, fmt.Errorf("chain %s %s %s has %d rules, want %d", fam, f.cfg.Table, cs.name, len(rules), cs.rules))
			}
		}
		for _, name := range ts.setNames() {
			set, err := f.nft.GetSetByName(t, name)
			if err != nil {
				problems = append(problems, fmt.Errorf("set %s %s %s missing", fam, f.cfg.Table, name))
				continue
			}
			if name != setVIPs4 && name != setVIPs6 {
				continue
			}
			elems, err := f.nft.GetSetElements(set)
			if err != nil {
				return nil, fmt.Errorf("fence: list set %s %s: %w", fam, name, err)
			}
			want := 0
			for _, a := range f.cfg.VIPs {
				if a.Is4() == (name == setVIPs4) {
					want++
				}
			}
			if len(elems) != want {
				problems = append(problems, fmt.Errorf("set %s %s %s has %d elements, want %d", fam, f.cfg.Table, name, len(elems), want))
			}
		}
	}
	return problems, nil
}

func familyName(fam nftables.TableFamily) string {
	switch fam {
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyNetdev:
		return "netdev"
	case nftables.TableFamilyINet:
		return "inet"
	}
	return fmt.Sprint(int(fam))
}

// Repair reinstalls the fence atomically; each VIP armed before gets what
// is left of its last Arm, never more.
func (f *Fence) Repair() error {
	f.nftMu.Lock()
	defer f.nftMu.Unlock()
	f.rawMu.Lock()
	defer f.rawMu.Unlock()
	if err := f.installLocked(); err != nil {
		return fmt.Errorf("fence: repair: %w", err)
	}
	f.m.repairs.Inc()
	f.log.Warn("fence repaired")
	return nil
}
