package election

// replayWindow accepts each message counter of one sender incarnation at
// most once, tolerating reordering within the last 64 counters (the
// anti-replay window of IPsec, RFC 4303 §3.4.3). Older counters are dropped.
type replayWindow struct {
	incarnation uint64
	top         uint64 // highest counter accepted
	seen        uint64 // bit i: counter top-i was accepted
}

const replayWindowSize = 64

// accept reports whether counter is new for incarnation and records it.
// A newer incarnation starts a fresh window.
func (w *replayWindow) accept(incarnation, counter uint64) bool {
	if counter == 0 {
		return false
	}
	if incarnation != w.incarnation {
		*w = replayWindow{incarnation: incarnation}
	}
	switch {
	case counter > w.top:
		shift := counter - w.top
		if shift >= replayWindowSize {
			w.seen = 0
		} else {
			w.seen <<= shift
		}
		w.seen |= 1
		w.top = counter
		return true
	case w.top-counter >= replayWindowSize:
		return false
	default:
		bit := uint64(1) << (w.top - counter)
		if w.seen&bit != 0 {
			return false
		}
		w.seen |= bit
		return true
	}
}
