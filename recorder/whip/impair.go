package whip

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// Impairment is what a publisher does to its own stream to test the
// recorder. The zero value sends a clean stream.
type Impairment struct {
	// LossPercent drops each outgoing RTP packet with this probability
	// (0-100). Loss happens at the wire, after pion's NACK responder kept
	// the packet, so the receiver can recover it with a NACK unless
	// NoRetransmit is set. Retransmissions are subject to loss too.
	LossPercent float64
	// NoRetransmit leaves out the NACK responder: every lost packet stays a
	// gap in the received sequence numbers.
	NoRetransmit bool
	// ReorderPercent holds back each packet with this probability (0-100)
	// and sends it right after the next packet of its stream (or after
	// 50 ms, whichever comes first).
	ReorderPercent float64
	// Jitter delays each packet by a uniformly random 0..Jitter, keeping
	// the order of packets within a stream.
	Jitter time.Duration
	// DTX are intervals, measured from the start of sending, in which no
	// audio is sent (discontinuous transmission) while time goes on: after
	// a gap the RTP timestamp has advanced by the gap, the sequence number
	// has not, and the first packet carries the marker bit.
	DTX []Gap
	// SSRCChangeAt switches every stream to a new random SSRC, sequence
	// number and timestamp this long after the start (0: never), as a
	// restarted encoder would. pion routes an undeclared SSRC only for an
	// offer with a single media section and no a=ssrc lines (OmitSSRC);
	// in a bundle with declared SSRCs the receiver drops the new stream.
	SSRCChangeAt time.Duration
	// WrapAfter chooses the initial RTP sequence numbers and timestamps so
	// that both wrap around (65535→0, 2^32-1→0) about this long after the
	// start (0: random initial values, like a real sender).
	WrapAfter time.Duration
	// DropPackets drops the first transmission of the listed packets of
	// a stream, by kind ("audio", "video") and position (0: the stream's
	// first packet sent). A retransmission of such a packet (after a
	// NACK) goes through and is counted in StreamStats.Retransmitted: one
	// deterministic loss, to check how the receiver recovers it.
	DropPackets map[string][]int
	// Seed makes loss, reordering and jitter reproducible (0: random).
	Seed uint64
}

// Gap is an interval measured from the start of sending.
type Gap struct {
	Start, Length time.Duration
}

// ErrBadImpairment is returned by Publish for out-of-range impairments.
var ErrBadImpairment = errors.New("whip: invalid impairment")

func (im Impairment) validate() error {
	switch {
	case im.LossPercent < 0 || im.LossPercent > 100:
		return fmt.Errorf("%w: loss %v%% not in [0, 100]", ErrBadImpairment, im.LossPercent)
	case im.ReorderPercent < 0 || im.ReorderPercent > 100:
		return fmt.Errorf("%w: reorder %v%% not in [0, 100]", ErrBadImpairment, im.ReorderPercent)
	case im.Jitter < 0 || im.Jitter > 10*time.Second:
		return fmt.Errorf("%w: jitter %v not in [0, 10s]", ErrBadImpairment, im.Jitter)
	case im.SSRCChangeAt < 0 || im.WrapAfter < 0:
		return fmt.Errorf("%w: negative time", ErrBadImpairment)
	}
	for _, g := range im.DTX {
		if g.Start < 0 || g.Length <= 0 {
			return fmt.Errorf("%w: DTX gap %v+%v", ErrBadImpairment, g.Start, g.Length)
		}
	}
	for kind, ns := range im.DropPackets {
		if kind != "audio" && kind != "video" {
			return fmt.Errorf("%w: drop packets of kind %q (want audio or video)", ErrBadImpairment, kind)
		}
		for _, n := range ns {
			if n < 0 || n > 1<<15 {
				return fmt.Errorf("%w: drop packet %d not in [0, 32768]", ErrBadImpairment, n)
			}
		}
	}
	return nil
}

func (im Impairment) inDTX(t time.Duration) bool {
	for _, g := range im.DTX {
		if t >= g.Start && t < g.Start+g.Length {
			return true
		}
	}
	return false
}

// linkStats counts what the impairment interceptor did, per kind.
type linkStats struct {
	dropped, reordered, nacks, plis atomic.Uint64
	// nackedSeqs counts sequence numbers listed in NACKs received;
	// retransmitted counts DropPackets packets sent again.
	nackedSeqs, retransmitted atomic.Uint64
}

// dropList is the DropPackets state of one stream.
type dropList struct {
	positions map[int]bool
	started   bool
	first     uint16          // sequence number of the stream's first packet
	dropped   map[uint16]bool // sequence numbers dropped once
}

// drop reports whether the packet with sequence number seq is to be
// dropped, and whether it is a retransmission of a dropped one.
func (d *dropList) drop(seq uint16) (drop, retransmission bool) {
	if !d.started {
		d.started, d.first = true, seq
	}
	if d.dropped[seq] {
		delete(d.dropped, seq)
		return false, true
	}
	if d.positions[int(seq-d.first)] {
		delete(d.positions, int(seq-d.first))
		d.dropped[seq] = true
		return true, false
	}
	return false, false
}

// impairFactory makes the interceptor for one publisher's PeerConnection.
type impairFactory struct {
	im    Impairment
	kinds func(ssrc uint32) string // "audio"/"video" for a local SSRC
	stats map[string]*linkStats
	ic    *impairInterceptor
}

func (f *impairFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	seed := f.im.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	f.ic = &impairInterceptor{
		im:    f.im,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		ssrc:  map[uint32]uint32{},
		f:     f,
		links: map[uint32]*link{},
	}
	return f.ic, nil
}

// impairInterceptor sits nearest the network. Outgoing RTP: SSRC rewrite
// (after SSRCChangeAt), loss, reordering, jitter. Outgoing RTCP: SSRC rewrite
// of sender reports and SDES. Incoming RTCP: counts NACKs and PLIs.
type impairInterceptor struct {
	interceptor.NoOp
	im Impairment
	f  *impairFactory

	mu    sync.Mutex
	rng   *rand.Rand
	ssrc  map[uint32]uint32 // original → wire SSRC, once changed
	links map[uint32]*link  // per original SSRC, when jitter or reordering is on
}

// changeSSRC makes the wire carry a new random SSRC for the stream orig.
func (ic *impairInterceptor) changeSSRC(orig uint32) uint32 {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	n := ic.rng.Uint32()
	ic.ssrc[orig] = n
	return n
}

func (ic *impairInterceptor) wireSSRC(orig uint32) uint32 {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if n, ok := ic.ssrc[orig]; ok {
		return n
	}
	return orig
}

func (ic *impairInterceptor) roll(percent float64) bool {
	if percent <= 0 {
		return false
	}
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return ic.rng.Float64()*100 < percent
}

func (ic *impairInterceptor) stats(ssrc uint32) *linkStats {
	if s := ic.f.stats[ic.f.kinds(ssrc)]; s != nil {
		return s
	}
	return ic.f.stats["video"]
}

func (ic *impairInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	st := ic.stats(info.SSRC)
	var drops *dropList
	if ns := ic.im.DropPackets[ic.f.kinds(info.SSRC)]; len(ns) > 0 {
		drops = &dropList{positions: map[int]bool{}, dropped: map[uint16]bool{}}
		for _, n := range ns {
			drops.positions[n] = true
		}
	}
	var l *link
	if ic.im.Jitter > 0 || ic.im.ReorderPercent > 0 {
		ic.mu.Lock()
		l = newLink(w, ic.im.Jitter, ic.rng.Uint64())
		ic.links[info.SSRC] = l
		ic.mu.Unlock()
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if drops != nil {
			ic.mu.Lock()
			drop, rtx := drops.drop(h.SequenceNumber)
			ic.mu.Unlock()
			if drop {
				st.dropped.Add(1)
				return len(payload), nil
			}
			if rtx {
				st.retransmitted.Add(1)
			}
		}
		if ic.roll(ic.im.LossPercent) {
			st.dropped.Add(1)
			return len(payload), nil
		}
		hdr := *h
		hdr.SSRC = ic.wireSSRC(h.SSRC)
		if l == nil {
			return w.Write(&hdr, payload, a)
		}
		reorder := ic.roll(ic.im.ReorderPercent)
		if reorder {
			st.reordered.Add(1)
		}
		l.send(&hdr, payload, a, reorder)
		return len(payload), nil
	})
}

func (ic *impairInterceptor) UnbindLocalStream(info *interceptor.StreamInfo) {
	ic.mu.Lock()
	l := ic.links[info.SSRC]
	delete(ic.links, info.SSRC)
	ic.mu.Unlock()
	if l != nil {
		l.close()
	}
}

func (ic *impairInterceptor) Close() error {
	ic.mu.Lock()
	links := ic.links
	ic.links = map[uint32]*link{}
	ic.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	return nil
}

func (ic *impairInterceptor) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.SenderReport:
				p.SSRC = ic.wireSSRC(p.SSRC)
			case *rtcp.SourceDescription:
				for i := range p.Chunks {
					p.Chunks[i].Source = ic.wireSSRC(p.Chunks[i].Source)
				}
			}
		}
		return w.Write(pkts, a)
	})
}

func (ic *impairInterceptor) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		pkts, perr := rtcp.Unmarshal(b[:n])
		if perr == nil {
			for _, p := range pkts {
				switch p := p.(type) {
				case *rtcp.TransportLayerNack:
					ls := ic.statsByWire(p.MediaSSRC)
					ls.nacks.Add(1)
					for _, pair := range p.Nacks {
						ls.nackedSeqs.Add(uint64(len(pair.PacketList())))
					}
				case *rtcp.PictureLossIndication:
					ic.statsByWire(p.MediaSSRC).plis.Add(1)
				case *rtcp.FullIntraRequest:
					ic.statsByWire(p.MediaSSRC).plis.Add(1)
				}
			}
		}
		return n, a, err
	})
}

// statsByWire finds the stats of a stream by an SSRC seen on the wire.
func (ic *impairInterceptor) statsByWire(ssrc uint32) *linkStats {
	ic.mu.Lock()
	for orig, wire := range ic.ssrc {
		if wire == ssrc {
			ssrc = orig
			break
		}
	}
	ic.mu.Unlock()
	return ic.stats(ssrc)
}

// link delays packets of one stream by random jitter (order kept) and swaps
// packets marked for reordering with their successor.
type link struct {
	w      interceptor.RTPWriter
	jitter time.Duration
	rng    *rand.Rand
	in     chan linkPacket
	done   chan struct{}
	once   sync.Once

	mu       sync.Mutex
	lastDue  time.Time
	closed   bool
	finished chan struct{}
}

type linkPacket struct {
	hdr     rtp.Header
	payload []byte
	attrs   interceptor.Attributes
	due     time.Time
	hold    bool
}

func newLink(w interceptor.RTPWriter, jitter time.Duration, seed uint64) *link {
	l := &link{
		w: w, jitter: jitter, rng: rand.New(rand.NewPCG(seed, seed+1)),
		in: make(chan linkPacket, 4096), done: make(chan struct{}), finished: make(chan struct{}),
	}
	go l.run()
	return l
}

const maxHold = 50 * time.Millisecond

func (l *link) send(h *rtp.Header, payload []byte, a interceptor.Attributes, hold bool) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	due := time.Now()
	if l.jitter > 0 {
		due = due.Add(time.Duration(l.rng.Int64N(int64(l.jitter) + 1)))
	}
	if due.Before(l.lastDue) {
		due = l.lastDue
	}
	l.lastDue = due
	p := linkPacket{hdr: *h, payload: append([]byte(nil), payload...), attrs: a, due: due, hold: hold}
	p.hdr.CSRC = append([]uint32(nil), h.CSRC...)
	p.hdr.Extensions = append([]rtp.Extension(nil), h.Extensions...)
	l.mu.Unlock()
	select {
	case l.in <- p:
	default: // queue full: the link drops, like a real one
	}
}

func (l *link) run() {
	defer close(l.finished)
	var held *linkPacket
	var holdUntil <-chan time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	flush := func() {
		if held != nil {
			_, _ = l.w.Write(&held.hdr, held.payload, held.attrs)
			held, holdUntil = nil, nil
		}
	}
	for {
		select {
		case <-l.done:
			flush()
			return
		case <-holdUntil:
			flush()
		case p := <-l.in:
			if d := time.Until(p.due); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-l.done:
					flush()
					return
				}
			}
			if p.hold && held == nil {
				held = &p
				holdUntil = time.After(maxHold)
				continue
			}
			_, _ = l.w.Write(&p.hdr, p.payload, p.attrs)
			flush()
		}
	}
}

func (l *link) close() {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.done)
		<-l.finished
	})
}
