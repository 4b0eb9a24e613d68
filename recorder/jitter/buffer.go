package jitter

import "time"

// Packet is one RTP packet as the Buffer sees it. The caller fills the RTP
// fields, Arrival and Payload; the Buffer sets Ext and LostBefore on the
// packets it hands out.
type Packet struct {
	SequenceNumber uint16
	Timestamp      uint32
	SSRC           uint32
	PayloadType    uint8
	Marker         bool
	// Arrival is when the packet arrived, in nanoseconds on the caller's
	// clock (the session clock).
	Arrival int64
	Payload []byte

	// Ext is the extended (wrap-free) sequence number.
	Ext uint64
	// LostBefore is how many sequence numbers right before this packet
	// were given up as lost.
	LostBefore uint64
}

// Result says what Push did with a packet.
type Result uint8

// Push results.
const (
	Accepted  Result = iota // stored or handed on
	Duplicate               // a copy of a packet already received
	Late                    // arrived after its sequence number was given up
	Probation               // a large jump in sequence number, held until confirmed
)

// Config configures a Buffer.
type Config struct {
	// Latency is how long packets behind a gap are held while waiting for
	// the missing ones (recording.jitter_buffer; default 200 ms).
	Latency time.Duration
	// Size is the number of packets the window holds, rounded up to a
	// power of two (default 512). Packets further ahead than Size force
	// the oldest ones out.
	Size int
	// NACKDelay is how long a sequence number must be missing before its
	// first NACK, so that mere reordering is not NACKed (default 10 ms).
	// NACKInterval is the minimum time between two NACKs for the same
	// sequence number (default 40 ms), MaxNACKs the most NACKs per
	// sequence number (default 3).
	NACKDelay    time.Duration
	NACKInterval time.Duration
	MaxNACKs     int
}

// Stats are a Buffer's counters. At any time
// Expected == Received + Lost + (packets still held or awaited).
type Stats struct {
	Expected  uint64 // sequence numbers from the first to the highest seen
	Received  uint64 // distinct packets handed on in time
	Lost      uint64 // sequence numbers given up
	Late      uint64 // packets that arrived after being given up
	Duplicate uint64 // copies of packets already received
	Restarts  uint64 // confirmed sequence number jumps (stream restarts)
	NACKs     uint64 // sequence numbers listed by AppendNACKs
}

const (
	// maxDropout and maxMisorder bound believable jumps (RFC 3550 A.1).
	maxDropout  = 3000
	maxMisorder = 1000
)

type slotState uint8

const (
	stateEmpty slotState = iota
	stateMissing
	stateHeld
	stateEmitted
	stateLost
)

type slot struct {
	ext      uint64
	state    slotState
	nacks    uint8
	lastNACK int64
	pkt      Packet
	buf      []byte
}

// Buffer reorders one RTP stream. It is not safe for concurrent use.
type Buffer struct {
	cfg  Config
	mask uint64
	ring []slot
	out  func(*Packet)

	started bool
	// warm is false until the first packet has waited the latency: until
	// then packets that precede it (reordered at the very start) are
	// still accepted.
	warm    bool
	emitted bool // a packet of this run was handed on or given up
	firstAt int64
	first   uint64 // ext of the first packet of the current run
	next    uint64 // ext of the next packet to hand on
	top     uint64 // highest ext seen
	held    int    // slots in stateHeld

	probation    bool
	probationSeq uint16
	probationPkt Packet
	probationBuf []byte

	pendingLost  uint64 // given up since the last packet handed on
	expectedBase uint64 // Expected of runs before the last restart
	lastNACKScan int64
	stats        Stats
}

// New returns a Buffer that hands packets in order to out. The *Packet
// given to out, and its Payload, are valid only during the call.
func New(cfg Config, out func(*Packet)) *Buffer {
	if cfg.Latency <= 0 {
		cfg.Latency = 200 * time.Millisecond
	}
	if cfg.Size <= 0 {
		cfg.Size = 512
	}
	size := 16
	for size < cfg.Size {
		size <<= 1
	}
	cfg.Size = size
	if cfg.NACKInterval <= 0 {
		cfg.NACKInterval = 40 * time.Millisecond
	}
	if cfg.NACKDelay == 0 {
		cfg.NACKDelay = 10 * time.Millisecond
	}
	if cfg.MaxNACKs <= 0 {
		cfg.MaxNACKs = 3
	}
	return &Buffer{cfg: cfg, mask: uint64(size - 1), ring: make([]slot, size), out: out}
}

// Stats returns the counters.
func (b *Buffer) Stats() Stats {
	s := b.stats
	s.Expected = b.expectedBase
	if b.started {
		s.Expected += b.top - b.first + 1
	}
	return s
}

// extend maps a 16-bit sequence number to the extended number nearest to
// the highest one seen.
func (b *Buffer) extend(seq uint16) uint64 {
	d := int64(int16(seq - uint16(b.top)))
	e := int64(b.top) + d
	if e < 0 {
		e += 1 << 16
	}
	return uint64(e)
}

// Push offers one packet that arrived at p.Arrival (also taken as the
// current time). The Buffer copies what it keeps: p and its payload may be
// reused when Push returns.
func (b *Buffer) Push(p *Packet) Result {
	now := p.Arrival
	if !b.started {
		b.start(p, uint64(1<<16)+uint64(p.SequenceNumber))
		b.release(now)
		return Accepted
	}
	ext := b.extend(p.SequenceNumber)
	switch {
	case ext > b.top && ext-b.top >= maxDropout, ext < b.next && b.next-ext > maxMisorder:
		return b.jump(p)
	case ext < b.next && !b.warm && !b.emitted && b.top-ext < uint64(len(b.ring)):
		// Reordered before the first packet, during warm-up: extend the
		// stream backwards.
		for e := ext + 1; e < b.next; e++ {
			m := &b.ring[e&b.mask]
			m.ext, m.state, m.nacks, m.lastNACK = e, stateMissing, 0, now
		}
		b.first, b.next = ext, ext
	case ext < b.next:
		b.probation = false
		s := &b.ring[ext&b.mask]
		if s.ext == ext && s.state == stateEmitted {
			b.stats.Duplicate++
			return Duplicate
		}
		b.stats.Late++
		return Late
	}
	b.probation = false
	s := &b.ring[ext&b.mask]
	if ext <= b.top && s.ext == ext && (s.state == stateHeld || s.state == stateEmitted) {
		b.stats.Duplicate++
		return Duplicate
	}
	if ext >= b.next+uint64(len(b.ring)) {
		b.overflow(ext)
	}
	if ext > b.top {
		// Sequence numbers between the old top and ext are now missing.
		from := b.top + 1
		if lo := ext - uint64(len(b.ring)) + 1; ext >= uint64(len(b.ring)) && from < lo {
			from = lo
		}
		for e := from; e < ext; e++ {
			m := &b.ring[e&b.mask]
			m.ext, m.state, m.nacks, m.lastNACK = e, stateMissing, 0, now
		}
		b.top = ext
	}
	if ext == b.next && b.held == 0 && b.warm {
		// In order with nothing waiting: hand on without copying.
		s.ext, s.state = ext, stateEmitted
		b.emitted = true
		p.Ext, p.LostBefore = ext, b.pendingLost
		b.pendingLost = 0
		b.next++
		b.stats.Received++
		b.out(p)
		return Accepted
	}
	b.store(s, ext, p)
	b.release(now)
	return Accepted
}

func (b *Buffer) start(p *Packet, ext uint64) {
	b.started, b.warm, b.emitted, b.firstAt = true, false, false, p.Arrival
	b.first, b.next, b.top = ext, ext, ext
	s := &b.ring[ext&b.mask]
	b.store(s, ext, p)
}

func (b *Buffer) store(s *slot, ext uint64, p *Packet) {
	s.buf = append(s.buf[:0], p.Payload...)
	s.pkt = *p
	s.pkt.Payload = s.buf
	s.pkt.Ext = ext
	s.ext, s.state = ext, stateHeld
	b.held++
}

// jump handles a packet far from the expected sequence numbers: it is held
// on probation, and only when the next packet follows it is the stream
// taken as restarted there.
func (b *Buffer) jump(p *Packet) Result {
	if !b.probation || p.SequenceNumber != b.probationSeq+1 {
		b.probation = true
		b.probationSeq = p.SequenceNumber
		b.probationBuf = append(b.probationBuf[:0], p.Payload...)
		b.probationPkt = *p
		b.probationPkt.Payload = b.probationBuf
		return Probation
	}
	// Confirmed: flush the old run and start a new one far beyond it.
	b.probation = false
	b.Flush()
	b.expectedBase += b.top - b.first + 1
	b.stats.Restarts++
	base := (b.top>>16 + 2) << 16
	for i := range b.ring {
		b.ring[i].state = stateEmpty
	}
	b.held = 0
	b.start(&b.probationPkt, base+uint64(b.probationSeq))
	b.release(p.Arrival)
	return b.Push(p)
}

// overflow makes room for ext by handing on or giving up everything more
// than a window behind it.
func (b *Buffer) overflow(ext uint64) {
	limit := ext - uint64(len(b.ring)) + 1
	for b.next < limit && b.next <= b.top {
		b.giveUpOrEmit(b.next)
	}
	if b.next < limit {
		// Sequence numbers never seen and beyond the ring: lost in bulk.
		b.stats.Lost += limit - b.next
		b.pendingLost += limit - b.next
		b.next = limit
	}
}

// giveUpOrEmit hands on the packet at sequence number e if it is held, or
// gives e up as lost, and moves past it.
func (b *Buffer) giveUpOrEmit(e uint64) {
	s := &b.ring[e&b.mask]
	if s.ext == e && s.state == stateHeld {
		b.emit(s)
		return
	}
	b.emitted = true // the stream has moved past e
	s.ext, s.state = e, stateLost
	b.stats.Lost++
	b.pendingLost++
	b.next = e + 1
}

func (b *Buffer) emit(s *slot) {
	b.emitted = true
	b.held--
	s.state = stateEmitted
	s.pkt.LostBefore = b.pendingLost
	b.pendingLost = 0
	b.next = s.ext + 1
	b.stats.Received++
	b.out(&s.pkt)
}

// release hands on every packet that is next in order, and gives up the
// gap in front of the oldest held packet once it has waited the latency.
func (b *Buffer) release(now int64) {
	latency := int64(b.cfg.Latency)
	if !b.warm {
		if now-b.firstAt < latency {
			return
		}
		b.warm = true
	}
	for b.next <= b.top {
		s := &b.ring[b.next&b.mask]
		if s.ext == b.next && s.state == stateHeld {
			b.emit(s)
			continue
		}
		if b.held == 0 {
			return
		}
		// A gap: find the first held packet behind it.
		e := b.next + 1
		for ; e <= b.top; e++ {
			h := &b.ring[e&b.mask]
			if h.ext == e && h.state == stateHeld {
				break
			}
		}
		if e > b.top || now-b.ring[e&b.mask].pkt.Arrival < latency {
			return
		}
		for b.next < e {
			b.giveUpOrEmit(b.next)
		}
	}
}

// Tick releases packets whose wait has expired at time now (nanoseconds on
// the same clock as Packet.Arrival). Call it when no packets arrive, so a
// stalled stream still drains.
func (b *Buffer) Tick(now int64) {
	if b.started {
		b.release(now)
	}
}

// Flush hands on every held packet in order, giving up the gaps between
// them, as at the end of the stream or before a new SSRC takes over.
func (b *Buffer) Flush() {
	if !b.started {
		return
	}
	for b.next <= b.top {
		b.giveUpOrEmit(b.next)
	}
}

// Reset flushes the buffer and forgets the stream, so the next packet
// starts a new one (a new SSRC on the same track). Counters are kept.
func (b *Buffer) Reset() {
	b.Flush()
	if b.started {
		b.expectedBase += b.top - b.first + 1
	}
	b.started, b.probation, b.held = false, false, 0
	for i := range b.ring {
		b.ring[i].state = stateEmpty
	}
}

// Missing reports whether some sequence number is awaited.
func (b *Buffer) Missing() bool {
	return b.started && b.held > 0
}

// AppendNACKs appends to dst the sequence numbers that are missing and due
// for a (first or repeated) NACK at time now, and records them as sent.
func (b *Buffer) AppendNACKs(dst []uint16, now int64) []uint16 {
	if !b.Missing() {
		return dst
	}
	interval := int64(b.cfg.NACKInterval)
	for e := b.next; e <= b.top; e++ {
		s := &b.ring[e&b.mask]
		if s.ext != e || s.state != stateMissing || int(s.nacks) >= b.cfg.MaxNACKs {
			continue
		}
		// lastNACK is when it went missing until the first NACK.
		if wait := interval; s.nacks == 0 {
			if now-s.lastNACK < int64(b.cfg.NACKDelay) {
				continue
			}
		} else if now-s.lastNACK < wait {
			continue
		}
		s.nacks++
		s.lastNACK = now
		b.stats.NACKs++
		dst = append(dst, uint16(e))
	}
	return dst
}
