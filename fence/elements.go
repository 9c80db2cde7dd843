package fence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Set element updates sent as raw nfnetlink batches: google/nftables does
// not send NFTA_SET_ELEM_EXPIRATION, without which the kernel keeps an
// element's old expiry when its timeout is unchanged.

// elemMsg is one NEWSETELEM/DELSETELEM for key in table/set of family.
// For NEWSETELEM, timeoutMs (>= 1) is sent as both timeout and expiration.
func elemMsg(op int, family nftables.TableFamily, table, set string, key []byte, timeoutMs uint64) (netlink.Message, error) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, table)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, set)
	ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(list *netlink.AttributeEncoder) error {
		list.Nested(1, func(e *netlink.AttributeEncoder) error {
			e.Nested(unix.NFTA_SET_ELEM_KEY, func(k *netlink.AttributeEncoder) error {
				k.Bytes(unix.NFTA_DATA_VALUE, key)
				return nil
			})
			if op == unix.NFT_MSG_NEWSETELEM {
				e.Uint64(unix.NFTA_SET_ELEM_TIMEOUT, timeoutMs)
				e.Uint64(unix.NFTA_SET_ELEM_EXPIRATION, timeoutMs)
			}
			return nil
		})
		return nil
	})
	data, err := ae.Encode()
	if err != nil {
		return netlink.Message{}, fmt.Errorf("encode set element: %w", err)
	}
	flags := netlink.Request | netlink.Acknowledge
	if op == unix.NFT_MSG_NEWSETELEM {
		flags |= netlink.Create
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | op), Flags: flags},
		Data:   append(nfgenmsg(uint8(family), 0), data...),
	}, nil
}

func nfgenmsg(family uint8, resID uint16) []byte {
	return []byte{family, unix.NFNETLINK_V0, byte(resID >> 8), byte(resID)}
}

// execBatch sends msgs between batch begin and end, and collects the one
// acknowledgement or error the kernel sends per message. Called with rawMu
// held (the socket is shared).
func (f *Fence) execBatch(msgs []netlink.Message) error {
	res, err := f.execBatchResults(msgs)
	return errors.Join(append(res, err)...)
}

// execBatchResults is execBatch with the kernel's answer to each message
// apart: res[i] is msgs[i]'s error, nil when it was acknowledged. The
// kernel processes every message of a batch even after one failed, and
// aborts the whole batch if any did; it then delivers one answer per
// message (each is sent with NLM_F_ACK) in the batch's order. err is a
// failure to send or receive.
func (f *Fence) execBatchResults(msgs []netlink.Message) (res []error, err error) {
	batch := make([]netlink.Message, 0, len(msgs)+2)
	batch = append(batch, netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request},
		Data:   nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES),
	})
	batch = append(batch, msgs...)
	batch = append(batch, netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: netlink.Request},
		Data:   nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES),
	})
	if _, err := f.raw.SendMessages(batch); err != nil {
		return nil, fmt.Errorf("send batch: %w", err)
	}
	if err := f.raw.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return nil, fmt.Errorf("set read deadline: %w", err)
	}
	res = make([]error, len(msgs))
	for i := range msgs {
		if _, err := f.raw.Receive(); err != nil {
			var oe *netlink.OpError
			if errors.As(err, &oe) && oe.Timeout() {
				return res, fmt.Errorf("receive answer %d of %d: %w", i+1, len(msgs), err)
			}
			res[i] = err
		}
	}
	return res, nil
}
