package pipeline

import (
	"errors"
	"strings"
	"time"

	"github.com/custodian/custodian/recorder/clock"
	"github.com/custodian/custodian/recorder/depacket"
	"github.com/custodian/custodian/recorder/jitter"
	"github.com/custodian/custodian/recorder/ogg"
	"github.com/custodian/custodian/recorder/report"
	"github.com/pion/rtp"
)

// Packet errors returned by WriteRTP. They are also counted in the report;
// callers may ignore them.
var (
	// ErrInvalidPacket means the packet was dropped as malformed (bad
	// header or padding, empty payload, unknown payload type).
	ErrInvalidPacket = errors.New("pipeline: invalid RTP packet")
)

const maxLostRanges = 512

// Track is one received track of a Recording. Push its packets from one
// goroutine.
type Track struct {
	r      *Recording
	codec  depacket.Codec
	cfg    TrackConfig
	kind   string
	jb     *jitter.Buffer
	dp     depacket.Depacketizer
	mapper *clock.Mapper

	rate int64 // RTP clock rate

	// Audio placement (audioPlace): the RTP timestamp and timeline
	// place (48 kHz samples) of the last frame written, while locked. The
	// place is where the frame belongs; a frame less than overlapSamples
	// behind the audio written is written at its end instead.
	lockTS  uint32
	lockPos int64
	locked  bool

	hdr  rtp.Header
	jpkt jitter.Packet
	nack []uint16

	ssrc        uint32
	ssrcs       []uint32
	ssrcChanges int

	// Feedback state.
	lastKeyReq  int64
	keyReqs     uint64
	gateWaitKey bool // after the gate opened, or a dropped frame: wait for a keyframe
	needKey     bool

	// Loss tracking between frames.
	pendingLost uint64
	lastFrameNs int64 // session time just after the last frame written or mapped
	haveFrame   bool
	lost        []report.Range
	lostTrunc   bool

	firstAt, lastAt int64
	anyPacket       bool

	// Counters beyond the jitter buffer's.
	invalid   uint64
	gated     uint64
	discarded uint64
	written   uint64
	silence   int64 // samples (audio)
	restarts  uint64
	// lateRetired counts packets of a replaced SSRC that came after the
	// new one (reported as late).
	lateRetired uint64
	lostPrev    jitter.Stats // stats of jitter buffers before SSRC changes
	mapPrev     [2]uint64
}

func newTrack(r *Recording, c depacket.Codec, tc TrackConfig) (*Track, error) {
	dp, err := depacket.New(c)
	if err != nil {
		return nil, err
	}
	t := &Track{r: r, codec: c, cfg: tc, dp: dp, kind: "audio", needKey: c.Video(), lastKeyReq: -1 << 62}
	// The jitter window holds twice the latency of packets: audio at up
	// to 100 packets per second (10 ms frames; 64 slots, 7 KiB, for the
	// default 200 ms), video a keyframe burst too.
	size := max(64, int(2*r.cfg.JitterLatency/(10*time.Millisecond)))
	if c.Video() {
		t.kind = "video"
		size = max(512, int(2*r.cfg.JitterLatency/time.Millisecond))
	}
	t.jb = jitter.New(jitter.Config{Latency: r.cfg.JitterLatency, Size: size}, t.onPacket)
	rate := tc.ClockRate
	if rate == 0 {
		rate = 90000
		if c == depacket.Opus {
			rate = 48000
		}
	}
	t.rate = int64(rate)
	t.mapper = clock.NewMapper(rate, r.sender, clock.Config{MaxSkew: r.cfg.MaxSkew})
	return t, nil
}

// channels returns the Opus channel count from the negotiated parameters.
func (t *Track) channels() int {
	if strings.Contains(t.cfg.Fmtp, "stereo=1") || strings.Contains(t.cfg.Fmtp, "sprop-stereo=1") {
		return 2
	}
	return 1
}

// WriteRTP pushes one RTP packet as received (header and payload) that
// arrived at arrival. raw is not retained.
func (t *Track) WriteRTP(raw []byte, arrival time.Time) error {
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	now := r.clock.Since(arrival)
	n, err := t.hdr.Unmarshal(raw)
	payload := raw
	if err == nil {
		payload = raw[n:]
		if t.hdr.Padding {
			if len(payload) == 0 || int(payload[len(payload)-1]) > len(payload) || payload[len(payload)-1] == 0 {
				err = ErrInvalidPacket
			} else {
				payload = payload[:len(payload)-int(payload[len(payload)-1])]
			}
		}
	}
	if err != nil || t.hdr.Version != 2 {
		t.invalid++
		return ErrInvalidPacket
	}
	return t.push(&t.hdr, payload, now)
}

// WritePacket pushes one parsed RTP packet (pion's TrackRemote.ReadRTP)
// that arrived at arrival. p is not retained. pion has already removed
// padding from p.Payload.
func (t *Track) WritePacket(p *rtp.Packet, arrival time.Time) error {
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if p.Version != 2 {
		t.invalid++
		return ErrInvalidPacket
	}
	return t.push(&p.Header, p.Payload, r.clock.Since(arrival))
}

func (t *Track) push(h *rtp.Header, payload []byte, now int64) error {
	r := t.r
	if err := r.err(); err != nil {
		return err
	}
	if len(t.cfg.PayloadTypes) > 0 {
		ok := false
		for _, pt := range t.cfg.PayloadTypes {
			ok = ok || pt == h.PayloadType
		}
		if !ok {
			t.invalid++
			return ErrInvalidPacket
		}
	}
	if !t.anyPacket {
		t.anyPacket, t.firstAt = true, now
		if !r.mux.anyPacket {
			r.mux.anyPacket = true
			r.firstPacket(now)
		}
	}
	t.lastAt = now
	if h.SSRC != t.ssrc {
		if t.retired(h.SSRC) {
			// A straggler of a stream that was replaced.
			t.lateRetired++
			return nil
		}
		t.changeSSRC(h.SSRC)
	}
	if !r.mux.started && r.gate == GateOpen && len(payload) > 0 {
		// The recording's timeline starts at its first packet.
		r.mux.begin(now)
	}
	t.jpkt = jitter.Packet{
		SequenceNumber: h.SequenceNumber,
		Timestamp:      h.Timestamp,
		SSRC:           h.SSRC,
		PayloadType:    h.PayloadType,
		Marker:         h.Marker,
		Arrival:        now,
		Payload:        payload,
	}
	t.jb.Push(&t.jpkt)
	t.feedback(now)
	r.mux.maybeCut(now)
	if len(payload) == 0 {
		// Counted now; it still fills its sequence number in the buffer
		// so that it does not look lost.
		t.invalid++
		return ErrInvalidPacket
	}
	return nil
}

func (t *Track) retired(ssrc uint32) bool {
	for _, s := range t.ssrcs {
		if s == ssrc {
			return true
		}
	}
	return false
}

// changeSSRC starts a new stream on this track: what the old one still
// held is released, and the new one is mapped on the same timeline.
func (t *Track) changeSSRC(ssrc uint32) {
	if t.ssrc != 0 {
		t.ssrcChanges++
		t.jb.Reset()
		t.mapper.Reset()
		t.locked = false // the new stream's timestamps have their own base
		t.needKey = t.codec.Video()
	}
	t.ssrc = ssrc
	if len(t.ssrcs) < 16 {
		t.ssrcs = append(t.ssrcs, ssrc)
	}
}

// feedback sends NACKs for missing packets and keyframe requests while
// the track waits for one.
func (t *Track) feedback(now int64) {
	if !t.cfg.NoNACK && t.jb.Missing() {
		t.nack = t.jb.AppendNACKs(t.nack[:0], now)
		if len(t.nack) > 0 {
			t.r.fb.NACK(t.ssrc, t.nack)
		}
	}
	if t.codec.Video() && (t.dp.NeedKeyframe() || t.gateWaitKey || t.needKey) {
		t.requestKeyframe(now, false)
	}
}

func (t *Track) requestKeyframe(now int64, force bool) {
	if t.ssrc == 0 {
		return
	}
	if !force && now-t.lastKeyReq < int64(t.r.cfg.KeyframeInterval) {
		return
	}
	if t.r.gate != GateOpen && !force {
		return // no use while nothing is recorded
	}
	t.lastKeyReq = now
	t.keyReqs++
	t.r.fb.RequestKeyframe(t.ssrc)
}

// onPacket receives the jitter buffer's packets in sequence order.
func (t *Track) onPacket(p *jitter.Packet) {
	if p.LostBefore > 0 {
		t.pendingLost += p.LostBefore
	}
	if len(p.Payload) == 0 {
		return
	}
	f, err := t.dp.Push(p)
	if err != nil || f == nil {
		return
	}
	t.onFrame(f)
}

// onFrame places a complete frame on the timeline and hands it to the
// muxer unless the gate is closed.
func (t *Track) onFrame(f *depacket.Frame) {
	r := t.r
	ns, res := t.mapper.Map(f.Timestamp, f.Arrival)
	if res == clock.Rejected {
		t.invalid += uint64(f.Packets)
		if t.codec.Video() {
			t.gateWaitKey = true
		}
		return
	}
	if res == clock.Reanchored {
		t.locked = false // the sender reset its timestamps
	}
	if t.pendingLost > 0 {
		t.noteLoss(ns)
	}
	t.haveFrame = true
	t.lastFrameNs = ns
	if t.codec == depacket.Opus {
		if n, err := ogg.PacketSamples(f.Data); err == nil {
			t.lastFrameNs += int64(n) * 1e9 / ogg.SampleRate
		}
	}
	if r.gatedAt(ns) {
		t.gated += uint64(f.Packets)
		if t.codec.Video() {
			t.gateWaitKey = true
		}
		return
	}
	if t.codec.Video() {
		if (t.gateWaitKey || t.needKey) && !f.Keyframe {
			t.discarded++
			return
		}
		t.gateWaitKey, t.needKey = false, false
	}
	if r.mux.write(t, ns, f) {
		t.written++
	} else {
		t.discarded++
	}
}

// noteLoss records a lost span ending at ns (the next frame's time).
func (t *Track) noteLoss(ns int64) {
	start := t.lastFrameNs
	if !t.haveFrame {
		start = ns
	}
	rg := report.Range{Kind: report.KindLost, Track: t.kind, SessionStartMS: start / 1e6, SessionEndMS: max(ns, start) / 1e6, Packets: t.pendingLost}
	t.pendingLost = 0
	if n := len(t.lost); n > 0 && rg.SessionStartMS-t.lost[n-1].SessionEndMS < 100 {
		t.lost[n-1].SessionEndMS = rg.SessionEndMS
		t.lost[n-1].Packets += rg.Packets
		return
	}
	if len(t.lost) >= maxLostRanges {
		t.lostTrunc = true
		t.lost[len(t.lost)-1].SessionEndMS = rg.SessionEndMS
		t.lost[len(t.lost)-1].Packets += rg.Packets
		return
	}
	t.lost = append(t.lost, rg)
}
