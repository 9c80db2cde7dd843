package fence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Reading an armed element's expiry back from the kernel.
//
// An arm's timeout is relative: ArmUntil computes end - now before the
// message is sent, and the kernel starts counting when it processes it. A
// stall between the two (SIGSTOP, CPU throttling, preemption, a slow
// netlink send) pushes the element's expiry past end by the stall's
// length, and past the lease deadline when the stall is longer than the
// holder's margin: measured, a 300 ms stall left the element 300 ms past
// its end. So every arm is read back (one GETSETELEM dump per table, on
// the same socket as the arm) and checked against end with a clock read
// after the dump returned.

// ExpirySlack is how far past the requested end a read-back expiry may lie
// without a correction: the kernel keeps expiries in jiffies (4 ms at
// HZ=250, the coarsest setting in use) and reports them in whole
// milliseconds. The holder's margin before its lease deadline (the agent's
// 10 ms) must cover it.
const ExpirySlack = 5 * time.Millisecond

// maxRearms is how many shorter re-arms a read-back tries before it
// deletes the element: a second overshoot in a row means the stalls go on,
// and a deleted element only silences the VIP until the next renewal.
const maxRearms = 1

// maxRereads is how many times a read-back whose window (a stall during
// the dump) leaves it undecided is read again before it is taken as late.
const maxRereads = 3

// readBackLocked reads vip's element back and corrects it against end
// (re-computed against the clock now): re-armed shorter when it lies more
// than ExpirySlack past end, deleted when re-arming does not help or the
// expiry cannot be read (an unknown expiry is not trusted). The shorter
// re-arm is a refresh (delete and add in one batch): it never revives an
// element that expired meanwhile. After a refresh (refresh true), an
// element found gone is an error wrapping ErrExpired: it expired between
// the refresh and the read-back, the fence lapsed under a held role.
// Called with rawMu held, right after an arm.
func (f *Fence) readBackLocked(vip netip.Addr, end time.Time, refresh bool) error {
	rereads := 0
	for rearms := 0; ; rearms++ {
		before := time.Now()
		left, missing, err := liveFor(f.raw, f.cfg.Table, vip)
		now := time.Now() // after the dump: now+left never understates the expiry
		if err != nil {
			derr := f.disarmLocked(vip)
			return fmt.Errorf("fence: arm %s: read back expiry (disarmed): %w", vip, errors.Join(err, derr))
		}
		if missing {
			f.wake()
			return fmt.Errorf("fence: arm %s: read back expiry: %w", vip, ErrMissing)
		}
		if left == 0 {
			if refresh || rearms > 0 {
				f.mu.Lock()
				delete(f.armed, vip)
				f.mu.Unlock()
				f.m.expiredRefreshes.Inc()
				return fmt.Errorf("fence: arm %s: read back: element gone: %w", vip, ErrExpired)
			}
			return nil
		}
		over := now.Add(left).Sub(end)
		if over <= ExpirySlack {
			return nil
		}
		// The kernel computed left somewhere between before and now: a
		// reading dated before the dump within the slack but dated after
		// it past the slack is a stall of this process during the read,
		// not a late element. Read again (a read changes nothing) rather
		// than re-arm or disarm a fence that is right.
		if before.Add(left).Sub(end) <= ExpirySlack && rereads < maxRereads {
			rereads++
			rearms--
			continue
		}
		f.m.corrections.Inc()
		if rearms == maxRearms {
			if err := f.disarmLocked(vip); err != nil {
				return fmt.Errorf("fence: arm %s: expiry %s past its end after %d re-arms, disarm: %w", vip, over, rearms, err)
			}
			f.log.Warn("fence expiry past its end again: disarmed", "vip", vip.String(), "over_seconds", over.Seconds())
			return fmt.Errorf("fence: arm %s: expiry %s past its end after %d re-arms: disarmed", vip, over, rearms)
		}
		f.log.Warn("fence expiry past its end: re-arming shorter", "vip", vip.String(), "over_seconds", over.Seconds())
		if err := f.armLocked(vip, end, true); err != nil {
			return err
		}
	}
}

// liveFor returns the latest remaining expiry of vip's element in the live
// sets of the fence tables called table, read on c (a netfilter netlink
// socket), counted from when it returns: zero when vip is in no live set
// (or its latest expiry has passed by then), and missing when a table or
// set is gone. Each table's remaining time is dated by a clock read right
// after its own dump, so a delay between the dumps (preemption on a
// loaded host) is not counted as time left; the expiry is still never
// understated.
func liveFor(c *netlink.Conn, table string, vip netip.Addr) (left time.Duration, missing bool, err error) {
	var latest time.Time
	for _, ts := range layout {
		if vip.Is6() && !ts.v6 {
			continue
		}
		d, err := dumpElement(c, ts.family, table, liveSet(vip), key(vip))
		at := time.Now()
		if errors.Is(err, unix.ENOENT) {
			return 0, true, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("%s %s set %s: %w", familyName(ts.family), table, liveSet(vip), err)
		}
		if exp := at.Add(d); d > 0 && exp.After(latest) {
			latest = exp
		}
	}
	if latest.IsZero() {
		return 0, false, nil
	}
	return max(time.Until(latest), 0), false, nil
}

// dumpElement lists set in table of family and returns the remaining
// expiry of the element with key k (zero when it is not there).
func dumpElement(c *netlink.Conn, family nftables.TableFamily, table, set string, k []byte) (time.Duration, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, table)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, set)
	data, err := ae.Encode()
	if err != nil {
		return 0, fmt.Errorf("encode dump: %w", err)
	}
	if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return 0, fmt.Errorf("set read deadline: %w", err)
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
			Flags: netlink.Request | netlink.Dump},
		Data: append(nfgenmsg(uint8(family), 0), data...),
	})
	if err != nil {
		return 0, err
	}
	var left time.Duration
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("decode dump: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				continue
			}
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					list.Nested(func(e *netlink.AttributeDecoder) error {
						var key []byte
						var exp time.Duration
						for e.Next() {
							switch e.Type() {
							case unix.NFTA_SET_ELEM_KEY:
								e.Nested(func(kd *netlink.AttributeDecoder) error {
									for kd.Next() {
										if kd.Type() == unix.NFTA_DATA_VALUE {
											key = kd.Bytes()
										}
									}
									return nil
								})
							case unix.NFTA_SET_ELEM_EXPIRATION:
								exp = time.Duration(e.Uint64()) * time.Millisecond
							}
						}
						if string(key) == string(k) {
							left = max(left, exp)
						}
						return nil
					})
				}
				return nil
			})
		}
		if err := ad.Err(); err != nil {
			return 0, fmt.Errorf("decode dump: %w", err)
		}
	}
	return left, nil
}

// Armed reads from the kernel how much longer vip's element in the
// fence's live sets lets it answer: zero when it is disarmed or expired,
// or the tables are gone. A release verifies with it that Disarm took.
func (f *Fence) Armed(vip netip.Addr) (time.Duration, error) {
	f.rawMu.Lock()
	defer f.rawMu.Unlock()
	if f.isClosed() {
		return 0, fmt.Errorf("fence: read %s: closed", vip)
	}
	left, _, err := liveFor(f.raw, f.cfg.Table, vip)
	if err != nil {
		return 0, fmt.Errorf("fence: read %s: %w", vip, err)
	}
	return left, nil
}
