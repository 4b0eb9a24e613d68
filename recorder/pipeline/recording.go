package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/recorder/clock"
	"github.com/custodian/custodian/recorder/depacket"
	"github.com/custodian/custodian/recorder/report"
	"github.com/pion/rtcp"
)

// Sink receives a recording's parts in order. storage.Writer satisfies it.
//
// WritePart runs on the recording's part-writing goroutine, RewritePart on
// Close's. Meanwhile the Recording may hold its lock while it waits for
// room in the part queue (a slow sink pushes back on the packet path), so
// a Sink must not call the Recording's methods that lock: only Started,
// Stats, Failed and Err, which never do. Anything else (Close, SetGate,
// Tick, a Track's WriteRTP) from inside the sink can deadlock.
type Sink interface {
	// WritePart seals and stores the next part and returns its number.
	// It must not retain p after returning.
	WritePart(ctx context.Context, p []byte) (n int, err error)
	// RewritePart replaces part n with p, which has the same length. The
	// recorder calls it at most once per recording, for the header part,
	// after every WritePart.
	RewritePart(ctx context.Context, n int, p []byte) error
}

// Feedback carries RTCP feedback requests back to the WebRTC layer. Its
// methods are called with the Recording's lock held and must not block or
// call back into the Recording.
type Feedback interface {
	// NACK asks the sender of ssrc to retransmit the listed sequence
	// numbers (RTCP transport-layer NACK). seqs is valid only during the
	// call.
	NACK(ssrc uint32, seqs []uint16)
	// RequestKeyframe asks the sender of ssrc for a keyframe (RTCP PLI).
	RequestKeyframe(ssrc uint32)
}

// FeedbackFuncs adapts functions to Feedback; nil fields do nothing.
type FeedbackFuncs struct {
	OnNACK     func(ssrc uint32, seqs []uint16)
	OnKeyframe func(ssrc uint32)
}

// NACK implements Feedback.
func (f FeedbackFuncs) NACK(ssrc uint32, seqs []uint16) {
	if f.OnNACK != nil {
		f.OnNACK(ssrc, seqs)
	}
}

// RequestKeyframe implements Feedback.
func (f FeedbackFuncs) RequestKeyframe(ssrc uint32) {
	if f.OnKeyframe != nil {
		f.OnKeyframe(ssrc)
	}
}

// Gate states: whether media is recorded.
type Gate uint8

const (
	// GateOpen records media.
	GateOpen Gate = iota
	// GatePaused drops media (pause, e.g. while card data is spoken).
	GatePaused
	// GateNoConsent drops media until the participant consents.
	GateNoConsent
)

func (g Gate) kind() string {
	if g == GateNoConsent {
		return report.KindExcludedNoConsent
	}
	return report.KindPaused
}

// Config configures a Recording.
type Config struct {
	// PartDuration is the longest media or wall time between two parts
	// (recording.part_seconds; default 2 s).
	PartDuration time.Duration
	// JitterLatency is how long a packet behind a gap is held
	// (recording.jitter_buffer; default 200 ms).
	JitterLatency time.Duration
	// KeyframeInterval is the least time between two keyframe requests
	// for one track (default 1 s).
	KeyframeInterval time.Duration
	// MaxSkew bounds how far an RTP timestamp may disagree with arrival
	// time before the packet is dropped as absurd (default 3 s).
	MaxSkew time.Duration
	// Gate is the initial gate state (GateNoConsent when consent is
	// required and not yet given).
	Gate Gate
	// Logger receives warnings (sink failures); nil discards them.
	Logger *slog.Logger
	// Queue is how many sealed parts may wait for the sink before the
	// recording blocks (default 16).
	Queue int
}

// ConfigFrom returns the Config for the recording section of the
// configuration file.
func ConfigFrom(c config.Recording) Config {
	return Config{
		PartDuration:  time.Duration(c.PartSeconds * float64(time.Second)),
		JitterLatency: c.JitterBuffer,
	}
}

// Errors.
var (
	// ErrClosed is returned for calls after Close.
	ErrClosed = errors.New("pipeline: recording closed")
	// ErrStarted is returned by AddTrack once media has flowed.
	ErrStarted = errors.New("pipeline: tracks must be added before media flows")
	// ErrTrackExists is returned by AddTrack for a second audio or video
	// track.
	ErrTrackExists = errors.New("pipeline: recording already has a track of this kind")
)

// FailedError is returned (from Close, and from pushes after the failure)
// when the sink failed; earlier parts are untouched.
type FailedError struct {
	Part int // index of the part that failed (0-based, in write order)
	Err  error
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("pipeline: recording failed writing part %d: %v", e.Part, e.Err)
}

func (e *FailedError) Unwrap() error { return e.Err }

// Content types of recordings.
const (
	ContentTypeOgg      = "audio/ogg"
	ContentTypeWebM     = "video/webm"
	ContentTypeMatroska = "video/x-matroska"
)

// gateSpan is a span during which the gate was closed (end 0: still open
// ended... i.e. still closed).
type gateSpan struct {
	gate       Gate
	start, end int64 // session ns; end == 0 while closed
}

// Recording records one participant connection. Its methods are safe for
// concurrent use: one goroutine per track pushing packets plus control
// calls (SetGate, Tick, SenderReport, Close).
type Recording struct {
	mu     sync.Mutex
	cfg    Config
	clock  *clock.Session
	sender *clock.Sender
	fb     Feedback
	log    *slog.Logger

	audio, video *Track
	tracks       []*Track
	closed       bool

	gate  Gate
	spans []gateSpan

	mux muxer

	// Part writing.
	parts   chan []byte
	free    chan []byte
	done    chan struct{}
	failMu  sync.Mutex
	failErr error
	failed  chan struct{}
	nParts  int
	nBytes  int64
	hdrPart int // sink's number of the header part, -1 if none
	sink    Sink
	// Part writing runs on a goroutine that exists only while parts wait
	// (drain): writing is true while it runs, closing once Close closed
	// the queue; written counts the parts taken from the queue.
	ctx     context.Context
	writing atomic.Bool
	closing atomic.Bool
	written int

	// live is what Stats and Started return, without the lock.
	live liveStats
}

// New returns a Recording whose parts go to sink. cl is the session's
// clock; fb receives NACKs and keyframe requests (nil: none). ctx bounds
// the background part writes: cancel it only after Close. Close must be
// called to end the part-writing goroutine.
func New(ctx context.Context, cl *clock.Session, sink Sink, fb Feedback, cfg Config) *Recording {
	if cfg.PartDuration <= 0 {
		cfg.PartDuration = 2 * time.Second
	}
	if cfg.JitterLatency <= 0 {
		cfg.JitterLatency = 200 * time.Millisecond
	}
	if cfg.KeyframeInterval <= 0 {
		cfg.KeyframeInterval = time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 16
	}
	if fb == nil {
		fb = FeedbackFuncs{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Recording{
		cfg:    cfg,
		clock:  cl,
		sender: &clock.Sender{},
		fb:     fb,
		log:    log,
		gate:   GateOpen,
		parts:  make(chan []byte, cfg.Queue),
		// Two spare part buffers: the next part is built while one is
		// being sealed. Buffers made while the sink lags are dropped
		// afterwards, so a backlog does not stay in memory.
		free:    make(chan []byte, 2),
		done:    make(chan struct{}),
		failed:  make(chan struct{}),
		hdrPart: -1,
		sink:    sink,
	}
	if cfg.Gate != GateOpen {
		r.gate = cfg.Gate
		// Starts at the first packet (start -1 until then).
		r.spans = append(r.spans, gateSpan{gate: cfg.Gate, start: -1})
	}
	r.mux.r = r
	r.ctx = ctx
	return r
}

// TrackConfig describes a track as negotiated in SDP.
type TrackConfig struct {
	// MimeType is the codec's mime type: audio/opus, video/VP8,
	// video/VP9, video/AV1 or video/H264.
	MimeType  string
	ClockRate uint32
	// Channels and Fmtp as negotiated (opus: stereo=1 makes a stereo
	// OpusHead).
	Channels uint16
	Fmtp     string
	// PayloadTypes are the payload types of this codec; packets with
	// other types are dropped as invalid. Empty accepts any.
	PayloadTypes []uint8
	// NoNACK: the codec did not negotiate RTCP feedback "nack", so no
	// NACKs are sent for this track (browsers do not for Opus).
	NoNACK bool
}

// AddTrack adds the participant's audio or video track. A recording has
// at most one of each; tracks must be added before the first packet.
func (r *Recording) AddTrack(tc TrackConfig) (*Track, error) {
	c, err := depacket.ParseMimeType(tc.MimeType)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if r.mux.started || r.mux.anyPacket {
		return nil, ErrStarted
	}
	if (c.Video() && r.video != nil) || (!c.Video() && r.audio != nil) {
		return nil, ErrTrackExists
	}
	t, err := newTrack(r, c, tc)
	if err != nil {
		return nil, err
	}
	if c.Video() {
		r.video = t
	} else {
		r.audio = t
	}
	r.tracks = append(r.tracks, t)
	return t, nil
}

// ContentType returns the recording's content type: audio/ogg for audio
// only, video/webm for VP8, VP9 or AV1 video, video/x-matroska for H.264.
func (r *Recording) ContentType() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.contentType()
}

func (r *Recording) contentType() string {
	switch {
	case r.video == nil:
		return ContentTypeOgg
	case r.video.codec == depacket.H264:
		return ContentTypeMatroska
	}
	return ContentTypeWebM
}

// SetGate opens or closes the gate at time at. While closed, media whose
// timeline position falls after at is never passed to the muxer or the
// sink; the span stays on the timeline as silence (held frame for video)
// and appears in the report.
func (r *Recording) SetGate(g Gate, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || g == r.gate {
		return
	}
	ns := r.clock.Since(at)
	r.closeSpan(ns)
	if g != GateOpen {
		r.spans = append(r.spans, gateSpan{gate: g, start: ns})
	} else {
		if a := r.audio; a != nil {
			// Resume where the clock mapping puts the audio, as the gate
			// decided by it; the pause's silence absorbs the difference.
			a.locked = false
		}
		if v := r.video; v != nil {
			// Resume on a keyframe.
			v.gateWaitKey = true
			v.requestKeyframe(ns, true)
		}
	}
	r.gate = g
}

// closeSpan ends the open gated span, if any, at ns.
func (r *Recording) closeSpan(ns int64) {
	n := len(r.spans)
	if n == 0 || r.spans[n-1].end != 0 {
		return
	}
	s := &r.spans[n-1]
	if s.start < 0 {
		s.start = ns // no packet arrived while it was closed
	}
	s.end = max(ns, s.start+1)
}

// firstPacket starts a leading gated span at the first packet.
func (r *Recording) firstPacket(ns int64) {
	for i := range r.spans {
		if r.spans[i].start < 0 {
			r.spans[i].start = ns
		}
	}
}

// gatedAt reports whether media at session time ns falls in a closed span.
func (r *Recording) gatedAt(ns int64) bool {
	for i := len(r.spans) - 1; i >= 0; i-- {
		s := r.spans[i]
		if (s.start < 0 || ns >= s.start) && (s.end == 0 || ns < s.end) {
			return true
		}
		if s.end != 0 && ns >= s.end {
			return false
		}
	}
	return false
}

// SenderReport records an RTCP sender report for ssrc, tying the track's
// RTP time to the sender's NTP clock.
func (r *Recording) SenderReport(ssrc uint32, ntpTime uint64, rtpTime uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.tracks {
		if t.ssrc == ssrc || (t.ssrc == 0 && len(r.tracks) == 1) {
			t.mapper.SenderReport(ntpTime, rtpTime)
		}
	}
}

// WriteRTCP takes the RTCP packets the WebRTC layer read for this
// connection (pion's RTPReceiver.ReadRTCP) and records the sender reports
// among them; other packets are ignored.
func (r *Recording) WriteRTCP(pkts []rtcp.Packet) {
	for _, p := range pkts {
		if sr, ok := p.(*rtcp.SenderReport); ok {
			r.SenderReport(sr.SSRC, sr.NTPTime, sr.RTPTime)
		}
	}
}

// Tick drives time when packets do not: it releases packets whose jitter
// wait expired, repeats NACKs and keyframe requests, and seals a part when
// the part duration has passed in wall time. Call it every 100 ms or so
// (Run does).
func (r *Recording) Tick(now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	ns := r.clock.Since(now)
	for _, t := range r.tracks {
		t.jb.Tick(ns)
		t.feedback(ns)
	}
	r.mux.tick(ns)
	r.publish()
	return r.err()
}

// Run calls Tick every interval (100 ms when 0) with the wall clock until
// ctx is done or the recording is closed.
func (r *Recording) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			if errors.Is(r.Tick(now), ErrClosed) {
				return
			}
		}
	}
}

// Failed is closed when the recording fails (a sink error).
func (r *Recording) Failed() <-chan struct{} { return r.failed }

// Err returns the failure, if any.
func (r *Recording) Err() error {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	return r.failErr
}

func (r *Recording) err() error { return r.Err() }

func (r *Recording) fail(part int, err error) {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	if r.failErr == nil {
		r.failErr = &FailedError{Part: part, Err: err}
		close(r.failed)
		r.log.Warn("recording failed", "part", part, "err", err)
	}
}

// kickWriter starts the part-writing goroutine unless it runs: there is
// one only while parts wait, not one per recording for its whole life.
func (r *Recording) kickWriter() {
	if r.writing.CompareAndSwap(false, true) {
		go r.drain()
	}
}

// drain hands queued parts to the sink in order until the queue is empty
// (then it ends), or closed (then it closes done).
func (r *Recording) drain() {
	for {
		select {
		case p, ok := <-r.parts:
			if !ok {
				close(r.done) // writing stays true: no drain after the end
				return
			}
			r.writePart(p)
			continue
		default:
		}
		r.writing.Store(false)
		// A part queued (or Close) between the empty check and the Store
		// found writing true and did not start a drain: go on with it.
		if (len(r.parts) == 0 && !r.closing.Load()) || !r.writing.CompareAndSwap(false, true) {
			return
		}
	}
}

// writePart hands one part to the sink.
func (r *Recording) writePart(p []byte) {
	i := r.written
	r.written++
	if r.Err() == nil {
		n, err := r.sink.WritePart(r.ctx, p)
		if err != nil {
			r.fail(i, fmt.Errorf("write part: %w", err))
		} else if i == 0 {
			r.hdrPart = n
		}
	}
	select {
	case r.free <- p[:0]:
	default:
	}
}

// emitPart queues a sealed part for the sink.
func (r *Recording) emitPart(p []byte) []byte {
	if len(p) == 0 {
		return p
	}
	select {
	case r.parts <- p:
		r.nParts++
		r.nBytes += int64(len(p))
		r.kickWriter()
	case <-r.failed:
		// The sink failed: nothing more is written.
		return p[:0]
	}
	select {
	case b := <-r.free:
		return b
	default:
		return make([]byte, 0, cap(p))
	}
}

// Close ends the recording at end: it releases every held packet, pads
// the timeline to end (silence, held frame), seals the last part, waits
// for the sink, rewrites the header part (WebM) and returns the
// completeness report. The report is returned even when the recording
// failed; the error is then a *FailedError.
func (r *Recording) Close(ctx context.Context, end time.Time) (*report.Report, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	r.closed = true
	endNs := r.clock.Since(end)
	for _, t := range r.tracks {
		t.jb.Flush()
	}
	r.closeSpan(endNs)
	var errs []error
	final, hdr, err := r.mux.finish(endNs)
	if err != nil {
		errs = append(errs, err)
	}
	if len(final) > 0 {
		r.emitPart(final)
	}
	close(r.parts)
	r.closing.Store(true)
	r.kickWriter()
	r.mu.Unlock()

	select {
	case <-r.done:
	case <-ctx.Done():
		return r.buildReport(end, endNs), fmt.Errorf("pipeline: close: %w", ctx.Err())
	}
	if hdr != nil && r.Err() == nil && r.hdrPart >= 0 {
		if err := r.sink.RewritePart(ctx, r.hdrPart, hdr); err != nil {
			r.fail(0, fmt.Errorf("rewrite header part: %w", err))
		}
	}
	if err := r.Err(); err != nil {
		errs = append(errs, err)
	}
	rep := r.buildReport(end, endNs)
	return rep, errors.Join(errs...)
}
