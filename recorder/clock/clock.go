package clock

import (
	"sync"
	"time"
)

// Session is one session's clock. It is safe for concurrent use.
type Session struct {
	epoch time.Time
}

// NewSession returns the clock of a session that starts at epoch (keep
// its monotonic reading: use time.Now()).
func NewSession(epoch time.Time) *Session { return &Session{epoch: epoch} }

// Epoch returns the session's start.
func (s *Session) Epoch() time.Time { return s.epoch }

// Since returns t as nanoseconds on the session clock.
func (s *Session) Since(t time.Time) int64 { return int64(t.Sub(s.epoch)) }

// Time returns the wall-clock time of session time ns.
func (s *Session) Time(ns int64) time.Time { return s.epoch.Add(time.Duration(ns)) }

// Unwrapper extends 32-bit RTP timestamps to 64 bits across wrap-around.
// The zero value is ready; the first timestamp extends to itself.
type Unwrapper struct {
	last    int64
	started bool
}

// Peek returns the extension of ts nearest to the last accepted one,
// without accepting it.
func (u *Unwrapper) Peek(ts uint32) int64 {
	if !u.started {
		return int64(ts)
	}
	return u.last + int64(int32(ts-uint32(u.last)))
}

// Accept makes ext (from Peek) the reference for the next timestamps.
func (u *Unwrapper) Accept(ext int64) { u.last, u.started = ext, true }

// Unwrap is Peek followed by Accept.
func (u *Unwrapper) Unwrap(ts uint32) int64 {
	e := u.Peek(ts)
	u.Accept(e)
	return e
}

// Reset forgets the reference.
func (u *Unwrapper) Reset() { *u = Unwrapper{} }

// ticksToNs converts a tick count at rate to nanoseconds without overflow.
func ticksToNs(ticks, rate int64) int64 {
	return ticks/rate*int64(time.Second) + ticks%rate*int64(time.Second)/rate
}

// NTPToNs converts a 64-bit NTP timestamp to nanoseconds since 1900.
func NTPToNs(ntp uint64) int64 {
	sec := int64(ntp >> 32)
	frac := int64((ntp & 0xffffffff) * uint64(time.Second) >> 32)
	return sec*int64(time.Second) + frac
}

// offset estimates the offset between a sender's time domain and the
// session clock as the minimum of (arrival − sender time): the packets
// that met the least delay. It rises again over windows of 10 s, so a
// sender clock slower than ours does not drift away.
type offset struct {
	off      int64
	valid    bool
	winStart int64
	winMin   int64
	prevMin  int64
}

const window = int64(10 * time.Second)

func (o *offset) observe(sample, now int64) {
	if !o.valid {
		o.off, o.valid = sample, true
		o.winStart, o.winMin, o.prevMin = now, sample, sample
		return
	}
	if sample < o.off {
		o.off = sample
	}
	if sample < o.winMin {
		o.winMin = sample
	}
	if now-o.winStart >= window {
		if m := min(o.winMin, o.prevMin); m > o.off {
			o.off = m
		}
		o.prevMin, o.winMin, o.winStart = o.winMin, sample, now
	}
}

// Sender ties one sender's NTP time (from its RTCP sender reports) to the
// session clock. Share one among the tracks of a participant connection.
// It is safe for concurrent use.
type Sender struct {
	mu sync.Mutex
	o  offset
}

// Config bounds a Mapper.
type Config struct {
	// MaxSkew is how far a timestamp may disagree with its arrival before
	// the packet is rejected (default 3 s).
	MaxSkew time.Duration
	// ReanchorAfter is how many rejected frames in a row re-anchor the
	// mapping at the new timestamps (default 10).
	ReanchorAfter int
}

// Result says how Map treated a timestamp.
type Result uint8

// Map results.
const (
	OK         Result = iota
	Rejected          // disagrees with arrival by more than MaxSkew
	Reanchored        // a persistent jump: the mapping now starts here
)

// Mapper maps one RTP stream's timestamps to session time. It is not safe
// for concurrent use.
type Mapper struct {
	cfg    Config
	rate   int64
	sender *Sender
	unwrap Unwrapper

	// Without sender reports: sender time is (ext − anchor)/rate.
	anchored bool
	anchor   int64
	own      offset

	// With a sender report: sender time is srNTP + (ext − srTS)/rate.
	sr    bool
	srNTP int64
	srTS  int64

	bad        int
	rejected   uint64
	reanchored uint64
}

// NewMapper returns a Mapper for a stream with the given RTP clock rate.
// sender may be nil (no sharing between tracks).
func NewMapper(clockRate uint32, sender *Sender, cfg Config) *Mapper {
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = 3 * time.Second
	}
	if cfg.ReanchorAfter <= 0 {
		cfg.ReanchorAfter = 10
	}
	if sender == nil {
		sender = &Sender{}
	}
	if clockRate == 0 {
		clockRate = 90000
	}
	return &Mapper{cfg: cfg, rate: int64(clockRate), sender: sender}
}

// Counts returns how many timestamps were rejected and how often the
// mapping was re-anchored.
func (m *Mapper) Counts() (rejected, reanchored uint64) { return m.rejected, m.reanchored }

// Reset forgets the stream (a new SSRC): the next timestamp is anchored at
// its arrival, or mapped through the next sender report.
func (m *Mapper) Reset() {
	m.unwrap.Reset()
	m.anchored, m.sr, m.bad = false, false, 0
	m.own = offset{}
}

// SenderReport records an RTCP sender report's NTP and RTP timestamps.
func (m *Mapper) SenderReport(ntp uint64, rtpTS uint32) {
	if !m.anchored && !m.sr {
		// No packet yet: take the report's timestamp as the reference.
		m.unwrap.Accept(int64(rtpTS))
	}
	m.sr = true
	m.srNTP = NTPToNs(ntp)
	m.srTS = m.unwrap.Peek(rtpTS)
}

// Map returns the session time of RTP timestamp ts of a frame whose first
// packet arrived at arrival (session time). With Rejected the frame should
// be dropped; ns is then 0.
func (m *Mapper) Map(ts uint32, arrival int64) (ns int64, r Result) {
	ext := m.unwrap.Peek(ts)
	if !m.sr && !m.anchored {
		m.anchored, m.anchor = true, ext
	}
	var senderNs int64
	o := &m.own
	if m.sr {
		senderNs = m.srNTP + ticksToNs(ext-m.srTS, m.rate)
		m.sender.mu.Lock()
		defer m.sender.mu.Unlock()
		o = &m.sender.o
	} else {
		senderNs = ticksToNs(ext-m.anchor, m.rate)
	}
	if o.valid {
		d := arrival - (senderNs + o.off)
		if d > int64(m.cfg.MaxSkew) || d < -int64(m.cfg.MaxSkew) {
			m.bad++
			if m.bad < m.cfg.ReanchorAfter {
				m.rejected++
				return 0, Rejected
			}
			// The jump persists: a real reset of the sender's timestamps.
			m.reanchored++
			m.bad = 0
			m.sr = false
			m.anchored, m.anchor = true, ext
			m.own = offset{}
			m.unwrap.Accept(ext)
			m.own.observe(arrival, arrival)
			return arrival, Reanchored
		}
	}
	m.bad = 0
	m.unwrap.Accept(ext)
	o.observe(arrival-senderNs, arrival)
	return senderNs + o.off, OK
}
