package fence

// What the fence does on the wire, seen from a client namespace: an ARP
// prober whose every request carries its own sender MAC (a sequence
// number), so each reply names the request it answers and the request's
// send time bounds when the holder answered, whatever the scheduling delays
// of the receiving goroutine.

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type arpProber struct {
	t     *testing.T
	fd    int
	recv  *os.File
	vip   netip.Addr
	src   netip.Addr
	index int
	stop  chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	sent     []time.Time // send start of probe i
	answered map[uint32]net.HardwareAddr
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func probeMAC(seq uint32) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xfe, byte(seq >> 24), byte(seq >> 16), byte(seq >> 8), byte(seq)}
}

// startARPProber asks client's eth0 for vip every interval until the test
// ends or Stop.
func startARPProber(t *testing.T, client *labHost, vip netip.Addr, interval time.Duration) *arpProber {
	t.Helper()
	p := &arpProber{t: t, vip: vip, src: client.V4.Addr(), stop: make(chan struct{}), answered: map[uint32]net.HardwareAddr{}}
	client.In(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		p.index = ifi.Index
		if p.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		rfd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		if err := unix.Bind(rfd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index}); err != nil {
			unix.Close(rfd)
			return err
		}
		p.recv = os.NewFile(uintptr(rfd), "arp-prober")
		return nil
	})
	p.wg.Go(p.receive)
	p.wg.Go(func() { p.send(interval) })
	t.Cleanup(p.Stop)
	return p
}

func (p *arpProber) Stop() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.recv.SetReadDeadline(time.Unix(1, 0))
	p.wg.Wait()
	p.recv.Close()
	unix.Close(p.fd)
}

func (p *arpProber) send(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	src, dst := p.src.As4(), p.vip.As4()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		seq := uint32(len(p.sent))
		p.sent = append(p.sent, time.Now())
		p.mu.Unlock()
		mac := probeMAC(seq)
		f := make([]byte, 42)
		copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(f[6:12], mac)
		binary.BigEndian.PutUint16(f[12:14], unix.ETH_P_ARP)
		binary.BigEndian.PutUint16(f[14:16], 1)
		binary.BigEndian.PutUint16(f[16:18], unix.ETH_P_IP)
		f[18], f[19] = 6, 4
		binary.BigEndian.PutUint16(f[20:22], 1)
		copy(f[22:28], mac)
		copy(f[28:32], src[:])
		copy(f[38:42], dst[:])
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: p.index, Halen: 6}
		copy(sa.Addr[:], f[0:6])
		_ = unix.Sendto(p.fd, f, 0, sa)
	}
}

func (p *arpProber) receive() {
	buf := make([]byte, 1600)
	vip := p.vip.As4()
	for {
		n, err := p.recv.Read(buf)
		if err != nil {
			select {
			case <-p.stop:
				return
			default:
				continue
			}
		}
		f := buf[:n]
		if n < 42 || binary.BigEndian.Uint16(f[12:14]) != unix.ETH_P_ARP || binary.BigEndian.Uint16(f[20:22]) != 2 {
			continue
		}
		if [4]byte(f[28:32]) != vip || f[32] != 0x02 || f[33] != 0xfe {
			continue
		}
		seq := binary.BigEndian.Uint32(f[34:38])
		p.mu.Lock()
		p.answered[seq] = append(net.HardwareAddr(nil), f[22:28]...)
		p.mu.Unlock()
	}
}

// probe is one request: when it was sent and who answered it (nil: nobody).
type probe struct {
	sent time.Time
	mac  net.HardwareAddr
}

func (p *arpProber) Probes() []probe {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]probe, len(p.sent))
	for i, s := range p.sent {
		out[i] = probe{sent: s, mac: p.answered[uint32(i)]}
	}
	return out
}

// answeredAfter counts probes sent at or after t that were answered.
func answeredAfter(ps []probe, t time.Time) (answered, sent int) {
	for _, p := range ps {
		if p.sent.Before(t) {
			continue
		}
		sent++
		if p.mac != nil {
			answered++
		}
	}
	return
}

// lastAnswered returns the send time of the last answered probe.
func lastAnswered(ps []probe) (time.Time, bool) {
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].mac != nil {
			return ps[i].sent, true
		}
	}
	return time.Time{}, false
}

// sendGratuitousARP sends, from inside h, a gratuitous ARP reply for vip with
// h's MAC, as the vip package does (through a packet socket, bypassing the
// arp hook) and returns the send error: a frame the egress hook drops
// fails with ENOBUFS.
func sendGratuitousARP(t *testing.T, h *labHost, vip netip.Addr) error {
	t.Helper()
	var sendErr error
	h.In(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		a := vip.As4()
		f := make([]byte, 42)
		copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(f[6:12], ifi.HardwareAddr)
		binary.BigEndian.PutUint16(f[12:14], unix.ETH_P_ARP)
		binary.BigEndian.PutUint16(f[14:16], 1)
		binary.BigEndian.PutUint16(f[16:18], unix.ETH_P_IP)
		f[18], f[19] = 6, 4
		binary.BigEndian.PutUint16(f[20:22], 2)
		copy(f[22:28], ifi.HardwareAddr)
		copy(f[28:32], a[:])
		copy(f[32:38], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(f[38:42], a[:])
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6}
		copy(sa.Addr[:], f[0:6])
		sendErr = unix.Sendto(fd, f, 0, sa)
		return nil
	})
	return sendErr
}

// sendUnsolicitedNA sends, from inside h, an unsolicited neighbour
// advertisement for vip (override flag, target link-layer option) through a
// packet socket, as the vip package does, and returns the send error.
func sendUnsolicitedNA(t *testing.T, h *labHost, vip netip.Addr) error {
	t.Helper()
	var sendErr error
	h.In(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		src, dst := vip.As16(), netip.MustParseAddr("ff02::1").As16()
		f := make([]byte, 14+40+32)
		copy(f[0:6], []byte{0x33, 0x33, 0, 0, 0, 1})
		copy(f[6:12], ifi.HardwareAddr)
		binary.BigEndian.PutUint16(f[12:14], unix.ETH_P_IPV6)
		ip := f[14:]
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:6], 32)
		ip[6], ip[7] = unix.IPPROTO_ICMPV6, 255
		copy(ip[8:24], src[:])
		copy(ip[24:40], dst[:])
		m := ip[40:]
		m[0], m[4] = icmpv6NA, 0x20
		copy(m[8:24], src[:])
		m[24], m[25] = 2, 1
		copy(m[26:32], ifi.HardwareAddr)
		var sum uint32
		add := func(b []byte) {
			for i := 0; i+1 < len(b); i += 2 {
				sum += uint32(b[i])<<8 | uint32(b[i+1])
			}
		}
		add(src[:])
		add(dst[:])
		add([]byte{0, 0, 0, 32, 0, 0, 0, unix.IPPROTO_ICMPV6})
		add(m)
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(m[2:4], ^uint16(sum))
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: ifi.Index, Halen: 6}
		copy(sa.Addr[:], f[0:6])
		sendErr = unix.Sendto(fd, f, 0, sa)
		return nil
	})
	return sendErr
}
