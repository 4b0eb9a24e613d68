package pipeline

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/custodian/custodian/recorder/ogg"
	"github.com/pion/rtp/codecs"
)

// TestOpusJitterTimeline records 24 s of real speech whose packets each
// meet a random network delay of 0-150 ms, so that they arrive reordered
// and the clock mapping moves by up to 150 ms. The recording must still be
// the sent audio: every frame written, none dropped, the duration the
// wall-clock span, and the decoded recording equal to the decoded sent
// audio at one lag (SNR over 40 dB, and over 20 dB in every second, so no
// silence was inserted and nothing dropped inside the stream). With a 1 s
// DTX gap (no packets, the RTP timestamp jumps), the gap is recorded as
// 1 s of silence at its place.
func TestOpusJitterTimeline(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	tests := []struct {
		name           string
		gapFrom, gapTo time.Duration // DTX span of sender time (none if equal)
		seed           uint64
	}{
		{name: "continuous", seed: 11},
		{name: "dtx", gapFrom: 10 * time.Second, gapTo: 11 * time.Second, seed: 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const dur = 24 * time.Second
			frames := mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, dur)
			if tt.gapTo > tt.gapFrom {
				frames = mediatest.DropSpan(frames, tt.gapFrom, tt.gapTo)
			}
			start := 300 * time.Millisecond
			s := mediatest.Stream{
				Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus,
				SSRC: 0x4444, FirstSeq: 65000, FirstTS: math.MaxUint32 - 48000*3,
				Start: start, Jitter: 150 * time.Millisecond, Seed: tt.seed,
			}
			pkts, _ := s.Packets(frames)

			sink := &memSink{}
			r := newRecording(t, sink, nil, Config{})
			tr, err := r.AddTrack(TrackConfig{MimeType: "audio/opus", ClockRate: 48000, PayloadTypes: []uint8{ptOpus}})
			if err != nil {
				t.Fatal(err)
			}
			feed(t, r, map[uint8]*Track{ptOpus: tr}, pkts, nil)
			end := start + dur + 300*time.Millisecond
			rep := mustClose(t, r, end)
			file := sink.file()

			// (1) Every frame written, none dropped or lost.
			a := rep.Tracks[0]
			if a.FramesWritten != uint64(len(frames)) || a.FramesDiscarded != 0 || a.PacketsLost != 0 {
				t.Errorf("frames written %d of %d, discarded %d, packets lost %d", a.FramesWritten, len(frames), a.FramesDiscarded, a.PacketsLost)
			}
			// (2) The duration is the wall-clock span.
			span := (end - firstArrival(pkts)).Seconds()
			d, _ := probe(t, file, "ogg")
			within(t, "ffprobe duration", d, span, 0.1)
			within(t, "report duration", float64(rep.DurationMS)/1000, span, 0.1)

			// (3) The decoded recording is the decoded sent audio. The first
			// frame belongs where its first packet arrived.
			rec := decodePCM(t, file)
			ref := decodePCM(t, sentOgg(t, frames))
			var lead time.Duration
			for _, p := range pkts {
				if p.Packet.SequenceNumber == s.FirstSeq {
					lead = p.Arrival - firstArrival(pkts)
				}
			}
			const ms = ogg.SampleRate / 1000
			want := int(lead.Milliseconds()) * ms
			lag := bestLag(rec, ref, 0, len(ref), want-100*ms, want+100*ms)
			snr := snrAt(rec, ref, lag, 0, len(ref))
			t.Logf("lag %.1f ms (first frame arrived %.1f ms after the first packet), SNR %.1f dB, silence %d ms, frames discarded %d",
				float64(lag)/ms, float64(lead)/1e6, snr, a.SilenceMS, a.FramesDiscarded)
			if snr < 40 {
				t.Errorf("recorded audio vs sent audio: SNR %.1f dB at lag %d, want > 40 dB", snr, lag)
			}
			for i := 0; i+ogg.SampleRate <= len(ref); i += ogg.SampleRate {
				if energy(ref[i:i+ogg.SampleRate]) == 0 {
					continue // the DTX gap
				}
				if s := snrAt(rec, ref, lag, i, i+ogg.SampleRate); s < 20 {
					t.Errorf("second %d of the stream: SNR %.1f dB at the stream's lag: the timeline slipped", i/ogg.SampleRate, s)
				}
			}
			if tt.gapTo <= tt.gapFrom {
				return
			}
			// The speech on either side of the gap is at the same lag: the
			// gap is exactly its RTP length, silent.
			gf, gt := int(tt.gapFrom.Milliseconds())*ms, int(tt.gapTo.Milliseconds())*ms
			before := bestLag(rec, ref, gf-2*ogg.SampleRate, gf, lag-100*ms, lag+100*ms)
			after := bestLag(rec, ref, gt, gt+2*ogg.SampleRate, lag-100*ms, lag+100*ms)
			t.Logf("DTX gap: lag before %.1f ms, after %.1f ms", float64(before)/ms, float64(after)/ms)
			if diff := after - before; diff > 20*ms || diff < -20*ms {
				t.Errorf("DTX gap recorded %+.1f ms off its sent length, want within 20 ms", float64(diff)/ms)
			}
			if e := energy(rec[lag+gf+20*ms : lag+gt-20*ms]); e != 0 {
				t.Errorf("DTX gap is not silence (energy %g)", e)
			}
		})
	}
}

// sentOgg writes the sent frames into an Ogg Opus file as they were
// captured: each at its sender time (48 kHz), gaps between frames as
// silence frames, after the same 360-sample pre-skip as the recorder's.
func sentOgg(tb testing.TB, frames []mediatest.Frame) []byte {
	tb.Helper()
	w := ogg.NewWriter(1)
	_ = w.WritePacket(ogg.OpusHead(1, oggPreSkip, ogg.SampleRate), 0)
	out := w.Flush(nil, false)
	_ = w.WritePacket(ogg.OpusTags("test"), 0)
	out = w.Flush(out, false)
	pos := int64(0)
	put := func(p []byte) {
		n, err := ogg.PacketSamples(p)
		if err != nil {
			tb.Fatal(err)
		}
		pos += int64(n)
		_ = w.WritePacket(p, pos)
		out = w.AppendPages(out)
	}
	put(ogg.SilenceFrame(240))
	put(ogg.SilenceFrame(120))
	for _, f := range frames {
		at := oggPreSkip + int64(f.At)*ogg.SampleRate/int64(time.Second)
		for at-pos >= 960 {
			put(ogg.SilenceFrame(960))
		}
		if at != pos {
			tb.Fatalf("frame at %v is not on a 20 ms boundary", f.At)
		}
		put(f.Data)
	}
	return w.Flush(out, true)
}

// decodePCM decodes an Ogg Opus file with ffmpeg to 48 kHz mono samples.
func decodePCM(tb testing.TB, data []byte) []float64 {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "pcm.ogg")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "s16le", "-ar", "48000", "-ac", "1", "-")
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		tb.Fatalf("ffmpeg: %v\n%s", err, stderr.Bytes())
	}
	pcm := make([]float64, len(raw)/2)
	for i := range pcm {
		pcm[i] = float64(int16(binary.LittleEndian.Uint16(raw[2*i:])))
	}
	return pcm
}

func energy(x []float64) float64 {
	var e float64
	for _, v := range x {
		e += v * v
	}
	return e
}

// snrAt returns the SNR (dB) of rec[lag+i] against ref[i] for i in
// [from, to); samples of rec beyond its end count as silence.
func snrAt(rec, ref []float64, lag, from, to int) float64 {
	var sig, noise float64
	for i := from; i < to; i++ {
		var v float64
		if j := lag + i; j >= 0 && j < len(rec) {
			v = rec[j]
		}
		sig += ref[i] * ref[i]
		noise += (v - ref[i]) * (v - ref[i])
	}
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sig/noise)
}

// bestLag returns the lag in [lo, hi] (samples) at which rec[lag+i] best
// matches ref[i] for i in [from, to): first on 1 ms envelopes, then to
// the sample around the best millisecond.
func bestLag(rec, ref []float64, from, to, lo, hi int) int {
	const ms = ogg.SampleRate / 1000
	env := func(x []float64) []float64 {
		e := make([]float64, len(x)/ms)
		for i := range e {
			for _, v := range x[i*ms : (i+1)*ms] {
				e[i] += math.Abs(v)
			}
		}
		return e
	}
	sse := func(a, b []float64, lag, from, to int) float64 {
		var s float64
		for i := from; i < to; i++ {
			var v float64
			if j := lag + i; j >= 0 && j < len(a) {
				v = a[j]
			}
			s += (v - b[i]) * (v - b[i])
		}
		return s
	}
	er, ef := env(rec), env(ref)
	coarse, best := 0, math.Inf(1)
	for l := lo / ms; l <= hi/ms; l++ {
		if s := sse(er, ef, l, from/ms, to/ms); s < best {
			coarse, best = l, s
		}
	}
	lag, best := 0, math.Inf(1)
	for l := max(coarse*ms-2*ms, lo); l <= min(coarse*ms+2*ms, hi); l++ {
		if s := sse(rec, ref, l, from, to); s < best {
			lag, best = l, s
		}
	}
	return lag
}

// TestOpusTimestampJump: the sender's RTP timestamps jump 1 s ahead while
// its packets keep coming every 20 ms (as from a mixer switching sources).
// RTP time says 1 s passed, the wall clock does not: beyond the 200 ms
// lock the clock mapping places the audio, so the speech goes on without
// a 1 s gap and the duration stays the wall-clock span.
func TestOpusTimestampJump(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	const dur, jumpAt = 12 * time.Second, 6 * time.Second
	frames := mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, dur)
	start := 200 * time.Millisecond
	s := mediatest.Stream{
		Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus,
		SSRC: 0x5555, FirstSeq: 100, FirstTS: math.MaxUint32 - 48000*3,
		Start: start, Jitter: 10 * time.Millisecond, Seed: 13,
	}
	pkts, _ := s.Packets(frames)
	for _, p := range pkts {
		if p.Packet.Timestamp-s.FirstTS >= uint32(jumpAt.Milliseconds()*48) {
			p.Packet.Timestamp += ogg.SampleRate
		}
	}
	sink := &memSink{}
	r := newRecording(t, sink, nil, Config{})
	tr, err := r.AddTrack(TrackConfig{MimeType: "audio/opus", ClockRate: 48000})
	if err != nil {
		t.Fatal(err)
	}
	feed(t, r, map[uint8]*Track{ptOpus: tr}, pkts, nil)
	end := start + dur + 200*time.Millisecond
	rep := mustClose(t, r, end)
	file := sink.file()

	a := rep.Tracks[0]
	if a.FramesWritten != uint64(len(frames)) || a.FramesDiscarded != 0 {
		t.Errorf("frames written %d of %d, discarded %d", a.FramesWritten, len(frames), a.FramesDiscarded)
	}
	d, _ := probe(t, file, "ogg")
	within(t, "ffprobe duration", d, (end - firstArrival(pkts)).Seconds(), 0.1)
	rec := decodePCM(t, file)
	ref := decodePCM(t, sentOgg(t, frames))
	const ms = ogg.SampleRate / 1000
	j := int(jumpAt.Milliseconds()) * ms
	before := bestLag(rec, ref, j-2*ogg.SampleRate, j, 0, 200*ms)
	after := bestLag(rec, ref, j, j+2*ogg.SampleRate, before-100*ms, before+1100*ms)
	t.Logf("lag before the jump %.1f ms, after %.1f ms, SNR after %.1f dB", float64(before)/ms, float64(after)/ms, snrAt(rec, ref, after, j, j+2*ogg.SampleRate))
	if diff := after - before; diff > 20*ms || diff < -20*ms {
		t.Errorf("speech after the timestamp jump moved %.1f ms, want within 20 ms", float64(diff)/ms)
	}
}
