package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/recorder/pipeline"
	"github.com/custodian/custodian/recorder/report"
	rtc "github.com/custodian/custodian/recorder/webrtc"
	"github.com/custodian/custodian/storage/meta"
)

// conn is one participant connection: one WHIP resource, one pion
// PeerConnection, one pipeline.Recording, at most one recording.
type conn struct {
	r           *Recorder
	s           *session
	id          string // WHIP resource id
	participant string
	decision    policy.Decision
	log         *slog.Logger

	pc          *pion.PeerConnection
	rec         *pipeline.Recording
	tracks      map[string]*pipeline.Track // by kind
	codecs      []string                   // codec names, audio first
	contentType string
	sink        *sink

	created time.Time
	// gate is the pipeline's gate; guarded by s.mu.
	gate pipeline.Gate
	// lastPacket is the last RTP packet's arrival in unix nanoseconds (0:
	// none yet).
	lastPacket      atomic.Int64
	missingReported atomic.Bool
	// seen is the pipeline's Stats as last added to the metrics
	// (accountStats).
	statsMu      sync.Mutex
	seen         pipeline.Stats
	activeTracks atomic.Int32

	ready    chan struct{} // closed once rec exists
	attached atomic.Bool   // the connection is in s.conns with its pipeline

	// annotate, when set before the connection is attached, adds entries to
	// the completeness report at finalization (pulls: the source, a
	// reconnect gap).
	annotate func(rep *report.Report) map[string]any
	// endAt, when set (unix ns) before end, is the end of the recording's
	// timeline instead of the time end runs (a dropped pull: its last
	// packet, so the dead time is a reported gap, not silence).
	endAt atomic.Int64
	// endReason is why the connection ended; set by end before done closes.
	endReason string

	mu      sync.Mutex
	closed  bool
	readers sync.WaitGroup

	fb     chan feedbackReq
	fbDone chan struct{}

	ctx     context.Context // the pipeline's background context
	cancel  context.CancelFunc
	endOnce sync.Once
	done    chan struct{}
}

// feedbackReq is a NACK (seqs set) or keyframe request for the feedback
// goroutine.
type feedbackReq struct {
	ssrc uint32
	seqs []uint16
}

var _ pipeline.Feedback = (*conn)(nil)

// NACK implements pipeline.Feedback: queued, never blocking.
func (c *conn) NACK(ssrc uint32, seqs []uint16) {
	req := feedbackReq{ssrc: ssrc, seqs: append([]uint16(nil), seqs...)}
	select {
	case c.fb <- req:
	default:
	}
}

// RequestKeyframe implements pipeline.Feedback: queued, never blocking.
func (c *conn) RequestKeyframe(ssrc uint32) {
	select {
	case c.fb <- feedbackReq{ssrc: ssrc}:
	default:
	}
}

// control is the connection's one background goroutine besides the read
// loops: it writes the pipeline's NACKs and PLIs as RTCP, drives the
// pipeline's time (Recording.Tick every interval: jitter release, NACK
// and PLI repeats, time-based parts) and adds its live counters to the
// metrics, and ends the connection when its recording fails (a storage
// error ends only this connection). It returns when the connection is
// done.
func (c *conn) control(every time.Duration) {
	defer close(c.fbDone)
	plis := map[uint32]*rtc.KeyframeRequester{}
	tk := time.NewTicker(every)
	defer tk.Stop()
	ticking := true
	failed := c.rec.Failed()
	for {
		select {
		case <-c.done:
			return
		case req := <-c.fb:
			if req.seqs == nil {
				kr := plis[req.ssrc]
				if kr == nil {
					kr = rtc.NewKeyframeRequester(c.pc, req.ssrc, 0)
					plis[req.ssrc] = kr
				}
				if sent, _ := kr.Request(); sent {
					c.r.metrics.plis.Inc()
				}
				continue
			}
			pkt := &rtcp.TransportLayerNack{MediaSSRC: req.ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(req.seqs)}
			if err := c.pc.WriteRTCP([]rtcp.Packet{pkt}); err == nil {
				c.r.metrics.nacks.Add(float64(len(req.seqs)))
			}
		case now := <-tk.C:
			if !ticking {
				continue
			}
			if errors.Is(c.rec.Tick(now), pipeline.ErrClosed) {
				ticking = false // finalizing: Close took over
				continue
			}
			c.accountStats()
		case <-failed:
			failed = nil
			c.log.Warn("recording failed; ending the connection", "err", c.rec.Err())
			go c.end(c.r.bg, endFailed) // end waits for this goroutine
		}
	}
}

// lastMedia is when media last arrived (the connection's creation before
// the first packet).
func (c *conn) lastMedia() time.Time {
	if ns := c.lastPacket.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return c.created
}

func (c *conn) hasMedia() bool { return c.lastPacket.Load() != 0 }

// reportMissing reports true once: the first time media is found missing.
func (c *conn) reportMissing() bool { return c.missingReported.CompareAndSwap(false, true) }

// setGate changes the pipeline's gate. Call with s.mu held.
func (c *conn) setGate(g pipeline.Gate, at time.Time) {
	if g == c.gate {
		return
	}
	c.gate = g
	c.rec.SetGate(g, at)
	c.log.Info("gate changed", "gate", gateName(g))
}

func gateName(g pipeline.Gate) string {
	switch g {
	case pipeline.GateOpen:
		return "open"
	case pipeline.GatePaused:
		return "paused"
	case pipeline.GateNoConsent:
		return "no_consent"
	}
	return "unknown"
}

// onTrack starts the read loops of a remote track: RTP into the
// pipeline, RTCP (sender reports) into the pipeline.
func (c *conn) onTrack(track *pion.TrackRemote, receiver *pion.RTPReceiver) {
	<-c.ready
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.readers.Add(2)
	c.mu.Unlock()
	kind := track.Kind().String()
	pt := c.tracks[kind]
	c.log.Debug("track", "kind", kind, "ssrc", uint32(track.SSRC()), "codec", track.Codec().MimeType)
	go func() {
		defer c.readers.Done()
		for {
			pkts, _, err := receiver.ReadRTCP()
			if err != nil {
				return
			}
			c.rec.WriteRTCP(pkts)
		}
	}()
	go func() {
		defer c.readers.Done()
		c.readRTP(track, pt)
	}()
}

// readRTP pushes a track's packets into the pipeline until the track ends.
// It does not allocate per packet: one pooled buffer per track.
func (c *conn) readRTP(track *pion.TrackRemote, pt *pipeline.Track) {
	bufp := c.r.bufs.Get().(*[]byte)
	defer c.r.bufs.Put(bufp)
	buf := *bufp
	c.activeTracks.Add(1)
	defer c.activeTracks.Add(-1)
	m := c.r.metrics
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		ns := now.UnixNano()
		first := c.lastPacket.Swap(ns) == 0
		m.packets.Inc()
		m.bytes.Add(float64(n))
		if pt == nil {
			continue // a kind without a recorded track (never negotiated)
		}
		_ = pt.WriteRTP(buf[:n], now) // invalid packets are counted in the report
		if first {
			go c.r.refreshStatus(c.r.bg, c.s)
		}
	}
}

// accountStats adds what the pipeline counted since the last call to the
// recorder's lost, late and invalid packet counters, so they are live
// while the recording runs and exact when it ends.
func (c *conn) accountStats() {
	st := c.rec.Stats()
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	m := c.r.metrics
	if st.PacketsLost > c.seen.PacketsLost {
		m.lost.Add(float64(st.PacketsLost - c.seen.PacketsLost))
	}
	if st.PacketsLate > c.seen.PacketsLate {
		m.late.Add(float64(st.PacketsLate - c.seen.PacketsLate))
	}
	if st.PacketsInvalid > c.seen.PacketsInvalid {
		m.invalid.Add(float64(st.PacketsInvalid - c.seen.PacketsInvalid))
	}
	c.seen = st
}

// end closes the peer connection, stops the read loops, detaches the
// connection from its session and finalizes the recording. It runs once;
// later calls wait for the first to finish.
func (c *conn) end(ctx context.Context, reason string) {
	c.endOnce.Do(func() {
		end := time.Now()
		if ns := c.endAt.Load(); ns != 0 && ns < end.UnixNano() {
			end = time.Unix(0, ns)
		}
		c.endReason = reason
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		if err := c.pc.Close(); err != nil {
			c.log.Debug("close peer connection", "err", err)
		}
		c.readers.Wait()
		c.finalize(ctx, end, reason)
		close(c.done)
		<-c.fbDone
		c.cancel()
		s := c.s
		s.mu.Lock()
		delete(s.conns, c.id)
		others := false
		for _, o := range s.conns {
			others = others || o.participant == c.participant
		}
		if len(s.conns) == 0 {
			s.idleFrom = time.Now()
		}
		s.mu.Unlock()
		if !others {
			now := time.Now().UTC()
			if err := c.r.db.WithContext(context.WithoutCancel(ctx)).Model(&meta.Participant{}).
				Where("tenant_id = ? AND session_id = ? AND id = ?", s.key.tenant, s.key.id, c.participant).
				Update("left_at", now).Error; err != nil {
				c.log.Warn("update participant", "err", err)
			}
		}
		c.r.refreshStatus(context.WithoutCancel(ctx), s)
		c.log.Info("participant connection ended", "reason", reason, "took_ms", time.Since(end).Milliseconds())
	})
	<-c.done
}

// negotiated is the one codec chosen for a media section of the offer.
type negotiated struct {
	kind   string
	mid    string
	params pion.RTPCodecParameters
	// alternatives are further supported codecs of the section, in offer
	// order, tried when pion does not accept the first.
	alternatives []pion.RTPCodecParameters
}

// connect builds the participant connection for a WHIP offer: the
// PeerConnection with one codec per media section, the answer (all
// candidates gathered), and the pipeline. The connection is attached to
// the session before it returns.
func (r *Recorder) connect(ctx context.Context, s *session, participant string, d policy.Decision, offer []byte, chosen []negotiated) (*conn, string, error) {
	pc, err := r.api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		return nil, "", fmt.Errorf("recorder: new peer connection: %w", err)
	}
	return r.connectPC(ctx, s, participant, d, pc, "whip", func(*conn) ([]negotiated, error) {
		return answerOffer(ctx, pc, offer, chosen)
	})
}

// answerOffer applies a WHIP offer to pc with one codec per chosen media
// section, and sets the answer once every candidate is gathered.
func answerOffer(ctx context.Context, pc *pion.PeerConnection, offer []byte, chosen []negotiated) ([]negotiated, error) {
	if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeOffer, SDP: string(offer)}); err != nil {
		return nil, &offerError{status: 400, code: "sdp_rejected", detail: rtc.ScrubICECredentials(err.Error())}
	}
	final := make([]negotiated, 0, len(chosen))
	for _, tr := range pc.GetTransceivers() {
		for _, n := range chosen {
			if tr.Mid() != n.mid {
				continue
			}
			var err error
			for _, p := range append([]pion.RTPCodecParameters{n.params}, n.alternatives...) {
				if err = tr.SetCodecPreferences([]pion.RTPCodecParameters{p}); err == nil {
					n.params = p
					break
				}
			}
			if err != nil {
				return nil, &offerError{status: 415, code: "sdp_unsupported_codecs", detail: fmt.Sprintf("m-line mid %s: %v", n.mid, err)}
			}
			final = append(final, n)
		}
	}
	if len(final) == 0 {
		return nil, &offerError{status: 400, code: "sdp_no_media", detail: "no media section to record"}
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return nil, &offerError{status: 400, code: "sdp_rejected", detail: rtc.ScrubICECredentials(err.Error())}
	}
	gathered := pion.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return nil, fmt.Errorf("recorder: set local answer: %w", err)
	}
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	select {
	case <-gathered:
	case <-gctx.Done():
		return nil, fmt.Errorf("recorder: gather candidates: %w", gctx.Err())
	}
	return final, nil
}

// connectPC builds a participant connection around pc (WHIP answers and
// pulls, where the recorder makes the offer): it registers the
// connection's handlers, runs negotiate, which applies the session
// descriptions it can and returns the codecs settled per media section,
// then builds the pipeline and attaches the connection to its session.
// On error pc is closed. The string is pc's local description.
func (r *Recorder) connectPC(ctx context.Context, s *session, participant string, d policy.Decision, pc *pion.PeerConnection, idPrefix string, negotiate func(*conn) ([]negotiated, error)) (*conn, string, error) {
	id := meta.NewID(idPrefix)
	c := &conn{
		r: r, s: s, id: id, participant: participant, decision: d, pc: pc,
		log:     r.log.With("session_id", s.key.id, "participant_id", participant, "resource_id", id),
		tracks:  map[string]*pipeline.Track{},
		created: time.Now(),
		ready:   make(chan struct{}),
		fb:      make(chan feedbackReq, 64),
		fbDone:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	fail := func(err error) (*conn, string, error) {
		_ = pc.Close()
		return nil, "", err
	}
	pc.OnTrack(c.onTrack)
	pc.OnConnectionStateChange(func(st pion.PeerConnectionState) {
		switch st {
		case pion.PeerConnectionStateConnected:
			r.metrics.setup.Observe(time.Since(c.created).Seconds())
			c.log.Debug("connected", "setup_ms", time.Since(c.created).Milliseconds())
		case pion.PeerConnectionStateFailed, pion.PeerConnectionStateClosed:
			if c.attached.Load() {
				go c.end(r.bg, endPeer)
			}
		}
	})
	final, err := negotiate(c)
	if err != nil {
		return fail(err)
	}
	c.contentType = pipeline.ContentTypeOgg
	for _, n := range final {
		c.codecs = append(c.codecs, codecName(n.params.MimeType))
		if n.kind == "video" {
			c.contentType = pipeline.ContentTypeWebM
			if codecName(n.params.MimeType) == "H264" {
				c.contentType = pipeline.ContentTypeMatroska
			}
		}
	}
	c.sink = &sink{c: c}
	c.ctx, c.cancel = context.WithCancel(r.bg)

	// Attach under the session lock, so pause, resume and consent see the
	// connection with its gate from the start.
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		c.cancel()
		return fail(errSessionEnded)
	}
	c.gate = s.gateFor(d, participant)
	cfg := pipeline.ConfigFrom(r.opts.Recording)
	cfg.Gate = c.gate
	cfg.Logger = c.log
	c.rec = pipeline.New(c.ctx, s.clock, c.sink, c, cfg)
	for _, n := range final {
		t, err := c.rec.AddTrack(pipeline.TrackConfig{
			MimeType: n.params.MimeType, ClockRate: n.params.ClockRate, Channels: n.params.Channels,
			Fmtp: n.params.SDPFmtpLine, PayloadTypes: []uint8{uint8(n.params.PayloadType)},
			// NACK only where it was negotiated: the recorder offers it
			// for video (recorder/webrtc), and the offer must have it.
			NoNACK: n.kind != "video" || !hasNACK(n.params.RTCPFeedback),
		})
		if err != nil {
			s.mu.Unlock()
			_, _ = c.rec.Close(ctx, time.Now())
			c.cancel()
			return fail(fmt.Errorf("recorder: add %s track: %w", n.kind, err))
		}
		c.tracks[n.kind] = t
	}
	s.conns[id] = c
	s.idleFrom = time.Time{}
	s.mu.Unlock()
	c.attached.Store(true)
	close(c.ready)

	go c.control(100 * time.Millisecond)
	r.metrics.connections.Inc()
	c.log.Info("participant connected", "codecs", c.codecs, "gate", gateName(c.gate), "record", string(d.Record), "consent", string(d.Consent))
	return c, pc.LocalDescription().SDP, nil
}

// hasNACK reports whether generic NACK is among the offered feedback.
func hasNACK(fb []pion.RTCPFeedback) bool {
	for _, f := range fb {
		if f.Type == "nack" && f.Parameter == "" {
			return true
		}
	}
	return false
}

// codecName is the codec part of a MIME type ("audio/opus" → "opus",
// "video/VP8" → "VP8"), as the completeness report names codecs.
func codecName(mime string) string {
	for i := 0; i < len(mime); i++ {
		if mime[i] == '/' {
			return mime[i+1:]
		}
	}
	return mime
}
