package pipeline

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/clock"
	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/custodian/custodian/recorder/ogg"
	"github.com/pion/rtp/codecs"
)

// FuzzRecording feeds arbitrary RTP packets (length-prefixed, each with a
// track selector and an arrival step) into a recording with an audio and
// a video track, toggling the gate, then closes it: no panic, and the
// parts must form a parsable file.
func FuzzRecording(f *testing.F) {
	for _, vid := range []bool{false, true} {
		var in []byte
		audio, _ := mediatest.Stream{Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus, SSRC: 1}.Packets(
			mediatest.Timed(mediatest.OpusPackets(f)[:20], 20*time.Millisecond, 400*time.Millisecond))
		for _, s := range audio {
			raw, _ := s.Packet.Marshal()
			in = append(in, 0, 20, byte(len(raw)))
			in = append(in, raw...)
		}
		if vid {
			video, _ := mediatest.Stream{Payloader: &codecs.VP8Payloader{}, ClockRate: 90000, PayloadType: ptVP8, SSRC: 2, MTU: 250}.Packets(
				mediatest.Timed(mediatest.IVF(f, "vp8.ivf")[:1], 33*time.Millisecond, 33*time.Millisecond))
			for _, s := range video[:min(len(video), 8)] {
				raw, _ := s.Packet.Marshal()
				in = append(in, 1, 5, byte(len(raw)))
				in = append(in, raw...)
			}
		}
		f.Add(in, vid)
	}
	f.Fuzz(func(t *testing.T, b []byte, vid bool) {
		sink := &memSink{}
		r := New(context.Background(), clock.NewSession(epoch), sink, nil, Config{PartDuration: 200 * time.Millisecond})
		ta, _ := r.AddTrack(TrackConfig{MimeType: "audio/opus"})
		tv := ta
		if vid {
			tv, _ = r.AddTrack(TrackConfig{MimeType: "video/VP8"})
		}
		now := time.Duration(0)
		for len(b) >= 3 {
			sel, step, n := b[0], b[1], int(b[2])
			b = b[3:]
			n = min(n, len(b))
			now += time.Duration(step) * time.Millisecond
			switch sel % 4 {
			case 0:
				_ = ta.WriteRTP(b[:n], at(now))
			case 1:
				_ = tv.WriteRTP(b[:n], at(now))
			case 2:
				r.SetGate(Gate(sel/4%3), at(now))
			case 3:
				_ = r.Tick(at(now))
			}
			b = b[n:]
		}
		rep, err := r.Close(context.Background(), at(now+time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if rep.PacketsExpected != rep.PacketsReceived+rep.PacketsLost {
			t.Fatalf("expected %d != received %d + lost %d", rep.PacketsExpected, rep.PacketsReceived, rep.PacketsLost)
		}
		file := sink.file()
		if vid || len(file) == 0 {
			return
		}
		rd := ogg.NewReader(bytes.NewReader(file), 0)
		for {
			if _, err := rd.NextPacket(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("output does not parse: %v", err)
			}
		}
	})
}
