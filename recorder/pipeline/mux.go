package pipeline

import (
	"fmt"
	"time"

	"github.com/custodian/custodian/recorder/depacket"
	"github.com/custodian/custodian/recorder/ogg"
	"github.com/custodian/custodian/recorder/webm"
)

const (
	// overlapSamples: an audio frame this far behind the audio written so
	// far is dropped rather than written late (48 kHz samples, 60 ms).
	overlapSamples = 2880
	// lockSamples: an audio frame is placed RTP-continuous with the
	// track's previous one while that place is within this much of where
	// the clock mapping puts it (48 kHz samples, 200 ms). The mapping
	// moves by the spread of network delay (its min-filter falls as
	// packets meet less delay and rises in 10 s windows); spreads beyond
	// the jitter buffer's default 200 ms latency lose packets anyway.
	// Beyond it (a timestamp reset or skip, a sender pause its timestamps
	// do not count, sender clock drift past 200 ms, which takes over half
	// an hour at 100 ppm) the mapping's place is taken and locking starts
	// again from there.
	lockSamples = 9600
	// minSilence is the shortest silence frame (2.5 ms).
	minSilence = 120
	// oggPreSkip is the Ogg stream's pre-skip, which players discard
	// from the start of the decoded audio: libopus's encoder delay
	// (312 samples) rounded up to whole 2.5 ms frames. The stream starts
	// with that much silence and every granule position is the timeline
	// position plus the pre-skip, so the playback length is the
	// timeline's and audio lines up with capture time to within 1 ms.
	oggPreSkip = 360
)

// muxer places frames on the recording timeline and writes them to the
// container, cutting parts. It is guarded by the Recording's lock.
type muxer struct {
	r *Recording

	anyPacket bool
	started   bool
	start     int64 // session ns of the timeline's zero

	ogg  *ogg.Writer
	webm *webm.Writer

	hdrDone bool
	buf     []byte // the part being built

	lastCutWall  int64 // session ns of the last cut
	lastCutMedia int64 // timeline ns of media at the last cut
	mediaEnd     int64 // timeline ns of the end of the media written

	audioPos    int64 // 48 kHz samples written (decoded samples)
	audioBase   int64 // samples before timeline zero (the Ogg pre-skip)
	videoLastTC int64
}

func (m *muxer) begin(ns int64) {
	r := m.r
	m.started = true
	m.start = ns
	m.lastCutWall = ns
	start := r.clock.Time(ns).UTC()
	r.live.start.Store(start.UnixNano())
	if r.video == nil {
		m.ogg = ogg.NewWriter(uint32(ns) | 1)
		m.audioBase = oggPreSkip
		_ = m.ogg.WritePacket(ogg.OpusHead(r.audio.channels(), oggPreSkip, 48000), 0)
		m.buf = m.ogg.Flush(m.buf, false)
		_ = m.ogg.WritePacket(ogg.OpusTags("custodian", "CUSTODIAN_START="+start.Format(time.RFC3339Nano)), 0)
		m.buf = m.ogg.Flush(m.buf, false)
		m.hdrDone = true
		m.buf = r.emitPart(m.buf)
		return
	}
	m.webm = webm.NewWriter(m.header(start))
}

// header describes the WebM/Matroska header from what is known so far.
func (m *muxer) header(start time.Time) webm.Header {
	r := m.r
	h := webm.Header{DocType: "webm", Start: start}
	if m.webm != nil {
		h = m.webm.HeaderInfo()
	}
	h.Tracks = h.Tracks[:0]
	if a := r.audio; a != nil {
		h.Tracks = append(h.Tracks, webm.Track{
			Number: webm.AudioTrack, CodecID: webm.CodecOpus,
			CodecPrivate: ogg.OpusHead(a.channels(), 0, 48000),
			SampleRate:   48000, Channels: uint64(a.channels()),
		})
	}
	if v := r.video; v != nil {
		id := webm.CodecVP8
		switch v.codec {
		case depacket.VP9:
			id = webm.CodecVP9
		case depacket.AV1:
			id = webm.CodecAV1
		case depacket.H264:
			id = webm.CodecH264
			h.DocType = "matroska"
		}
		vt := webm.Track{Number: webm.VideoTrack, CodecID: id, CodecPrivate: v.dp.CodecPrivate()}
		if m.webm != nil {
			for _, old := range m.webm.HeaderInfo().Tracks {
				if old.Number == webm.VideoTrack {
					vt.Width, vt.Height = old.Width, old.Height
				}
			}
		}
		h.Tracks = append(h.Tracks, vt)
	}
	return h
}

// writeHeader emits the WebM header part.
func (m *muxer) writeHeader() {
	out, err := m.webm.AppendHeader(nil)
	if err != nil {
		// Codec parameters too large: record without them.
		h := m.webm.HeaderInfo()
		for i := range h.Tracks {
			if h.Tracks[i].Number == webm.VideoTrack {
				h.Tracks[i].CodecPrivate = nil
			}
		}
		m.webm.SetHeader(h)
		out, err = m.webm.AppendHeader(nil)
		if err != nil {
			m.r.fail(0, fmt.Errorf("webm header: %w", err))
			return
		}
	}
	m.hdrDone = true
	m.r.emitPart(out)
}

// write places frame f of track t, mapped to session time ns, on the
// timeline. It reports false when the frame was dropped (overlap).
func (m *muxer) write(t *Track, ns int64, f *depacket.Frame) bool {
	if !m.started {
		m.begin(ns)
	}
	rel := max(ns-m.start, 0)
	if t.codec == depacket.Opus {
		n, err := ogg.PacketSamples(f.Data)
		if err != nil {
			return false
		}
		target := t.audioPlace(f.Timestamp, rel*ogg.SampleRate/1e9+m.audioBase)
		if target < m.audioPos-overlapSamples {
			return false
		}
		t.lockTS, t.lockPos, t.locked = f.Timestamp, target, true
		m.fillSilence(t, target)
		m.writeAudioAt(f.Data, int64(n))
		m.mediaEnd = max(m.mediaEnd, (m.audioPos-m.audioBase)*1e9/ogg.SampleRate)
	} else {
		tc := max(rel/1e6, m.videoLastTC, 0)
		m.videoLastTC = tc
		if f.Keyframe && f.Width > 0 {
			h := m.webm.HeaderInfo()
			for i := range h.Tracks {
				if h.Tracks[i].Number == webm.VideoTrack {
					h.Tracks[i].Width, h.Tracks[i].Height = uint64(f.Width), uint64(f.Height)
					h.Tracks[i].CodecPrivate = t.dp.CodecPrivate()
				}
			}
			m.webm.SetHeader(h)
		}
		if !m.hdrDone && f.Keyframe {
			m.writeHeader()
		}
		m.webm.WriteBlock(webm.VideoTrack, tc, f.Keyframe, f.Data)
		m.mediaEnd = max(m.mediaEnd, rel)
	}
	if m.mediaEnd-m.lastCutMedia >= int64(m.r.cfg.PartDuration) {
		m.cut(ns)
	}
	return true
}

// audioPlace returns the timeline place (48 kHz samples) of an audio
// frame with RTP timestamp ts that the clock mapping puts at mapped: the
// place continuous in RTP time with the last frame written, unless that
// is more than lockSamples from mapped. So network jitter moves neither
// speech (no silence inserted, no frame dropped) nor a DTX gap's end.
func (t *Track) audioPlace(ts uint32, mapped int64) int64 {
	if !t.locked {
		return mapped
	}
	d := int64(int32(ts - t.lockTS))
	if t.rate != ogg.SampleRate {
		d = d * ogg.SampleRate / t.rate
	}
	if p := t.lockPos + d; p-mapped <= lockSamples && mapped-p <= lockSamples {
		return p
	}
	return mapped
}

// fillSilence writes Opus silence frames until the audio reaches target
// (48 kHz samples) to within 2.5 ms.
func (m *muxer) fillSilence(t *Track, target int64) {
	for target-m.audioPos >= minSilence {
		gap := target - m.audioPos
		n := int64(minSilence)
		for _, s := range ogg.SilenceSamples {
			if int64(s) <= gap {
				n = int64(s)
				break
			}
		}
		m.writeAudioAt(ogg.SilenceFrame(int(n)), n)
		t.silence += n
	}
}

// writeAudioAt writes an audio packet of n samples at the current
// position.
func (m *muxer) writeAudioAt(p []byte, n int64) {
	if m.ogg != nil {
		_ = m.ogg.WritePacket(p, m.audioPos+n)
		m.buf = m.ogg.AppendPages(m.buf)
	} else {
		m.webm.WriteBlock(webm.AudioTrack, (m.audioPos-m.audioBase)/48, true, p)
	}
	m.audioPos += n
}

// maybeCut seals a part when the part duration has passed in wall time.
func (m *muxer) maybeCut(now int64) {
	if m.started && now-m.lastCutWall >= int64(m.r.cfg.PartDuration) {
		m.cut(now)
	}
}

func (m *muxer) tick(now int64) { m.maybeCut(now) }

// cut seals the buffered media as a part.
func (m *muxer) cut(now int64) {
	if m.webm != nil && !m.hdrDone {
		if now-m.start < int64(m.r.cfg.PartDuration) {
			return // wait a little longer for the first keyframe
		}
		m.writeHeader()
	}
	if m.ogg != nil {
		m.buf = m.ogg.Flush(m.buf, false)
	} else {
		m.buf = m.webm.AppendCluster(m.buf)
	}
	m.buf = m.r.emitPart(m.buf)
	m.lastCutWall = now
	m.lastCutMedia = m.mediaEnd
}

// finish pads the timeline to endNs and returns the last part and, for
// WebM, the header part to rewrite.
func (m *muxer) finish(endNs int64) (final, hdr []byte, err error) {
	if !m.started {
		return nil, nil, nil
	}
	r := m.r
	endRel := max(endNs-m.start, m.mediaEnd)
	if r.audio != nil {
		endSamples := endRel*ogg.SampleRate/1e9 + m.audioBase
		m.fillSilence(r.audio, endSamples)
		if m.ogg != nil && endSamples > m.audioPos {
			// Last frame: its granule trims the decoded silence to the
			// exact end (RFC 7845 section 4.5).
			_ = m.ogg.WritePacket(ogg.SilenceFrame(minSilence), endSamples)
			r.audio.silence += endSamples - m.audioPos
			m.audioPos = endSamples
		}
	}
	m.mediaEnd = endRel
	if m.ogg != nil {
		return m.ogg.Flush(m.buf, true), nil, nil
	}
	if !m.hdrDone {
		m.writeHeader()
	}
	final = m.webm.AppendCluster(m.buf)
	final, err = m.webm.AppendCues(final)
	h := m.webm.HeaderInfo()
	h.Duration = time.Duration(endRel)
	m.webm.SetHeader(h)
	hdr, herr := m.webm.AppendHeader(nil)
	if herr != nil {
		return final, nil, herr
	}
	return final, hdr, err
}
