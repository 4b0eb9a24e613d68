package pipeline

import (
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/clock"
	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// TestVideoCodecs records 1-second clips of each video codec, looped for
// 4 s, with Opus: the container, codecs and duration must be right and
// the file must decode without errors.
func TestVideoCodecs(t *testing.T) {
	tests := []struct {
		mime, ct, ext, codecs string
		frames                func(testing.TB) [][]byte
		pl                    mediatest.Payloader
	}{
		{"video/VP9", ContentTypeWebM, "webm", "opus:vp9", func(tb testing.TB) [][]byte { return mediatest.IVF(tb, "vp9.ivf") }, &codecs.VP9Payloader{}},
		{"video/AV1", ContentTypeWebM, "webm", "opus:av1", func(tb testing.TB) [][]byte { return mediatest.IVF(tb, "av1.ivf") }, &codecs.AV1Payloader{}},
		{"video/H264", ContentTypeMatroska, "mkv", "opus:h264", mediatest.H264AccessUnits, &codecs.H264Payloader{}},
	}
	for _, tt := range tests {
		t.Run(tt.mime, func(t *testing.T) {
			sink := &memSink{}
			r := newRecording(t, sink, nil, Config{})
			ta, _ := r.AddTrack(TrackConfig{MimeType: "audio/opus"})
			tv, err := r.AddTrack(TrackConfig{MimeType: tt.mime})
			if err != nil {
				t.Fatal(err)
			}
			if ct := r.ContentType(); ct != tt.ct {
				t.Fatalf("content type %s", ct)
			}
			// The 1 s clip plays once (a loop would reference frames
			// across the loop point); the video then holds its last
			// frame to the end.
			clip := tt.frames(t)
			af := mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, 4*time.Second)
			vf := mediatest.Timed(clip, time.Second/30, time.Duration(len(clip))*time.Second/30)
			audio, _ := mediatest.Stream{Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus, SSRC: 1, Jitter: 10 * time.Millisecond, Seed: 8}.Packets(af)
			video, _ := mediatest.Stream{Payloader: tt.pl, ClockRate: 90000, PayloadType: ptVP8, SSRC: 2, Jitter: 10 * time.Millisecond, Reorder: 0.05, Seed: 9}.Packets(vf)
			pkts := mediatest.Merge(audio, video)
			feed(t, r, map[uint8]*Track{ptOpus: ta, ptVP8: tv}, pkts, nil)
			end := 4 * time.Second
			rep := mustClose(t, r, end)
			file := sink.file()
			d, got := probe(t, file, tt.ext)
			if got != tt.codecs {
				t.Errorf("codecs %q, want %q", got, tt.codecs)
			}
			within(t, "duration", d, (end - firstArrival(pkts)).Seconds(), 0.1)
			if e := decodeErrors(t, file, tt.ext); e != "" {
				t.Errorf("decode errors:\n%s", e)
			}
			if v := rep.Tracks[1]; v.FramesWritten != uint64(len(vf)) {
				t.Errorf("%d frames written, want %d (%+v)", v.FramesWritten, len(vf), v)
			}
		})
	}
}

// TestSessionClock: two participants of one session start 1.5 s apart
// and their recordings' start offsets say so; one sends RTCP sender
// reports with an NTP clock that is 1 hour off (only the offset matters).
func TestSessionClock(t *testing.T) {
	cl := clock.NewSession(epoch)
	rec := func(start time.Duration, sr bool) *Recording {
		sink := &memSink{}
		r := New(t.Context(), cl, sink, nil, Config{})
		ta, _ := r.AddTrack(TrackConfig{MimeType: "audio/opus"})
		audio, _ := mediatest.Stream{Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus, SSRC: 77, FirstTS: 1000, Start: start, Jitter: 20 * time.Millisecond, Seed: 11}.Packets(
			mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, 3*time.Second))
		var events []event
		if sr {
			ntp := uint64(3_900_000_000+3600) << 32
			events = append(events, event{start + time.Second, func() {
				r.WriteRTCP([]rtcp.Packet{&rtcp.SenderReport{SSRC: 77, NTPTime: ntp + uint64(1)<<32, RTPTime: 1000 + 48000}})
			}})
		}
		feed(t, r, map[uint8]*Track{ptOpus: ta}, audio, events)
		return r
	}
	a := rec(200*time.Millisecond, false)
	b := rec(1700*time.Millisecond, true)
	ra := mustClose(t, a, 4*time.Second)
	rb := mustClose(t, b, 5*time.Second)
	within(t, "start offset difference (ms)", float64(rb.StartOffsetMS-ra.StartOffsetMS), 1500, 30)
}

// TestHostileRTP mixes malformed packets into a valid stream: they are
// dropped and counted, and the recording stays valid.
func TestHostileRTP(t *testing.T) {
	sink := &memSink{}
	r := newRecording(t, sink, nil, Config{})
	ta, _ := r.AddTrack(TrackConfig{MimeType: "audio/opus", PayloadTypes: []uint8{ptOpus}})
	audio, _ := mediatest.Stream{Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus, SSRC: 5, FirstSeq: 100, FirstTS: 5000}.Packets(
		mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, 4*time.Second))
	feed(t, r, map[uint8]*Track{ptOpus: ta}, audio[:50], nil)
	now := audio[49].Arrival
	hdr := rtp.Header{Version: 2, PayloadType: ptOpus, SSRC: 5, SequenceNumber: 150, Timestamp: 5000 + 50*960}
	raw := func(h rtp.Header, payload []byte, pad byte) []byte {
		b, _ := h.Marshal()
		b = append(b, payload...)
		if pad > 0 {
			b[0] |= 0x20
			b = append(b, pad)
		}
		return b
	}
	bad := [][]byte{
		raw(hdr, []byte{0xfc, 1, 2}, 200), // padding longer than the payload
		raw(hdr, nil, 0),                  // zero-length payload (fills seq 150)
		raw(rtp.Header{Version: 2, PayloadType: 9, SSRC: 5, SequenceNumber: 151}, []byte{0xfc}, 0), // unknown payload type
		{0x80, 0x6f}, // truncated header
		raw(rtp.Header{Version: 1, PayloadType: ptOpus, SSRC: 5}, []byte{1}, 0), // wrong version
	}
	for _, b := range bad {
		if err := ta.WriteRTP(b, at(now)); err == nil {
			t.Errorf("accepted % x", b[:min(len(b), 16)])
		}
	}
	// Absurd timestamps: 2 packets claiming to be an hour later.
	for i := range 2 {
		h := rtp.Header{Version: 2, PayloadType: ptOpus, SSRC: 5, SequenceNumber: uint16(151 + i), Timestamp: 5000 + 48000*3600}
		_ = ta.WriteRTP(raw(h, []byte{0xfc, 0xff, 0xfe}, 0), at(now+time.Duration(i+1)*time.Millisecond))
	}
	// The stream continues (sequence 153 on, as the sender renumbers).
	rest := audio[50:]
	for i := range rest {
		p := *rest[i].Packet
		p.SequenceNumber += 3
		rest[i].Packet = &p
	}
	feed(t, r, map[uint8]*Track{ptOpus: ta}, rest, nil)
	rep := mustClose(t, r, 4*time.Second)
	if rep.PacketsDroppedInvalid < 7 {
		t.Errorf("dropped invalid %d, want at least 7", rep.PacketsDroppedInvalid)
	}
	d, _ := probe(t, sink.file(), "ogg")
	within(t, "duration", d, 4, 0.1)
}
