package whip

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"time"

	"github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"
)

// stream is one track's sending state: which frame is next, its RTP
// sequence number and timestamp, and when it is due. It is driven either
// by the publisher's own goroutine (sendLoop) or by a Pool's pacer. It
// sends without allocating: one reused packet and one payload buffer.
type stream struct {
	p      *Publisher
	ctx    context.Context
	t0     time.Time
	m      *Media
	track  *pion.TrackLocalStaticRTP
	st     *sendStats
	isVP8  bool
	origID uint32 // the sender's SSRC

	i       int
	seq     uint16
	ts      uint32
	ticks   uint64        // media time of the next frame in clock ticks
	media   time.Duration // the same as a duration
	changed bool
	wasGap  bool
	first   bool
	picID   uint16 // VP8 picture ID (15 bits)

	pkt     rtp.Packet
	payload []byte

	// Pacer state.
	due  time.Time
	heap int // index in the pacer's heap
}

func (p *Publisher) newStream(ctx context.Context, t0 time.Time, m *Media, track *pion.TrackLocalStaticRTP, sender *pion.RTPSender) *stream {
	st := p.sent[m.Kind]
	s := &stream{p: p, ctx: ctx, t0: t0, m: m, track: track, st: st, isVP8: m.Kind == "video", first: true, due: t0}
	if enc := sender.GetParameters().Encodings; len(enc) > 0 {
		s.origID = uint32(enc[0].SSRC)
	}
	st.mu.Lock()
	st.ssrcs = append(st.ssrcs, s.origID)
	st.mu.Unlock()
	s.seq, s.ts = initialSeqTS(m, p.opts.Impairment.WrapAfter)
	s.picID = uint16(rand.Uint32()) & 0x7fff
	if s.isVP8 {
		s.payload = make([]byte, maxRTPPayload)
	}
	return s
}

// finished reports whether the stream has sent its duration or was
// cancelled.
func (s *stream) finished() bool {
	d := s.p.opts.Duration
	return (d > 0 && s.media >= d) || s.ctx.Err() != nil
}

// sendLoop sends the stream with real-time pacing from its own goroutine
// until opts.Duration or ctx ends.
func (p *Publisher) sendLoop(s *stream) {
	defer p.wg.Done()
	defer p.sending.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for !s.finished() {
		if d := time.Until(s.due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-s.ctx.Done():
				return
			}
		}
		if !s.sendFrame() {
			return
		}
	}
}

// sendFrame sends the next frame (or keeps time through a DTX gap) and
// advances to the one after. It reports false when sending failed.
func (s *stream) sendFrame() bool {
	im := s.p.opts.Impairment
	m := s.m
	if im.SSRCChangeAt > 0 && !s.changed && s.media >= im.SSRCChangeAt {
		s.changed = true
		n := s.p.impair.ic.changeSSRC(s.origID)
		s.st.mu.Lock()
		s.st.ssrcs = append(s.st.ssrcs, n)
		s.st.mu.Unlock()
		s.seq, s.ts = uint16(rand.Uint32()), rand.Uint32()
		s.first = true
	}
	f := &m.Frames[s.i%len(m.Frames)]
	s.i++
	if m.Kind == "audio" && im.inDTX(s.media) {
		s.wasGap = true
	} else {
		if s.isVP8 {
			if !s.sendVP8(f.Data) {
				return false
			}
		} else if !s.send(f.Data, s.wasGap || s.first) {
			// Audio: the marker bit starts a talkspurt (RFC 3551 section 4.1).
			return false
		}
		s.st.frames.Add(1)
		s.wasGap, s.first = false, false
	}
	s.ts += f.RTPDuration
	s.ticks += uint64(f.RTPDuration)
	cr := uint64(m.ClockRate)
	s.media = time.Duration(s.ticks/cr)*time.Second + time.Duration(s.ticks%cr*uint64(time.Second)/cr)
	s.due = s.t0.Add(s.media)
	return true
}

// sendVP8 packetizes one VP8 frame (RFC 7741 payload descriptor with a
// 15-bit picture ID, at most maxRTPPayload bytes per packet; the marker
// bit on the frame's last packet).
func (s *stream) sendVP8(frame []byte) bool {
	const hdr = 4
	room := maxRTPPayload - hdr
	for off := 0; off < len(frame) || off == 0; {
		n := min(room, len(frame)-off)
		b := s.payload[:hdr+n]
		b[0] = 0x80 // X: extensions present
		if off == 0 {
			b[0] |= 0x10 // S: start of the frame
		}
		b[1] = 0x80 // I: picture ID present
		b[2] = 0x80 | byte(s.picID>>8)
		b[3] = byte(s.picID)
		copy(b[hdr:], frame[off:off+n])
		off += n
		if !s.send(b, off >= len(frame)) {
			return false
		}
		if n == 0 {
			break
		}
	}
	s.picID = (s.picID + 1) & 0x7fff
	return true
}

// send writes one RTP packet with the next sequence number.
func (s *stream) send(payload []byte, marker bool) bool {
	s.pkt.Header = rtp.Header{Version: 2, SequenceNumber: s.seq, Timestamp: s.ts, Marker: marker}
	s.pkt.Payload = payload
	if err := s.track.WriteRTP(&s.pkt); err != nil {
		if s.ctx.Err() == nil && !errors.Is(err, io.ErrClosedPipe) {
			s.p.log.Warn("whip: write rtp", "kind", s.m.Kind, "err", err)
		}
		return false
	}
	s.seq++
	s.st.packets.Add(1)
	s.st.bytes.Add(uint64(len(payload)))
	return true
}
