package fence

import (
	"context"
	"errors"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/masterd/masterd/internal/ownns"
)

// Events are Run's callbacks. Run calls them from its own goroutine,
// serially, holding none of the fence's locks; they may call the Fence.
// Either may be nil.
type Events struct {
	// Missing: a check found the fence (partly) gone; err wraps
	// ErrMissing. From now until Repaired nothing silences a VIP in the
	// kernel: a holder must not rely on the fence (the agent drops the
	// VIP). Called once per outage, before the first repair attempt.
	Missing func(err error)
	// Repaired: the fence is back, each VIP armed with what was left of its
	// last arm (read back, never more). Called once per outage.
	Repaired func()
}

// missingRetry is how often Run retries a failed repair: while the fence
// is missing the holder does without the VIP, so waiting a whole
// CheckInterval would cost availability for nothing.
const missingRetry = 100 * time.Millisecond

// Run keeps the fence in place until ctx ends. It checks at once when the
// kernel announces that something deleted part of the fence's tables (a
// subscription to nftables' netlink notifications: `nft flush ruleset` is
// seen within a millisecond or so, not at the next tick), when an Arm finds
// the tables gone, and every Config.CheckInterval as a backstop (lost
// notifications, no subscription). A missing fence is reported through
// ev.Missing, reinstalled at once (Repair), and ev.Repaired follows; a
// failed repair is retried every 100 ms.
func (f *Fence) Run(ctx context.Context, ev Events) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := f.monitor(ctx); err != nil {
		f.log.Warn("fence change notifications unavailable: checking every interval only", "err", err,
			"interval_seconds", f.cfg.CheckInterval.Seconds())
	}
	t := time.NewTicker(f.cfg.CheckInterval)
	defer t.Stop()
	missing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.kick:
		}
		err := f.Check()
		if err == nil {
			if missing {
				// A repair that reinstalled the tables but failed
				// afterwards (an element's read-back) is still a repair:
				// without this the holder would wait for Repaired forever.
				missing = false
				t.Reset(f.cfg.CheckInterval)
				if ev.Repaired != nil {
					ev.Repaired()
				}
			}
			continue
		}
		if !errors.Is(err, ErrMissing) {
			f.log.Warn("fence check failed", "err", err)
			continue
		}
		if !missing {
			f.log.Error("fence missing", "err", err)
			missing = true
			t.Reset(min(missingRetry, f.cfg.CheckInterval))
			if ev.Missing != nil {
				ev.Missing(err)
			}
		}
		if err := f.Repair(); err != nil {
			f.log.Error("fence repair failed", "err", err)
			continue
		}
		missing = false
		t.Reset(f.cfg.CheckInterval)
		if ev.Repaired != nil {
			ev.Repaired()
		}
	}
}

// monitor subscribes to nftables' change notifications in the fence's
// network namespace and wakes Run whenever one deletes part of the
// fence's tables, until ctx ends.
func (f *Fence) monitor(ctx context.Context) error {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ownns.FD(f.ns), Groups: 1 << (unix.NFNLGRP_NFTABLES - 1)})
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		c.Close() // ends the Receive below
	}()
	go func() {
		for {
			msgs, err := c.Receive()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				// ENOBUFS: notifications were dropped, one may have been
				// ours. Anything else: check, and keep the ticker as the
				// only trigger if the socket is broken.
				f.wake()
				if !errors.Is(err, unix.ENOBUFS) {
					f.log.Warn("fence change notifications failed: checking every interval only", "err", err)
					return
				}
				continue
			}
			for _, m := range msgs {
				if f.concerns(m) {
					f.wake()
					break
				}
			}
		}
	}()
	return nil
}

// concerns reports whether a notification deletes something of the
// fence's tables: a table, chain, rule, set, or an element of a vips set
// (live set elements are deleted by Disarm itself).
func (f *Fence) concerns(m netlink.Message) bool {
	if uint16(m.Header.Type)>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
		return false
	}
	switch op := int(m.Header.Type & 0xff); op {
	case unix.NFT_MSG_DELTABLE, unix.NFT_MSG_DELCHAIN, unix.NFT_MSG_DELRULE, unix.NFT_MSG_DELSET, unix.NFT_MSG_DELSETELEM:
	default:
		return false
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return false
	}
	var table, set string
	for ad.Next() {
		// Attribute 1 is the table's name in every one of these messages
		// (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE,
		// NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE); 2 the set's for
		// elements (NFTA_SET_ELEM_LIST_SET).
		switch ad.Type() {
		case 1:
			table = ad.String()
		case 2:
			set = ad.String()
		}
	}
	if table != f.cfg.Table {
		return false
	}
	if int(m.Header.Type&0xff) == unix.NFT_MSG_DELSETELEM && (set == setLive4 || set == setLive6) {
		return false
	}
	return true
}
