package vip

import (
	"context"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// startAnnounceLocked cancels a running schedule and starts Config.Announce
// anew. With sendNow the offsets equal to zero are sent before it returns
// (Acquire's first announcement); the rest run in a goroutine that stops on
// Release, Close or the next schedule. Called with mu held.
func (m *Manager) startAnnounceLocked(sendNow bool) {
	if m.stopAnn != nil {
		m.stopAnn()
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stopAnn = cancel
	ifindex, mac := m.ifindex, m.mac
	offsets := m.cfg.Announce
	if sendNow {
		for len(offsets) > 0 && offsets[0] == 0 {
			m.announce(ifindex, mac)
			offsets = offsets[1:]
		}
	}
	if len(offsets) == 0 {
		return
	}
	start := time.Now()
	go func() {
		t := time.NewTimer(0)
		defer t.Stop()
		<-t.C
		for _, off := range offsets {
			t.Reset(time.Until(start.Add(off)))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			m.mu.Lock()
			stale := ctx.Err() != nil
			m.mu.Unlock()
			if stale {
				return
			}
			m.announce(ifindex, mac)
		}
	}()
}

// announce sends one round: gratuitous ARP request and reply, or one
// unsolicited neighbour advertisement. Send errors are logged, not
// returned: the address is in place and the next round retries.
func (m *Manager) announce(ifindex int, mac net.HardwareAddr) {
	var frames [][]byte
	if m.cfg.Address.Is4() {
		frames = garpFrames(mac, m.cfg.Address)
	} else {
		frames = [][]byte{naFrame(mac, m.cfg.Address)}
	}
	for _, f := range frames {
		if err := m.sendFrame(ifindex, f); err != nil {
			m.log.Warn("send announcement failed", "ifindex", ifindex, "err", err)
			continue
		}
		m.m.garpSent.Inc()
	}
}

// sendFrame writes a complete Ethernet frame on interface ifindex.
func (m *Manager) sendFrame(ifindex int, frame []byte) error {
	sa := &unix.SockaddrLinklayer{
		Protocol: htons(uint16(frame[12])<<8 | uint16(frame[13])),
		Ifindex:  ifindex,
		Halen:    6,
	}
	copy(sa.Addr[:], frame[0:6])
	return unix.Sendto(m.sendFD, frame, 0, sa)
}
