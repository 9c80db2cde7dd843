package vip

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/masterd/masterd/internal/ownns"
)

// Run watches the VIP until ctx ends: it puts a held VIP back when something
// else removes it, and reports other hosts answering for it. Call it once,
// in its own goroutine, for the manager's lifetime; it returns nil when ctx
// ends or the manager is closed.
func (m *Manager) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	wg.Go(func() { m.watchAddresses(ctx) })
	wg.Go(func() { m.readClaims(ctx) })
	if m.cfg.ConflictProbeInterval > 0 {
		wg.Go(func() { m.probe(ctx) })
	}
	wg.Wait()
	return nil
}

// watchAddresses follows netlink address updates, resubscribing after
// errors (a full receive buffer loses events, so every (re)subscription is
// followed by a check of the current state).
func (m *Manager) watchAddresses(ctx context.Context) {
	for ctx.Err() == nil {
		ch := make(chan netlink.AddrUpdate, 64)
		done := make(chan struct{})
		err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
			Namespace: ownns.Handle(&m.ns), // nil in masterd: no setns

			ErrorCallback: func(err error) { m.log.Debug("address subscription error", "err", err) },
		})
		if err != nil {
			m.log.Warn("subscribe to address updates failed", "err", err)
			close(done)
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		m.ensurePresent()
	loop:
		for {
			select {
			case <-ctx.Done():
				close(done)
				for range ch {
				}
				return
			case u, ok := <-ch:
				if !ok {
					break loop
				}
				if u.NewAddr {
					continue
				}
				p, ok := netipPrefix(&u.LinkAddress)
				if ok && p.Addr() == m.cfg.Address {
					m.ensurePresent()
				}
			}
		}
		close(done)
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return
		}
	}
}

// ensurePresent adds the held VIP back if it is missing from its interface.
// A VIP missing because its lifetime ran out without Refresh is not put
// back: the holder stopped refreshing, the backstop did its job.
func (m *Manager) ensurePresent() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.owned || m.closed {
		return
	}
	link := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: m.ifindex}}
	addrs, err := m.h.AddrList(link, m.family())
	if err != nil {
		m.log.Warn("list addresses failed", "interface", m.ifname, "err", err)
		return
	}
	for _, a := range addrs {
		if p, ok := netipPrefix(a.IPNet); ok && p.Addr() == m.cfg.Address {
			return
		}
	}
	if since := time.Since(m.lastRefresh); since >= m.cfg.ValidLifetime-time.Second {
		m.owned = false
		m.m.owned.Set(0)
		m.ann.Stop()
		m.log.Warn("vip lifetime ran out without refresh", "interface", m.ifname, "since_refresh_seconds", since.Seconds())
		return
	}
	if err := m.h.AddrReplace(link, m.nlAddr(m.ifindex)); err != nil {
		m.log.Error("re-add externally removed vip failed", "interface", m.ifname, "err", err)
		return
	}
	m.lastRefresh = time.Now()
	m.m.removedExternally.Inc()
	m.log.Warn("vip removed externally, added back", "interface", m.ifname)
	m.ann.Announce(m.link(), true)
}

// readClaims reads ARP frames (or neighbour advertisements) on the VIP's
// interface and reports another MAC answering for the held VIP.
func (m *Manager) readClaims(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { _ = m.recv.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 2048)
	for ctx.Err() == nil {
		n, err := m.recv.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || ctx.Err() != nil {
				return
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				m.log.Debug("read packet socket failed", "err", err)
				if !sleepCtx(ctx, 100*time.Millisecond) {
					return
				}
			}
			continue
		}
		var c claim
		var ok bool
		if m.cfg.Address.Is4() {
			c, ok = parseARPClaim(buf[:n])
		} else {
			c, ok = parseNAClaim(buf[:n])
		}
		if !ok || c.addr != m.cfg.Address {
			continue
		}
		m.checkClaim(c.mac)
	}
}

func (m *Manager) checkClaim(mac net.HardwareAddr) {
	m.mu.Lock()
	owned, own, ifname := m.owned, m.mac, m.ifname
	if !owned || bytes.Equal(mac, own) || bytes.Equal(mac, zeroMAC) {
		m.mu.Unlock()
		return
	}
	m.m.conflicts.Inc()
	if m.lastLogged == nil {
		m.lastLogged = make(map[string]time.Time, conflictLogMACs)
	}
	logIt := allowConflictLog(m.lastLogged, mac, time.Now())
	m.mu.Unlock()
	if !logIt {
		m.m.conflictLogsSuppressed.Inc()
		return
	}
	m.log.Warn("another host answers for the vip", "interface", ifname, "other_mac", mac.String(), "own_mac", own.String())
}

// Conflict log limits. Anyone on the LAN can send claims for the VIP from
// any number of made-up MACs, so both the memory and the log lines they
// cost are bounded: one line per other MAC per conflictLogEvery, and lines
// for at most conflictLogMACs MACs per conflictLogEvery in all. The rest
// are counted in masterd_vip_conflict_logs_suppressed_total, and
// masterd_vip_conflicts_total counts every frame.
const (
	// conflictLogEvery bounds the lines of one persisting conflict.
	conflictLogEvery = 10 * time.Second
	// conflictLogMACs: a real conflict involves one or two other hosts (a
	// keepalived left running, a duplicate static address); eight leaves
	// room for those while a flood of made-up MACs costs 8 lines per 10 s.
	conflictLogMACs = 8
)

// allowConflictLog reports whether a claim by mac seen at now may be logged,
// and records it in logged (MAC as raw bytes -> when its line was written).
// logged never holds more than conflictLogMACs entries: entries older than
// conflictLogEvery are pruned when it is full, and while every entry is
// younger than that, a new MAC is not logged. Every line leaves an entry for
// conflictLogEvery, so no window of that length has more than
// conflictLogMACs lines.
func allowConflictLog(logged map[string]time.Time, mac net.HardwareAddr, now time.Time) bool {
	if last, ok := logged[string(mac)]; ok {
		if now.Sub(last) < conflictLogEvery {
			return false
		}
		logged[string(mac)] = now
		return true
	}
	if len(logged) >= conflictLogMACs {
		for k, last := range logged {
			if now.Sub(last) >= conflictLogEvery {
				delete(logged, k)
			}
		}
		if len(logged) >= conflictLogMACs {
			return false
		}
	}
	logged[string(mac)] = now
	return true
}

// probe asks for the VIP every ConflictProbeInterval while it is held.
func (m *Manager) probe(ctx context.Context) {
	t := time.NewTicker(m.cfg.ConflictProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		owned, ifindex, mac := m.owned, m.ifindex, m.mac
		m.mu.Unlock()
		if !owned {
			continue
		}
		f := arpProbeFrame
		if m.cfg.Address.Is6() {
			f = nsProbeFrame
		}
		if err := m.sendFrame(ifindex, f(mac, m.cfg.Address)); err != nil {
			m.log.Debug("send conflict probe failed", "err", err)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
