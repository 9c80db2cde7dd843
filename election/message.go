package election

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// MsgType is the kind of an election message.
type MsgType uint8

// Message types. PreVote and PreVoteResp are non-binding; Grant and Ack are
// promises; Nack explains a refusal; Release gives a promise back.
const (
	MsgPreVote MsgType = iota + 1
	MsgPreVoteResp
	MsgVote
	MsgGrant
	MsgNack
	MsgHeartbeat
	MsgAck
	MsgRelease
	// MsgTermQuery asks a voter for its highest term (non-binding); a node
	// that lost its state sends it before it grants or campaigns.
	MsgTermQuery
	// MsgTermReply answers a TermQuery: MaxTerm, and OK when the replier has
	// its own state (it is not learning itself).
	MsgTermReply
	msgTypeEnd
)

var msgTypeNames = [...]string{"", "prevote", "prevote_resp", "vote", "grant", "nack", "heartbeat", "ack", "release", "term_query", "term_reply"}

func (t MsgType) String() string {
	if t > 0 && t < msgTypeEnd {
		return msgTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// binding reports whether sending a message of this type promises something.
func (t MsgType) binding() bool {
	return t == MsgVote || t == MsgGrant || t == MsgHeartbeat || t == MsgAck
}

// Message is one election message. Every message carries sender, receiver,
// the sender's incarnation and message counter, its membership epoch and
// hash, role, term and config hash.
type Message struct {
	Type        MsgType
	From, To    string
	Incarnation uint64
	// Counter numbers every message a sender incarnation sends (from 1, to
	// any receiver): a receiver accepts each (sender, incarnation, counter)
	// once, so a captured message replayed later is dropped (memberlist's
	// AES-GCM authenticates but keeps no replay cache).
	Counter uint64
	// Epoch and MemberHash identify the sender's membership (voter sets);
	// the same epoch with another hash is a misconfiguration and dropped.
	Epoch      uint64
	MemberHash uint64
	Role       string
	Term       uint64
	ConfigHash uint64
	// Seq matches Grants and Acks with the Vote or Heartbeat round they answer.
	Seq uint64
	// MaxTerm is the sender's highest term seen (Nack, PreVoteResp).
	MaxTerm uint64
	// OK is the PreVoteResp answer.
	OK bool
	// PromisedTo, PromisedTerm and Remaining describe the promise that made a
	// voter refuse (Nack); Remaining is on the voter's clock.
	PromisedTo   string
	PromisedTerm uint64
	Remaining    time.Duration
	// Successor is the node a Release hands the role to ("" for none).
	Successor string
}

func (m Message) String() string {
	s := fmt.Sprintf("%s %s->%s inc=%d ctr=%d epoch=%d role=%s term=%d seq=%d", m.Type, m.From, m.To, m.Incarnation, m.Counter, m.Epoch, m.Role, m.Term, m.Seq)
	switch m.Type {
	case MsgTermReply:
		s += fmt.Sprintf(" known=%v max=%d", m.OK, m.MaxTerm)
	case MsgNack:
		s += fmt.Sprintf(" max=%d promised=%s/%d rem=%v", m.MaxTerm, m.PromisedTo, m.PromisedTerm, m.Remaining)
	case MsgPreVoteResp:
		s += fmt.Sprintf(" ok=%v max=%d", m.OK, m.MaxTerm)
	case MsgRelease:
		if m.Successor != "" {
			s += " successor=" + m.Successor
		}
	}
	return s
}

// Wire format, version 2 (big endian):
//
//	version u8 | type u8 | from str | to str | incarnation u64 | counter u64 |
//	epoch u64 | memberhash u64 | role str | term u64 | confighash u64 |
//	seq u64 | type-specific fields
//
// str is a u8 length followed by that many bytes of UTF-8 (1..64, successor
// and promisedTo may be empty). Type-specific: PreVoteResp and TermReply: ok
// u8, maxterm u64; Nack: maxterm u64, promisedTo str, promisedTerm u64,
// remaining u64 (nanoseconds); Release: successor str. Nothing may follow.
//
// Version 1 (no counter, no epoch) is refused with reason "version": its
// messages cannot be checked for replay.
//
// Compatibility rule: the header "version u8 | type u8 | from str" stays
// the same in every version, so a receiver can always name the sender and
// the version of a message it refuses. A new wire version ships in a
// release that still reads (and, until every master runs it, writes) the
// previous one; a version it cannot read is refused with reason "version"
// (VersionError), never decoded field by field.
const (
	wireVersion = 2
	// MaxMessageSize bounds an encoded message; the decoder rejects anything
	// longer before looking at it.
	MaxMessageSize = 512
)

// WireVersion is the wire version this build writes; it reads the same one
// alone (version 1 has no replay protection).
const WireVersion = wireVersion

// DecodeError is a rejected message; Reason is a short label for metrics.
type DecodeError struct {
	Reason string
	Detail string
	// Version and From are set for Reason "version": the wire version the
	// message carried and its sender as the fixed header names it ("" when
	// the header is cut short or malformed).
	Version uint8
	From    string
}

func (e *DecodeError) Error() string { return "election: decode: " + e.Reason + ": " + e.Detail }

// Encode appends the wire form of m to b.
func Encode(b []byte, m Message) []byte {
	b = append(b, wireVersion, byte(m.Type))
	b = appendStr(b, m.From)
	b = appendStr(b, m.To)
	b = binary.BigEndian.AppendUint64(b, m.Incarnation)
	b = binary.BigEndian.AppendUint64(b, m.Counter)
	b = binary.BigEndian.AppendUint64(b, m.Epoch)
	b = binary.BigEndian.AppendUint64(b, m.MemberHash)
	b = appendStr(b, m.Role)
	b = binary.BigEndian.AppendUint64(b, m.Term)
	b = binary.BigEndian.AppendUint64(b, m.ConfigHash)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	switch m.Type {
	case MsgPreVoteResp, MsgTermReply:
		ok := byte(0)
		if m.OK {
			ok = 1
		}
		b = append(b, ok)
		b = binary.BigEndian.AppendUint64(b, m.MaxTerm)
	case MsgNack:
		b = binary.BigEndian.AppendUint64(b, m.MaxTerm)
		b = appendStr(b, m.PromisedTo)
		b = binary.BigEndian.AppendUint64(b, m.PromisedTerm)
		b = binary.BigEndian.AppendUint64(b, uint64(max(m.Remaining, 0)))
	case MsgRelease:
		b = appendStr(b, m.Successor)
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	if len(s) > maxNameLen {
		s = s[:maxNameLen]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

type reader struct {
	b   []byte
	err *DecodeError
}

func (r *reader) fail(reason, detail string) {
	if r.err == nil {
		r.err = &DecodeError{Reason: reason, Detail: detail}
	}
}

func (r *reader) u8(field string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail("truncated", field)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u64(field string) uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("truncated", field)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) str(field string, allowEmpty bool) string {
	n := int(r.u8(field))
	if r.err != nil {
		return ""
	}
	if n > maxNameLen {
		r.fail("field", field+" too long")
		return ""
	}
	if n == 0 && !allowEmpty {
		r.fail("field", field+" empty")
		return ""
	}
	if len(r.b) < n {
		r.fail("truncated", field)
		return ""
	}
	s := r.b[:n]
	r.b = r.b[n:]
	if !utf8.Valid(s) {
		r.fail("field", field+" not utf-8")
		return ""
	}
	return string(s)
}

// Decode parses one message. It never panics; a rejected input returns a
// *DecodeError whose Reason is one of oversized, version, type, truncated,
// field, trailing.
func Decode(b []byte) (Message, error) {
	var m Message
	if len(b) > MaxMessageSize {
		return m, &DecodeError{Reason: "oversized", Detail: fmt.Sprintf("%d bytes", len(b))}
	}
	r := reader{b: b}
	if v := r.u8("version"); r.err == nil && v != wireVersion {
		// Only the header every version shares is read: nothing of
		// another version's body is ever interpreted.
		h := reader{b: r.b}
		h.u8("type")
		from := h.str("from", false)
		return m, &DecodeError{Reason: "version", Version: v, From: from,
			Detail: fmt.Sprintf("wire version %d from %q, this build reads %d", v, from, wireVersion)}
	}
	m.Type = MsgType(r.u8("type"))
	if r.err == nil && (m.Type == 0 || m.Type >= msgTypeEnd) {
		return m, &DecodeError{Reason: "type", Detail: fmt.Sprintf("%d", uint8(m.Type))}
	}
	m.From = r.str("from", false)
	m.To = r.str("to", false)
	m.Incarnation = r.u64("incarnation")
	m.Counter = r.u64("counter")
	m.Epoch = r.u64("epoch")
	m.MemberHash = r.u64("memberhash")
	m.Role = r.str("role", false)
	m.Term = r.u64("term")
	m.ConfigHash = r.u64("confighash")
	m.Seq = r.u64("seq")
	switch m.Type {
	case MsgPreVoteResp, MsgTermReply:
		switch r.u8("ok") {
		case 0:
		case 1:
			m.OK = true
		default:
			r.fail("field", "ok not 0 or 1")
		}
		m.MaxTerm = r.u64("maxterm")
	case MsgNack:
		m.MaxTerm = r.u64("maxterm")
		m.PromisedTo = r.str("promisedto", true)
		m.PromisedTerm = r.u64("promisedterm")
		rem := r.u64("remaining")
		if rem > uint64(time.Hour) {
			r.fail("field", "remaining beyond an hour")
		}
		m.Remaining = time.Duration(rem)
	case MsgRelease:
		m.Successor = r.str("successor", true)
	}
	if r.err != nil {
		return Message{}, r.err
	}
	if len(r.b) != 0 {
		return Message{}, &DecodeError{Reason: "trailing", Detail: fmt.Sprintf("%d bytes", len(r.b))}
	}
	return m, nil
}

// RejectError is returned by Node.Step for a message the node ignores;
// Reason is a short label for metrics.
type RejectError struct{ Reason string }

func (e *RejectError) Error() string { return "election: rejected message: " + e.Reason }

// IsReject reports whether err is a *RejectError or *DecodeError and returns
// its reason.
func IsReject(err error) (string, bool) {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason, true
	}
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason, true
	}
	return "", false
}
