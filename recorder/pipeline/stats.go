package pipeline

import (
	"sync/atomic"
	"time"
)

// Stats are a recording's live counters, summed over its tracks: the same
// counters as the completeness report's totals, while the recording runs.
// Packets still held in the jitter buffer are in none of them yet.
type Stats struct {
	PacketsReceived  uint64 // distinct packets handed on in time
	PacketsLost      uint64 // sequence numbers given up
	PacketsLate      uint64 // arrived after being given up, or from a replaced SSRC
	PacketsDuplicate uint64
	PacketsInvalid   uint64 // malformed, unknown payload type, absurd timestamp
	PacketsGated     uint64 // arrived while the gate was closed, not stored
	NACKsSent        uint64 // sequence numbers NACKed
	KeyframeRequests uint64
	Parts            uint64 // parts handed to the sink's queue
	Bytes            uint64 // their plaintext bytes
}

// liveStats holds the published Stats. The recording's lock guards the
// counters it is built from; publish copies them here so that Stats and
// Started never take that lock.
type liveStats struct {
	received, lost, late, duplicate, invalid, gated atomic.Uint64
	nacks, keyframes, parts, bytes                  atomic.Uint64
	// start is the timeline's zero in unix nanoseconds (0: not started).
	start atomic.Int64
}

// Stats returns the recording's counters as of its last Tick (Run ticks
// every 100 ms) or Close. It does not take the recording's lock: it may be
// called from any goroutine, including the sink's.
func (r *Recording) Stats() Stats {
	l := &r.live
	return Stats{
		PacketsReceived:  l.received.Load(),
		PacketsLost:      l.lost.Load(),
		PacketsLate:      l.late.Load(),
		PacketsDuplicate: l.duplicate.Load(),
		PacketsInvalid:   l.invalid.Load(),
		PacketsGated:     l.gated.Load(),
		NACKsSent:        l.nacks.Load(),
		KeyframeRequests: l.keyframes.Load(),
		Parts:            l.parts.Load(),
		Bytes:            l.bytes.Load(),
	}
}

// Started returns the wall-clock time of the recording timeline's zero
// (its first recorded packet) and true, or false before the timeline
// started. It does not take the recording's lock: the sink may call it
// (the first part is handed to the sink only after the start is set).
func (r *Recording) Started() (time.Time, bool) {
	ns := r.live.start.Load()
	if ns == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ns).UTC(), true
}

// publish copies the counters to the live stats. Call with r.mu held.
func (r *Recording) publish() {
	var s Stats
	for _, t := range r.tracks {
		st := t.jb.Stats()
		dp := t.dp.Stats()
		s.PacketsReceived += st.Received
		s.PacketsLost += st.Lost
		s.PacketsLate += st.Late + t.lateRetired
		s.PacketsDuplicate += st.Duplicate
		s.PacketsInvalid += t.invalid + dp.Invalid
		s.PacketsGated += t.gated
		s.NACKsSent += st.NACKs
		s.KeyframeRequests += t.keyReqs
	}
	l := &r.live
	l.received.Store(s.PacketsReceived)
	l.lost.Store(s.PacketsLost)
	l.late.Store(s.PacketsLate)
	l.duplicate.Store(s.PacketsDuplicate)
	l.invalid.Store(s.PacketsInvalid)
	l.gated.Store(s.PacketsGated)
	l.nacks.Store(s.NACKsSent)
	l.keyframes.Store(s.KeyframeRequests)
	l.parts.Store(uint64(r.nParts))
	l.bytes.Store(uint64(r.nBytes))
}
