package election

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A message of the next wire version (here: a valid version-2 message whose
// version byte says 3) is refused as a whole: Decode names its sender and
// version from the header every version shares and returns nothing of its
// body.
func TestDecodeRefusesTheNextWireVersionNamingSenderAndVersion(t *testing.T) {
	for _, m := range sampleMessages() {
		b := Encode(nil, m)
		b[0] = WireVersion + 1
		got, err := Decode(b)
		var de *DecodeError
		if !errors.As(err, &de) || de.Reason != "version" {
			t.Fatalf("%v as version %d: err %v, want reason version", m, b[0], err)
		}
		if de.Version != WireVersion+1 || de.From != m.From {
			t.Fatalf("%v: DecodeError version %d from %q, want %d from %q", m, de.Version, de.From, WireVersion+1, m.From)
		}
		if got != (Message{}) {
			t.Fatalf("%v: a refused message decoded to %+v", m, got)
		}
		if !strings.Contains(de.Error(), `wire version 3 from "`+m.From+`", this build reads 2`) {
			t.Fatalf("error %q does not name the versions and the sender", de)
		}
	}
	// A header cut short names no sender and still refuses.
	_, err := Decode([]byte{WireVersion + 1, byte(MsgVote), 40, 'm'})
	var de *DecodeError
	if !errors.As(err, &de) || de.Reason != "version" || de.From != "" {
		t.Fatalf("cut header: %v", err)
	}
}

// lockedLog collects a driver's log lines.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// Over real encrypted memberlist: a peer that sends version-3 election
// messages (a Vote for a far higher term, which a version-2 reading would
// act on) is refused on every one, counted by peer and version, and logged
// once with both versions; the leader keeps its role and the term does not
// move.
func TestDriverRefusesAnotherWireVersionWithALogLineAndAMetric(t *testing.T) {
	c := newCluster(t, 3)
	var logs lockedLog
	for _, p := range c.peers {
		reg := prometheus.NewRegistry()
		cfg := c.config(p.Name, [][]byte{c.key})
		cfg.Registerer = reg
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", p.Name)
		d, err := NewDriver(cfg, c.rec.callbacks(p.Name))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.drivers[p.Name], c.regs[p.Name] = d, reg
		t.Cleanup(d.Kill)
	}
	leader := c.waitLeader(10 * time.Second)
	var sender string
	for _, p := range c.peers {
		if p.Name != leader {
			sender = p.Name
			break
		}
	}
	before := c.drivers[leader].Status().Roles[RoleVIP].Term
	const sends = 5
	for _, p := range c.peers {
		if p.Name == sender {
			continue
		}
		m := Message{Type: MsgVote, From: sender, To: p.Name, Incarnation: 1 << 62, Counter: 1, Epoch: 1, Role: RoleVIP, Term: before + 1000, Seq: 1}
		b := Encode(nil, m)
		b[0] = WireVersion + 1
		for range sends {
			if err := c.drivers[sender].ml.SendToAddress(memberlist.Address{Addr: p.Addr, Name: p.Name}, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range c.peers {
		if p.Name == sender {
			continue
		}
		ctr := c.drivers[p.Name].wireCounter(sender, "3")
		for testutil.ToFloat64(ctr) < sends && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := testutil.ToFloat64(ctr); got != sends {
			t.Fatalf("%s counted %v version-3 messages from %s, want %d", p.Name, got, sender, sends)
		}
	}
	if ls := c.leaders(); len(ls) != 1 || ls[0] != leader {
		t.Fatalf("leaders %v after the version-3 votes, want %s alone", ls, leader)
	}
	if after := c.drivers[leader].Status().Roles[RoleVIP].Term; after >= before+1000 {
		t.Fatalf("term moved to %d: a version-3 vote was read", after)
	}
	out := logs.String()
	want := "peer=" + sender + " sender_claims=" + sender + " peer_wire_version=3 wire_version=2"
	if n := strings.Count(out, want); n != 2 {
		t.Fatalf("%d log lines with %q (want one per receiver, rate-limited):\n%s", n, want, out)
	}
	c.checkNoOverlap()
}

// wireCounter is the mismatch counter of peer and version.
func (d *Driver) wireCounter(peer, version string) prometheus.Counter {
	return d.wire.mismatch.WithLabelValues(peer, version)
}
