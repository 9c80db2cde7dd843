package election

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func sampleMessages() []Message {
	return []Message{
		{Type: MsgPreVote, From: "m1", To: "m2", Incarnation: 3, Role: RoleVIP, Term: 7, ConfigHash: 42, Seq: 9},
		{Type: MsgPreVoteResp, From: "m2", To: "m1", Incarnation: 1, Role: RoleVIP, Term: 7, ConfigHash: 42, Seq: 9, OK: true, MaxTerm: 6},
		{Type: MsgVote, From: "m1", To: "m3", Role: RoleScheduler, Term: 1 << 40, ConfigHash: 1, Seq: 1},
		{Type: MsgNack, From: "m3", To: "m1", Role: RoleControllerManager, Term: 2, MaxTerm: 5, PromisedTo: "m2", PromisedTerm: 5, Remaining: 700 * time.Millisecond},
		{Type: MsgRelease, From: "m1", To: "m2", Role: RoleVIP, Term: 8, Successor: "m3"},
		{Type: MsgAck, From: "m2", To: "m1", Role: RoleVIP, Term: 8, Seq: 100, Counter: 77, Epoch: 3, MemberHash: 99},
		{Type: MsgTermQuery, From: "m4", To: "m1", Incarnation: 5, Counter: 1, Epoch: 2, Role: RoleVIP},
		{Type: MsgTermReply, From: "m1", To: "m4", Counter: 8, Epoch: 2, Role: RoleVIP, OK: true, MaxTerm: 41},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b := Encode(nil, m)
		if len(b) > MaxMessageSize {
			t.Fatalf("%v encodes to %d bytes", m, len(b))
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		if got != m {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
		}
	}
}

func TestDecodeRejectsMalformedInputWithAReason(t *testing.T) {
	good := Encode(nil, sampleMessages()[3])
	cases := []struct {
		name, reason string
		b            []byte
	}{
		{"empty input is truncated", "truncated", nil},
		{"an unknown version is refused", "version", append([]byte{9}, good[1:]...)},
		{"version 1 (no replay counter) is refused", "version", append([]byte{1}, good[1:]...)},
		{"an unknown type is refused", "type", append([]byte{wireVersion, 77}, good[2:]...)},
		{"a cut message is truncated", "truncated", good[:len(good)-3]},
		{"extra bytes are trailing", "trailing", append(bytes.Clone(good), 0)},
		{"more than the size limit is oversized", "oversized", make([]byte, MaxMessageSize+1)},
		{"an empty sender is a bad field", "field", append([]byte{wireVersion, byte(MsgVote), 0}, good[3:]...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.b)
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason != c.reason {
				t.Fatalf("got %v, want reason %s", err, c.reason)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(Encode(nil, m))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 2, 64})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		// Anything accepted re-encodes to the same bytes.
		if again := Encode(nil, m); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x but re-encodes to %x", b, again)
		}
	})
}

// FuzzStep feeds decoded garbage to a live node: it must never panic and
// never persist a smaller maxTerm.
func FuzzStep(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(Encode(nil, m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		voters := []string{"m1", "m2", "m3"}
		n, err := NewNode(Config{ID: "m1", Voters: voters, Roles: map[string]Timing{RoleVIP: DefaultVIPTiming()},
			Drift: DefaultDrift, Rand: func() uint64 { return 4 }}, nil, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(b)
		if err != nil {
			return
		}
		m.ConfigHash = ConfigHash(RoleVIP, DefaultVIPTiming())
		for i, now := range []time.Duration{time.Millisecond, 2 * time.Millisecond, time.Second} {
			m.To = "m1"
			if i == 2 {
				m.Term++
			}
			n.Step(now, m)
			n.Tick(now)
			if n.HasReady() {
				rd := n.Ready()
				if rd.State != nil && rd.State[RoleVIP].MaxTerm < n.roles[RoleVIP].st.MaxTerm {
					t.Fatal("persisted state behind memory")
				}
				n.Advance()
			}
		}
	})
}
