package pipeline

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/custodian/custodian/recorder/report"
	"github.com/pion/rtp/codecs"
)

var canary = []byte("CANARY-GATED-MEDIA-7f3a9c")

// canaryFrames replaces the frames in [from, to) with canary payloads:
// Opus packets keep their TOC byte so they still parse.
func canaryFrames(frames []mediatest.Frame, from, to time.Duration, opus bool) []mediatest.Frame {
	out := make([]mediatest.Frame, len(frames))
	copy(out, frames)
	for i, f := range out {
		if f.At < from || f.At >= to {
			continue
		}
		var d []byte
		if opus {
			d = append([]byte{f.Data[0]}, canary...)
		} else {
			d = append([]byte{0x01}, bytes.Repeat(canary, 20)...) // an interframe tag
		}
		out[i].Data = d
	}
	return out
}

func noCanary(t *testing.T, sink *memSink) {
	t.Helper()
	for i, p := range sink.parts {
		if bytes.Contains(p, canary) {
			t.Fatalf("part %d contains media from a gated span", i)
		}
	}
}

// TestPause pauses audio and video from 3 s to 6 s of a 10 s call whose
// media in that span carries a canary: nothing of it reaches the sink, the
// span is silence on the timeline and in the report, the duration is the
// wall-clock span.
func TestPause(t *testing.T) {
	sink := &memSink{}
	r := newRecording(t, sink, nil, Config{})
	ta, _ := r.AddTrack(TrackConfig{MimeType: "audio/opus"})
	tv, _ := r.AddTrack(TrackConfig{MimeType: "video/VP8"})
	start := 200 * time.Millisecond
	af := canaryFrames(mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, 10*time.Second), 3*time.Second, 6*time.Second, true)
	vf := canaryFrames(mediatest.Timed(mediatest.IVF(t, "vp8.ivf"), time.Second/30, 10*time.Second), 3*time.Second, 6*time.Second, false)
	audio, _ := mediatest.Stream{Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus, SSRC: 1, Start: start, Jitter: 10 * time.Millisecond, Seed: 3}.Packets(af)
	video, _ := mediatest.Stream{Payloader: &codecs.VP8Payloader{EnablePictureID: true}, ClockRate: 90000, PayloadType: ptVP8, SSRC: 2, Start: start, Jitter: 10 * time.Millisecond, Seed: 4}.Packets(vf)
	pkts := mediatest.Merge(audio, video)
	events := []event{
		{start + 3*time.Second, func() { r.SetGate(GatePaused, at(start+3*time.Second)) }},
		{start + 6*time.Second, func() { r.SetGate(GateOpen, at(start+6*time.Second)) }},
	}
	feed(t, r, map[uint8]*Track{ptOpus: ta, ptVP8: tv}, pkts, events)
	end := start + 10*time.Second + 100*time.Millisecond
	rep := mustClose(t, r, end)

	noCanary(t, sink)
	file := sink.file()
	first := firstArrival(pkts)
	d, codecs := probe(t, file, "webm")
	if codecs != "opus:vp8" {
		t.Errorf("codecs %q", codecs)
	}
	within(t, "duration", d, (end - first).Seconds(), 0.1)
	if e := decodeErrors(t, file, "webm"); e != "" {
		t.Errorf("decode errors:\n%s", e)
	}
	off := first - start
	if v := maxVolume(t, file, "webm", 3*time.Second-off+50*time.Millisecond, 6*time.Second-off-50*time.Millisecond); v > -90 {
		t.Errorf("paused span max volume %.1f dB, want silence", v)
	}
	if len(rep.PausedRanges) != 1 {
		t.Fatalf("paused ranges %+v", rep.PausedRanges)
	}
	p := rep.PausedRanges[0]
	if p.Kind != report.KindPaused || math.Abs(float64(p.StartMS)-float64(3*time.Second-off)/1e6) > 20 ||
		math.Abs(float64(p.EndMS)-float64(6*time.Second-off)/1e6) > 20 || p.SessionStartMS != (start+3*time.Second).Milliseconds() {
		t.Errorf("paused range %+v", p)
	}
	if rep.PacketsGated == 0 {
		t.Error("no gated packets counted")
	}
	if rep.Tracks[1].KeyframeRequests < 2 {
		t.Errorf("keyframe requests %d: want one at resume", rep.Tracks[1].KeyframeRequests)
	}
}

// TestConsentLater starts without consent; consent arrives at 2 s.
// Recording starts from that moment; the excluded span is reported.
func TestConsentLater(t *testing.T) {
	sink := &memSink{}
	r := newRecording(t, sink, nil, Config{Gate: GateNoConsent})
	ta, _ := r.AddTrack(TrackConfig{MimeType: "audio/opus"})
	start := 100 * time.Millisecond
	af := canaryFrames(mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, 6*time.Second), 0, 2*time.Second, true)
	audio, _ := mediatest.Stream{Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus, SSRC: 1, Start: start, Jitter: 10 * time.Millisecond, Seed: 5}.Packets(af)
	consent := start + 2*time.Second
	feed(t, r, map[uint8]*Track{ptOpus: ta}, audio, []event{{consent, func() { r.SetGate(GateOpen, at(consent)) }}})
	end := start + 6*time.Second
	rep := mustClose(t, r, end)
	noCanary(t, sink)
	d, _ := probe(t, sink.file(), "ogg")
	within(t, "duration", d, (end - consent).Seconds(), 0.1)
	within(t, "start offset", float64(rep.StartOffsetMS), float64(consent.Milliseconds()), 50)
	if len(rep.PausedRanges) != 1 {
		t.Fatalf("ranges %+v", rep.PausedRanges)
	}
	p := rep.PausedRanges[0]
	if p.Kind != report.KindExcludedNoConsent || p.StartMS != 0 || p.EndMS != 0 ||
		math.Abs(float64(p.SessionStartMS)-float64(firstArrival(audio).Milliseconds())) > 1 || p.SessionEndMS != consent.Milliseconds() {
		t.Errorf("excluded range %+v", p)
	}
}

// TestNoConsentNoParts: without consent nothing at all reaches the sink.
func TestNoConsentNoParts(t *testing.T) {
	sink := &memSink{}
	r := newRecording(t, sink, nil, Config{Gate: GateNoConsent})
	ta, _ := r.AddTrack(TrackConfig{MimeType: "audio/opus"})
	audio, _ := mediatest.Stream{Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus, SSRC: 1}.Packets(
		mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, 5*time.Second))
	feed(t, r, map[uint8]*Track{ptOpus: ta}, audio, nil)
	rep := mustClose(t, r, 5*time.Second)
	if len(sink.parts) != 0 || !rep.Empty || rep.Parts != 0 {
		t.Fatalf("%d parts, report %+v", len(sink.parts), rep)
	}
	if rep.PacketsGated == 0 || len(rep.PausedRanges) != 1 || rep.PausedRanges[0].Kind != report.KindExcludedNoConsent {
		t.Fatalf("report %+v", rep)
	}
}

// TestSinkFailure: the sink fails from the fourth part on. The recording
// fails with the reason, pushes are refused, earlier parts are intact.
func TestSinkFailure(t *testing.T) {
	run := func(failAt int) (*memSink, *Recording, error) {
		sink := &memSink{failAt: failAt}
		r := newRecording(t, sink, nil, Config{})
		ta, _ := r.AddTrack(TrackConfig{MimeType: "audio/opus"})
		audio, _ := mediatest.Stream{Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus, SSRC: 1}.Packets(
			mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, 10*time.Second))
		feed(t, r, map[uint8]*Track{ptOpus: ta}, audio, nil)
		_, err := r.Close(t.Context(), at(10*time.Second))
		return sink, r, err
	}
	good, _, err := run(0)
	if err != nil {
		t.Fatal(err)
	}
	bad, r, err := run(3)
	var fe *FailedError
	if !errors.As(err, &fe) || !errors.Is(err, errSinkDown) || fe.Part != 3 {
		t.Fatalf("close error %v", err)
	}
	select {
	case <-r.Failed():
	default:
		t.Fatal("Failed not closed")
	}
	if len(bad.parts) != 3 {
		t.Fatalf("%d parts stored", len(bad.parts))
	}
	for i := range bad.parts {
		if !bytes.Equal(bad.parts[i], good.parts[i]) {
			t.Fatalf("part %d differs from the run without failure", i)
		}
	}
}
