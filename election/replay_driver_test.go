package election

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// recordingProxy forwards one node's UDP and TCP traffic to another node's
// memberlist port and records every datagram, so a test can replay what an
// attacker on the LAN captured.
type recordingProxy struct {
	udp  *net.UDPConn
	tcp  net.Listener
	to   *net.UDPAddr
	toS  string
	mu   sync.Mutex
	seen [][]byte
}

func newRecordingProxy(t *testing.T, to string) *recordingProxy {
	t.Helper()
	port := freePort(t)
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	ua, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{udp: u, tcp: l, to: ua, toS: to}
	t.Cleanup(func() { u.Close(); l.Close() })
	go p.serveUDP()
	go p.serveTCP()
	return p
}

func (p *recordingProxy) addr() string { return p.udp.LocalAddr().String() }

func (p *recordingProxy) serveUDP() {
	buf := make([]byte, 65536)
	for {
		n, _, err := p.udp.ReadFromUDP(buf)
		if err != nil {
			return
		}
		b := append([]byte(nil), buf[:n]...)
		p.mu.Lock()
		p.seen = append(p.seen, b)
		p.mu.Unlock()
		p.udp.WriteToUDP(b, p.to)
	}
}

func (p *recordingProxy) serveTCP() {
	for {
		c, err := p.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			d, err := net.Dial("tcp", p.toS)
			if err != nil {
				return
			}
			defer d.Close()
			go io.Copy(d, c)
			io.Copy(c, d)
		}()
	}
}

func (p *recordingProxy) captured() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.seen...)
}

// An attacker on the masters' LAN records the leader's election packets
// (encrypted and authenticated by memberlist, which keeps no replay cache)
// and, once the leader died, replays them to the voters again and again.
// The voters drop them (counted as reason "replay") and elect a new leader
// as fast as after a plain crash; before the per-incarnation counters, the
// replayed heartbeats renewed the dead leader's promises and blocked the
// failover for as long as the replay went on.
func TestDriverReplayedPacketsOfADeadLeaderDoNotBlockFailover(t *testing.T) {
	c := newCluster(t, 3)
	real := map[string]string{}
	for _, p := range c.peers {
		real[p.Name] = p.Addr
	}
	// Every node reaches every other through a recording proxy.
	proxies := map[[2]string]*recordingProxy{}
	peersOf := map[string][]Peer{}
	for _, from := range c.peers {
		for _, to := range c.peers {
			if from.Name == to.Name {
				peersOf[from.Name] = append(peersOf[from.Name], to)
				continue
			}
			px := newRecordingProxy(t, real[to.Name])
			proxies[[2]string{from.Name, to.Name}] = px
			peersOf[from.Name] = append(peersOf[from.Name], Peer{Name: to.Name, Addr: px.addr()})
		}
	}
	for _, p := range c.peers {
		c.startWithPeers(p.Name, peersOf[p.Name])
	}
	l := c.waitLeader(10 * time.Second)
	time.Sleep(time.Second) // a second of the leader's heartbeats on the wire
	var voters []string
	for _, p := range c.peers {
		if p.Name != l {
			voters = append(voters, p.Name)
		}
	}
	t0 := time.Now()
	c.drivers[l].Kill()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	replayed := 0
	for _, v := range voters {
		pkts := proxies[[2]string{l, v}].captured()
		replayed += len(pkts)
		conn, err := net.Dial("udp", real[v])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Go(func() {
			for {
				for _, b := range pkts {
					select {
					case <-stop:
						return
					default:
					}
					conn.Write(b)
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	e := c.rec.waitStarted(t, t0, l, 5*time.Second)
	close(stop)
	wg.Wait()
	t.Logf("leader %s killed; %d captured packets replayed to %v in a loop; %s took over after %v", l, replayed, voters, e.node, e.at.Sub(t0))
	if replayed == 0 {
		t.Fatal("no packets of the leader were captured")
	}
	dropped := 0.0
	for _, v := range voters {
		dropped += max(metricValue(t, c, v, "masterd_election_rejected_messages_total", "reason", "replay"), 0)
	}
	if dropped == 0 {
		t.Fatal("the voters counted no replayed message")
	}
	t.Logf("voters dropped %.0f replayed messages", dropped)
	c.checkNoOverlap()
}

// startWithPeers starts name with its own view of the peers' addresses.
func (c *cluster) startWithPeers(name string, peers []Peer) {
	c.t.Helper()
	saved := c.peers
	c.peers = peers
	defer func() { c.peers = saved }()
	c.start(name)
}

// metricValue reads the counter or gauge name{label=value} of node's
// registry (-1 when it is not there).
func metricValue(t *testing.T, c *cluster, node, name, label, value string) float64 {
	t.Helper()
	mfs, err := c.regs[node].Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					if g := m.GetGauge(); g != nil {
						return g.GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// masterd_cluster_members{state="dead"} counts a voter that gossip no
// longer lists (memberlist's member list leaves dead nodes out, so the
// gauge stayed 0 for a dead master and the alert on it could never fire).
func TestDriverCountsADeadVoterInTheMembersGauge(t *testing.T) {
	c := newCluster(t, 3)
	c.startAll()
	c.waitLeader(10 * time.Second)
	gauge := func(node, state string) float64 {
		return metricValue(t, c, node, "masterd_cluster_members", "state", state)
	}
	wait := func(what string, ok func() bool) {
		t.Helper()
		end := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(end) {
				t.Fatalf("%s: not within 30 s (alive %v, dead %v)", what, gauge("m1", "alive"), gauge("m1", "dead"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("all three alive", func() bool { return gauge("m1", "alive") == 3 && gauge("m1", "dead") == 0 })
	c.drivers["m3"].Kill()
	wait("m3 counted dead", func() bool { return gauge("m1", "dead") == 1 })
}
