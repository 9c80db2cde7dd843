package election

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Mixed versions. A master whose masterd speaks another wire version (an
// upgrade skipped a release, or a downgrade below the rule in message.go)
// is refused message by message: each is counted in
// masterd_election_wire_version_mismatch_total{peer,version} and logged at
// warning level once per peer and version every wireLogInterval, naming
// the peer, its version and this build's. Its messages never reach the
// core, so it can neither vote nor renew: the cluster runs on the masters
// that speak this version.

// wireLogInterval bounds the mismatch log lines of one peer and version.
const wireLogInterval = time.Minute

// wireWatch counts and logs messages of another wire version; loop
// goroutine only.
type wireWatch struct {
	mismatch *prometheus.CounterVec
	logged   map[string]time.Time // peer/version → last line
}

func newWireWatch(reg prometheus.Registerer) (*wireWatch, error) {
	w := &wireWatch{
		mismatch: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "masterd", Subsystem: "election", Name: "wire_version_mismatch_total",
			Help: "Election messages refused because they carry another wire version than this build's, by sender (unknown when not a member) and version."},
			[]string{"peer", "version"}),
		logged: map[string]time.Time{},
	}
	if reg != nil {
		if err := reg.Register(w.mismatch); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// observe handles err from Decode when it is a version mismatch and
// reports whether it was one; known says whether a sender is a member (the
// label stays bounded: anything else is "unknown").
func (w *wireWatch) observe(d *Driver, err error, known func(string) bool) bool {
	var de *DecodeError
	if !errors.As(err, &de) || de.Reason != "version" {
		return false
	}
	peer := de.From
	if peer == "" || !known(peer) {
		peer = "unknown"
	}
	v := strconv.Itoa(int(de.Version))
	w.mismatch.WithLabelValues(peer, v).Inc()
	key := peer + "/" + v
	if now := time.Now(); now.Sub(w.logged[key]) >= wireLogInterval {
		w.logged[key] = now
		d.log.Warn("election message of another wire version refused: upgrade or downgrade masterd so that every master speaks a common version (see docs/design.md, upgrades)",
			"peer", peer, "sender_claims", de.From, "peer_wire_version", int(de.Version), "wire_version", wireVersion)
	}
	return true
}
