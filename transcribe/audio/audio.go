package audio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"strings"
	"time"

	"github.com/custodian/custodian/transcribe"
)

// Content types of recordings (SPEC section 5).
const (
	ContentTypeOgg      = "audio/ogg"
	ContentTypeWebM     = "video/webm"
	ContentTypeMatroska = "video/x-matroska"
)

// Decoder names for Options.Decoder.
const (
	DecoderLibopus = "libopus" // cgo builds only: concealment and FEC
	DecoderPion    = "pion"    // pure Go, gaps become silence
)

// Options tune decoding and chunking. The zero value means the defaults.
type Options struct {
	// MaxChunk is the longest chunk handed to an engine: config
	// transcription.chunk_seconds. Default 30 s, at least 1 s.
	MaxChunk time.Duration
	// EndPause is a pause long enough to end a chunk early. Default 1 s.
	EndPause time.Duration
	// Padding is the non-speech kept before and after the speech of a
	// chunk ended by a pause. Default 300 ms.
	Padding time.Duration
	// MinSpeech drops chunks with less speech than this (clicks,
	// coughs). Default 100 ms.
	MinSpeech time.Duration
	// SpeechFloorDB is the level in dBFS below which a 10 ms frame is
	// never speech. Default -50.
	SpeechFloorDB float64
	// SpeechMarginDB is how far above the adaptive noise floor a frame
	// must be to be speech. Default 10.
	SpeechMarginDB float64
	// MaxDuration bounds the recording's timeline: a timestamp or
	// granule position beyond it is treated as corruption rather than
	// filled with hours of silence. Default 24 h.
	MaxDuration time.Duration
	// Decoder is DecoderLibopus or DecoderPion; empty means libopus in
	// cgo builds and pion otherwise.
	Decoder string
	// Logger receives one debug line per recording (counts only, never
	// audio). Nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.MaxChunk, 30*time.Second)
	o.MaxChunk = max(o.MaxChunk, time.Second)
	def(&o.EndPause, time.Second)
	def(&o.Padding, 300*time.Millisecond)
	def(&o.MinSpeech, 100*time.Millisecond)
	def(&o.MaxDuration, 24*time.Hour)
	if o.SpeechFloorDB == 0 {
		o.SpeechFloorDB = -50
	}
	if o.SpeechMarginDB == 0 {
		o.SpeechMarginDB = 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func (o Options) newDecoder() (decoder, error) {
	switch o.Decoder {
	case "":
		return newDefaultDecoder()
	case DecoderPion:
		return newPionDecoder()
	case DecoderLibopus:
		if defaultDecoderName != DecoderLibopus {
			return nil, unsupportedf("decoder %q is not in this build (needs cgo)", o.Decoder)
		}
		return newDefaultDecoder()
	default:
		return nil, unsupportedf("unknown decoder %q", o.Decoder)
	}
}

// DefaultDecoder names the Opus decoder this build uses by default.
func DefaultDecoder() string { return defaultDecoderName }

// Chunks decodes a recording and yields its speech as chunks of 16 kHz mono
// PCM, each at most opts.MaxChunk long and cut in a pause where the speech
// allows, in time order. OffsetMS of each chunk is its start on the
// recording's timeline (gaps kept as time). Silence-only and zero-length
// recordings yield nothing and no error.
//
// On bad input the sequence ends with a zero Audio and an error: a
// *FormatError wrapping ErrCorrupt, ErrTruncated, ErrUnsupported or
// ErrNoAudio (the speech decoded before the bad spot has been yielded
// first, the chunk in progress included), or ctx's error. Stopping the
// iteration early is fine; the reader is not closed. Each chunk's Samples
// is a new slice the caller may keep.
func Chunks(ctx context.Context, r io.Reader, contentType string, opts Options) iter.Seq2[transcribe.Audio, error] {
	return func(yield func(transcribe.Audio, error) bool) {
		opts := opts.withDefaults()
		stopped := false
		seg := newSegmenter(newSegmenterConfig(opts), func(off int64, pcm []int16) bool {
			if !yield(transcribe.Audio{OffsetMS: off * 1000 / outRate, Samples: pcm}, nil) {
				stopped = true
				return false
			}
			return true
		})
		err := run(ctx, r, contentType, opts, seg)
		if stopped {
			return
		}
		if err == nil || ctx.Err() == nil {
			// On bad input, the speech decoded before the bad spot
			// still comes out before the error.
			seg.flush()
			if stopped || err == nil {
				return
			}
		}
		yield(transcribe.Audio{}, err)
	}
}

// Decode decodes a recording to 16 kHz mono PCM from time 0 with gaps
// filled (concealed by libopus, silence with pion) and calls fn with
// successive blocks; the block is reused after fn returns. An error from fn
// ends decoding and is returned as is. Errors are as for Chunks.
func Decode(ctx context.Context, r io.Reader, contentType string, opts Options, fn func(pcm []int16) error) error {
	opts = opts.withDefaults()
	return run(ctx, r, contentType, opts, &funcSink{fn: fn})
}

// pcmSink receives decoded audio in order; write and writeSilence return
// false to stop.
type pcmSink interface {
	write(pcm []int16) bool
	writeSilence(n int64) bool
}

type funcSink struct {
	fn    func([]int16) error
	err   error
	zeros []int16
}

func (s *funcSink) write(p []int16) bool {
	if s.err == nil {
		s.err = s.fn(p)
	}
	return s.err == nil
}

func (s *funcSink) writeSilence(n int64) bool {
	if s.zeros == nil {
		s.zeros = make([]int16, outRate/10)
	}
	for n > 0 && s.err == nil {
		k := min(n, int64(len(s.zeros)))
		clear(s.zeros[:k])
		s.write(s.zeros[:k])
		n -= k
	}
	return s.err == nil
}

// errStop is returned through a demuxer when the consumer stopped.
var errStop = errors.New("audio: stopped by consumer")

func run(ctx context.Context, r io.Reader, contentType string, opts Options, out pcmSink) error {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	p := &pipeline{ctx: ctx, opts: opts, out: out}
	defer p.close()
	var err error
	switch mt {
	case ContentTypeOgg, "audio/opus", "application/ogg":
		err = demuxOgg(ctx, r, p)
	case ContentTypeWebM, "audio/webm", ContentTypeMatroska, "audio/x-matroska":
		err = demuxWebM(ctx, r, p)
	default:
		return fmt.Errorf("audio: decode %q: %w", contentType, unsupportedf("content type %q", contentType))
	}
	if fs, ok := out.(*funcSink); ok && fs.err != nil {
		return fs.err
	}
	if errors.Is(err, errStop) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	opts.Logger.DebugContext(ctx, "audio: decoded recording",
		"container", mt, "decoder", p.decName, "packets", p.packets,
		"concealed_ms", p.concealed48/granule48PerMS, "audio_ms", p.pos48/granule48PerMS)
	return nil
}

// packet is one Opus packet from a demuxer.
type packet struct {
	data []byte
	// pts48 is the packet's start in decoder output samples at 48 kHz
	// (before pre-skip removal) on the container's timeline; -1 when the
	// container does not say (the packet follows the previous one).
	pts48 int64
	// discard48 is how many samples at the end of this packet's output
	// are padding to drop (end trimming), 0 for none.
	discard48 int64
}

// pipeline decodes packets from a demuxer in timeline order and writes
// 16 kHz PCM to out, filling gaps.
type pipeline struct {
	ctx     context.Context
	opts    Options
	out     pcmSink
	dec     decoder
	decName string
	head    opusHead
	gain    float64
	started bool

	pos48       int64 // timeline position of the next decoded sample
	skip        int64 // output samples still to drop (pre-skip)
	packets     int64
	concealed48 int64
	pcm         []int16
	decoded     bool // a packet has been decoded
}

// start is called by a demuxer once it knows the stream's OpusHead.
func (p *pipeline) start(h opusHead) error {
	if p.started {
		return nil
	}
	dec, err := p.opts.newDecoder()
	if err != nil {
		return err
	}
	p.dec, p.started, p.head = dec, true, h
	p.decName = p.opts.Decoder
	if p.decName == "" {
		p.decName = defaultDecoderName
	}
	p.gain = h.gain()
	p.skip = int64(h.PreSkip / rateRatio)
	p.pcm = make([]int16, maxPacketOut)
	return nil
}

func (p *pipeline) close() {
	if p.dec != nil {
		p.dec.close()
	}
}

// emit writes decoded samples after dropping what is left of the pre-skip.
func (p *pipeline) emit(pcm []int16) bool {
	if p.skip > 0 {
		k := min(p.skip, int64(len(pcm)))
		p.skip -= k
		pcm = pcm[k:]
	}
	if len(pcm) == 0 {
		return true
	}
	if p.gain != 1 {
		for i, v := range pcm {
			pcm[i] = clamp16(float64(v) * p.gain)
		}
	}
	return p.out.write(pcm)
}

func (p *pipeline) emitSilence(n int64) bool {
	if p.skip > 0 {
		k := min(p.skip, n)
		p.skip -= k
		n -= k
	}
	if n == 0 {
		return true
	}
	return p.out.writeSilence(n)
}

func clamp16(x float64) int16 {
	switch {
	case x > 32767:
		return 32767
	case x < -32768:
		return -32768
	}
	return int16(x)
}

// Concealment limits: gaps up to maxConceal48 are concealed in one call
// (PLC, then FEC for the last frame); longer gaps get plcTail48 of PLC
// after the last packet, silence, then the FEC frame.
const (
	maxConceal48 = maxPacket48 // 120 ms
	plcTail48    = 2880        // 60 ms; libopus fades PLC out by then
	gapUnit48    = 120         // 2.5 ms, the Opus frame quantum
)

// packet decodes one packet, filling any gap before it. The index is for
// error reports.
func (p *pipeline) packet(pk packet) error {
	if !p.started {
		return corruptf("opus packet before OpusHead")
	}
	if p.packets%64 == 0 {
		if err := p.ctx.Err(); err != nil {
			return err
		}
	}
	idx := p.packets
	p.packets++
	if len(pk.data) == 0 {
		// RFC 7845: a zero-length packet carries no audio; its time
		// is covered by the next packet's timestamp.
		return nil
	}
	dur48, err := packetSamples48(pk.data)
	if err != nil {
		return &FormatError{Container: "opus", Offset: -1, Packet: idx, Err: err}
	}
	if limit := int64(p.opts.MaxDuration.Seconds() * opusRate); pk.pts48 > limit || p.pos48 > limit {
		return &FormatError{Container: "opus", Offset: -1, Packet: idx,
			Err: corruptf("timeline passes the %v maximum", p.opts.MaxDuration)}
	}
	if pk.pts48 >= 0 {
		gap := pk.pts48 - p.pos48
		switch {
		case pk.pts48+int64(dur48) <= p.pos48:
			// Entirely in the past: a duplicate. Skip it.
			return nil
		case gap >= max(int64(dur48)/2, gapUnit48):
			gap -= gap % gapUnit48
			if !p.fillGap(gap, pk.data) {
				return errStop
			}
		}
	}
	n, err := p.dec.decode(pk.data, p.pcm)
	if err != nil {
		return &FormatError{Container: "opus", Offset: -1, Packet: idx, Err: err}
	}
	p.pos48 += int64(dur48)
	p.decoded = true
	if pk.discard48 > 0 {
		n = max(n-int(pk.discard48/rateRatio), 0)
	}
	if !p.emit(p.pcm[:n]) {
		return errStop
	}
	return nil
}

// fillGap covers gap48 samples of missing audio before the packet next.
func (p *pipeline) fillGap(gap48 int64, next []byte) bool {
	p.pos48 += gap48
	p.concealed48 += gap48
	if !p.decoded {
		// Nothing decoded yet: the recording starts late. Plain silence.
		return p.emitSilence(gap48 / rateRatio)
	}
	conceal := func(n48 int64, next []byte) bool {
		buf := p.pcm[:n48/rateRatio]
		if err := p.dec.conceal(next, buf); err != nil {
			clear(buf)
		}
		return p.emit(buf)
	}
	if gap48 <= maxConceal48 {
		return conceal(gap48, next)
	}
	fec48 := int64(0)
	if d, err := packetSamples48(next); err == nil {
		fec48 = min(int64(d), gap48-plcTail48)
	}
	if !conceal(plcTail48, nil) {
		return false
	}
	if !p.emitSilence((gap48 - plcTail48 - fec48) / rateRatio) {
		return false
	}
	if fec48 > 0 {
		return conceal(fec48, next)
	}
	return true
}
