package pipeline

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/custodian/custodian/recorder/webm"
	"github.com/pion/rtp/codecs"
)

const (
	ptOpus = 111
	ptVP8  = 96
)

func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.3f, want %.3f ± %.3f", what, got, want, tol)
	}
}

// opusStream is 12 s of real speech packets sent from sender time 0 with
// a 3-second DTX silence at 4-7 s, 5% loss, reordering and jitter, RTP
// sequence numbers and timestamps that wrap, and a new SSRC at 9 s.
func opusStream(t *testing.T, start time.Duration) ([]mediatest.Sent, int) {
	frames := mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, 12*time.Second)
	frames = mediatest.DropSpan(frames, 4*time.Second, 7*time.Second)
	s := mediatest.Stream{
		Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus,
		SSRC: 0x1111, FirstSeq: 65535 - 100, FirstTS: math.MaxUint32 - 48000*2,
		Start: start, Loss: 0.05, Reorder: 0.05, Jitter: 30 * time.Millisecond, Seed: 1,
		NewSSRCAt: 9 * time.Second, NewSSRC: 0x2222,
	}
	return s.Packets(frames)
}

// firstArrival is when the first packet that was not lost arrived.
func firstArrival(pkts []mediatest.Sent) time.Duration {
	for _, s := range pkts {
		if !s.Lost {
			return s.Arrival
		}
	}
	return 0
}

func TestOpusTimeline(t *testing.T) {
	sink := &memSink{}
	fb := &feedbackLog{}
	r := newRecording(t, sink, fb, Config{})
	tr, err := r.AddTrack(TrackConfig{MimeType: "audio/opus", ClockRate: 48000, PayloadTypes: []uint8{ptOpus}})
	if err != nil {
		t.Fatal(err)
	}
	if ct := r.ContentType(); ct != ContentTypeOgg {
		t.Fatalf("content type %s", ct)
	}
	start := 500 * time.Millisecond
	pkts, lost := opusStream(t, start)
	feed(t, r, map[uint8]*Track{ptOpus: tr}, pkts, nil)
	end := start + 12*time.Second + 400*time.Millisecond // the sender stops, then hangs up
	rep := mustClose(t, r, end)

	file := sink.file()
	d, codecs := probe(t, file, "ogg")
	span := (end - firstArrival(pkts)).Seconds()
	if codecs != "opus" {
		t.Errorf("codecs %q", codecs)
	}
	within(t, "ffprobe duration", d, span, 0.1)
	within(t, "report duration", float64(rep.DurationMS)/1000, span, 0.1)
	if len(sink.parts) < 7 {
		t.Errorf("%d parts for %.1f s: want one at least every 2 s", len(sink.parts), span)
	}
	if e := decodeErrors(t, file, "ogg"); e != "" {
		t.Errorf("ffmpeg decode errors:\n%s", e)
	}
	// The DTX span stays silence at its wall-clock place; speech around it.
	off := firstArrival(pkts) - start
	if v := maxVolume(t, file, "ogg", 4*time.Second-off+100*time.Millisecond, 7*time.Second-off-100*time.Millisecond); v > -90 {
		t.Errorf("DTX span max volume %.1f dB, want silence", v)
	}
	if v := maxVolume(t, file, "ogg", 7*time.Second-off+200*time.Millisecond, 8*time.Second-off); v < -40 {
		t.Errorf("speech after DTX max volume %.1f dB", v)
	}
	// After the SSRC change at 9 s the new stream lands at its wall-clock
	// place: speech there, not silence.
	if v := maxVolume(t, file, "ogg", 9*time.Second-off+200*time.Millisecond, 11500*time.Millisecond-off); v < -40 {
		t.Errorf("speech after SSRC change max volume %.1f dB", v)
	}
	if rep.PacketsLost == 0 || rep.PacketsLost > uint64(lost) {
		t.Errorf("report lost %d, simulated %d", rep.PacketsLost, lost)
	}
	if rep.PacketsExpected != rep.PacketsReceived+rep.PacketsLost {
		t.Errorf("expected %d != received %d + lost %d", rep.PacketsExpected, rep.PacketsReceived, rep.PacketsLost)
	}
	if rep.SSRCChanges != 1 || len(rep.Tracks[0].SSRCs) != 2 {
		t.Errorf("ssrc changes %d %v", rep.SSRCChanges, rep.Tracks[0].SSRCs)
	}
	if rep.NACKsSent == 0 || fb.nacks != int(rep.NACKsSent) {
		t.Errorf("nacks: report %d, feedback %d", rep.NACKsSent, fb.nacks)
	}
	if len(rep.LostRanges) == 0 {
		t.Error("no lost ranges")
	}
	t.Logf("parts %d, report: expected %d received %d lost %d (simulated %d) late %d dup %d nacks %d lost ranges %d",
		len(sink.parts), rep.PacketsExpected, rep.PacketsReceived, rep.PacketsLost, lost, rep.PacketsLate, rep.PacketsDuplicate, rep.NACKsSent, len(rep.LostRanges))
}

// vp8Stream is real VP8 frames at 30 fps from sender time 0 to dur.
func vp8Stream(t testing.TB, start, dur time.Duration, loss float64) ([]mediatest.Sent, int) {
	frames := mediatest.Timed(mediatest.IVF(t, "vp8.ivf"), time.Second/30, dur)
	s := mediatest.Stream{
		Payloader: &codecs.VP8Payloader{EnablePictureID: true}, ClockRate: 90000, PayloadType: ptVP8,
		SSRC: 0x3333, FirstSeq: 65000, FirstTS: math.MaxUint32 - 90000, Start: start,
		Loss: loss, Reorder: 0.05, Jitter: 20 * time.Millisecond, Seed: 2,
	}
	return s.Packets(frames)
}

func TestWebMTimeline(t *testing.T) {
	sink := &memSink{}
	fb := &feedbackLog{}
	r := newRecording(t, sink, fb, Config{})
	ta, _ := r.AddTrack(TrackConfig{MimeType: "audio/opus", ClockRate: 48000})
	tv, err := r.AddTrack(TrackConfig{MimeType: "video/VP8", ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	if ct := r.ContentType(); ct != ContentTypeWebM {
		t.Fatalf("content type %s", ct)
	}
	start := 300 * time.Millisecond
	audio, _ := opusStream(t, start)
	video, vlost := vp8Stream(t, start+15*time.Millisecond, 12*time.Second, 0.05)
	pkts := mediatest.Merge(audio, video)
	// The video sender answers NACKs (each retransmission is lost with
	// the same 5%); the audio sender does not.
	fb.rtx = newRetransmitter(video, 40*time.Millisecond, 0.05)
	feedRTX(t, r, map[uint8]*Track{ptOpus: ta, ptVP8: tv}, pkts, nil, fb)
	end := start + 12*time.Second + 200*time.Millisecond
	rep := mustClose(t, r, end)

	file := sink.file()
	if sink.rewrites != 1 {
		t.Errorf("%d header rewrites", sink.rewrites)
	}
	d, codecs := probe(t, file, "webm")
	span := (end - firstArrival(pkts)).Seconds()
	if codecs != "opus:vp8" {
		t.Errorf("codecs %q", codecs)
	}
	within(t, "ffprobe duration", d, span, 0.1)
	if e := decodeErrors(t, file, "webm"); e != "" {
		t.Errorf("ffmpeg decode errors:\n%s", e)
	}
	// Audio and video share the timeline: video starts 15 ms after audio.
	starts := streamStarts(t, file, "webm")
	within(t, "video start - audio start", starts[1]-starts[0], 0.015, 0.04)
	v := rep.Tracks[1]
	if v.KeyframeRequests == 0 || fb.keyframes != int(rep.KeyframeRequests) {
		t.Errorf("keyframe requests: report %d feedback %d", v.KeyframeRequests, fb.keyframes)
	}
	if v.FramesWritten < 300 || v.NACKsSent == 0 {
		t.Errorf("video track %+v (simulated loss %d)", v, vlost)
	}
	t.Logf("parts %d, video: expected %d lost %d (simulated %d, %d retransmitted) frames written %d discarded %d keyframe requests %d",
		len(sink.parts), v.PacketsExpected, v.PacketsLost, vlost, fb.rtx.sent, v.FramesWritten, v.FramesDiscarded, v.KeyframeRequests)
}

// TestWebMLossWithoutRetransmission: 5% video loss that no one repairs.
// Frames are discarded until the next keyframe, keyframes are requested,
// the file decodes without errors and keeps the wall-clock duration.
func TestWebMLossWithoutRetransmission(t *testing.T) {
	sink := &memSink{}
	fb := &feedbackLog{}
	r := newRecording(t, sink, fb, Config{})
	tv, _ := r.AddTrack(TrackConfig{MimeType: "video/VP8", ClockRate: 90000})
	video, vlost := vp8Stream(t, 0, 8*time.Second, 0.02)
	feed(t, r, map[uint8]*Track{ptVP8: tv}, video, nil)
	end := 8*time.Second + 500*time.Millisecond
	rep := mustClose(t, r, end)
	file := sink.file()
	d, codecs := probe(t, file, "webm")
	if codecs != "vp8" {
		t.Errorf("codecs %q", codecs)
	}
	within(t, "ffprobe duration", d, (end - firstArrival(video)).Seconds(), 0.1)
	if e := decodeErrors(t, file, "webm"); e != "" {
		t.Errorf("ffmpeg decode errors:\n%s", e)
	}
	v := rep.Tracks[0]
	if v.PacketsLost == 0 || v.FramesDiscarded == 0 || v.KeyframeRequests < 2 || v.FramesWritten == 0 || len(v.LostRanges) == 0 {
		t.Errorf("video track %+v (simulated loss %d)", v, vlost)
	}
}

// TestHeaderPart checks that the WebM header part is separate, that no
// part but the header is ever rewritten, and that the parts of an
// unfinished recording play (after webm.FinishHeader, as crash recovery
// would do).
func TestHeaderPart(t *testing.T) {
	sink := &memSink{}
	r := newRecording(t, sink, nil, Config{})
	ta, _ := r.AddTrack(TrackConfig{MimeType: "audio/opus"})
	tv, _ := r.AddTrack(TrackConfig{MimeType: "video/VP8"})
	audio, _ := opusStream(t, 0)
	video, _ := vp8Stream(t, 0, 3*time.Second, 0)
	feed(t, r, map[uint8]*Track{ptOpus: ta, ptVP8: tv}, mediatest.Merge(audio[:100], video), nil)
	// What a crash would leave: the parts sealed so far, header not
	// rewritten. It still plays, with the media written so far.
	checkFor(t, 5*time.Second, func() bool { sink.mu.Lock(); defer sink.mu.Unlock(); return len(sink.parts) >= 2 }, "no parts")
	snap := sink.file()
	hdr, err := webm.FinishHeader(snap)
	if err != nil {
		t.Fatal(err)
	}
	copy(snap, hdr)
	d, codecs := probe(t, snap, "webm")
	if codecs != "opus:vp8" || d < 1 {
		t.Errorf("unfinished file: %s %.3f s", codecs, d)
	}
	mustClose(t, r, 3*time.Second)
	if !bytes.HasPrefix(sink.parts[0], []byte{0x1a, 0x45, 0xdf, 0xa3}) || len(sink.parts[0]) != 4096 {
		t.Fatalf("part 0 is not the 4096-byte header")
	}
	for i, p := range sink.parts[1:] {
		if !bytes.HasPrefix(p, []byte{0x1f, 0x43, 0xb6, 0x75}) {
			t.Fatalf("part %d does not start with a cluster", i+1)
		}
	}
}

// TestStalledStreamSeals: media stops arriving but the connection stays
// up; wall-clock ticks alone still seal what was buffered within one part
// duration, and a packet held behind a gap is released after the jitter
// latency.
func TestStalledStreamSeals(t *testing.T) {
	sink := &memSink{}
	r := newRecording(t, sink, nil, Config{})
	ta, _ := r.AddTrack(TrackConfig{MimeType: "audio/opus"})
	audio, _ := mediatest.Stream{Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus, SSRC: 1}.Packets(
		mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, 1500*time.Millisecond))
	// Lose the next-to-last packet: the last one waits behind the gap.
	audio = append(audio[:len(audio)-2], audio[len(audio)-1])
	feed(t, r, map[uint8]*Track{ptOpus: ta}, audio, nil)
	parts := func() int {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.parts)
	}
	before := parts()
	for d := 1500 * time.Millisecond; d <= 4*time.Second; d += 100 * time.Millisecond {
		if err := r.Tick(at(d)); err != nil {
			t.Fatal(err)
		}
	}
	// The part goes to the sink on the writer goroutine.
	checkFor(t, 5*time.Second, func() bool { return parts() > before }, "no part sealed while the stream stalled")
	// The sealed media includes the packet that waited behind the gap.
	r.mu.Lock()
	written := r.audio.written
	r.mu.Unlock()
	if written != uint64(len(audio)) {
		t.Fatalf("%d frames written, want %d", written, len(audio))
	}
	mustClose(t, r, 4*time.Second)
}
