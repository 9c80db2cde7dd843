package election

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"strings"

	"github.com/hashicorp/memberlist"
)

// gossip is the memberlist Delegate and EventDelegate of a Driver. memberlist
// calls NotifyMsg from its packet goroutine and the event methods under its
// own locks: none of them may block, so they copy and hand off.
type gossip struct{ d *Driver }

var (
	_ memberlist.Delegate      = gossip{}
	_ memberlist.EventDelegate = gossip{}
)

func (g gossip) NodeMeta(limit int) []byte {
	g.d.metaMu.Lock()
	defer g.d.metaMu.Unlock()
	if len(g.d.meta) > limit {
		return nil
	}
	return bytes.Clone(g.d.meta)
}

// NotifyMsg receives an election message; memberlist reuses buf, so copy it.
func (g gossip) NotifyMsg(buf []byte) {
	b := bytes.Clone(buf)
	select {
	case g.d.inbox <- b:
	default:
		g.d.met.rejected.WithLabelValues("queue_full").Inc()
	}
}

func (g gossip) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (g gossip) LocalState(join bool) []byte                { return nil }
func (g gossip) MergeRemoteState(buf []byte, join bool)     {}

func (g gossip) NotifyJoin(n *memberlist.Node)   { g.d.peerMetaChanged(n.Name, n.Meta) }
func (g gossip) NotifyUpdate(n *memberlist.Node) { g.d.peerMetaChanged(n.Name, n.Meta) }
func (g gossip) NotifyLeave(n *memberlist.Node)  {}

// Node meta, version 1: version u8 | count u8 | count × (role str | healthy
// u8 | priority i32). It tells peers this node's eligibility per role.
const metaVersion = 1

func encodeMeta(elig map[string]Eligibility) []byte {
	b := []byte{metaVersion, byte(len(elig))}
	for _, name := range sortedKeys(elig) {
		e := elig[name]
		b = appendStr(b, name)
		h := byte(0)
		if e.Healthy {
			h = 1
		}
		b = append(b, h)
		b = binary.BigEndian.AppendUint32(b, uint32(int32(e.Priority)))
	}
	return b
}

func decodeMeta(b []byte) (map[string]Eligibility, bool) {
	r := reader{b: b}
	if r.u8("version") != metaVersion {
		return nil, false
	}
	n := int(r.u8("count"))
	out := map[string]Eligibility{}
	prev := ""
	for i := range n {
		name := r.str("role", false)
		// Roles in strictly increasing order, as encodeMeta writes them:
		// one encoding per meta (a repeated or unordered role is refused).
		if r.err == nil && i > 0 && name <= prev {
			return nil, false
		}
		prev = name
		h := r.u8("healthy")
		var p [4]byte
		if len(r.b) >= 4 {
			copy(p[:], r.b)
			r.b = r.b[4:]
		} else {
			r.fail("truncated", "priority")
		}
		if r.err != nil || h > 1 {
			return nil, false
		}
		out[name] = Eligibility{Healthy: h == 1, Priority: int(int32(binary.BigEndian.Uint32(p[:])))}
	}
	return out, r.err == nil && len(r.b) == 0
}

// logWriter turns memberlist's log lines into slog records and counts the
// packets and streams memberlist drops for a wrong key or label.
type logWriter struct{ d *Driver }

func (w logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.Contains(line, "[ERR]"):
		level = slog.LevelWarn
	case strings.Contains(line, "[WARN]"):
		level = slog.LevelInfo
	}
	lower := strings.ToLower(line)
	switch {
	case strings.Contains(lower, "decrypt"):
		w.d.met.rejected.WithLabelValues("decrypt").Inc()
	case strings.Contains(lower, "unacceptable label"):
		w.d.met.rejected.WithLabelValues("label").Inc()
	}
	w.d.log.Log(context.Background(), level, "memberlist", "line", line)
	return len(p), nil
}
