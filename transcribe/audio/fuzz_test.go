package audio

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// fuzzDecode decodes arbitrary bytes with every decoder of the build and
// checks the contract: no panic, an error is nil or a *FormatError wrapping
// one of the sentinels, and the output never runs past the timeline limit.
func fuzzDecode(t *testing.T, data []byte, ct string) {
	const maxDur = time.Minute
	for _, dec := range decoders() {
		n := 0
		err := Decode(context.Background(), bytes.NewReader(data), ct, Options{Decoder: dec, MaxDuration: maxDur},
			func(p []int16) error {
				n += len(p)
				return nil
			})
		if n > int(maxDur.Seconds()+1)*outRate {
			t.Fatalf("%s: %d samples from %d bytes, past the %v limit", dec, n, len(data), maxDur)
		}
		if err == nil {
			continue
		}
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("%s: error %v (%T) is not a *FormatError", dec, err, err)
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrNoAudio) {
			t.Fatalf("%s: error %v wraps no sentinel", dec, err)
		}
	}
}

func seedPrefix(f *testing.F, data []byte, n int) {
	f.Add(data[:min(n, len(data))])
}

func FuzzWebMAudio(f *testing.F) {
	s := readOpusStream(f, "call04.ogg")
	short := opusStream{head: s.head, packets: s.packets[:6]}
	f.Add(buildWebM(f, short, "A_OPUS", nil))
	f.Add(buildWebM(f, short, "A_OPUS", func(i int) bool { return i%3 == 1 }))
	seedPrefix(f, readTestdata(f, "call04.webm"), 1200)
	seedPrefix(f, readTestdata(f, "av.webm"), 1200)
	seedPrefix(f, readTestdata(f, "h264.mkv"), 1200)
	f.Add(readTestdata(f, "video-only.webm"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, ContentTypeWebM)
	})
}

func FuzzOggAudio(f *testing.F) {
	s := readOpusStream(f, "call04.ogg")
	short := opusStream{head: s.head, packets: s.packets[:6]}
	f.Add(buildOgg(f, short, nil))
	f.Add(buildOgg(f, short, func(i int) bool { return i%3 == 1 }))
	seedPrefix(f, readTestdata(f, "call04.ogg"), 1200)
	seedPrefix(f, readTestdata(f, "silence.ogg"), 1200)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data, ContentTypeOgg)
	})
}

// FuzzOpusPacket feeds single packets through both decoders: the packet
// duration parser and the decoders must not panic or overrun.
func FuzzOpusPacket(f *testing.F) {
	s := readOpusStream(f, "call04.ogg")
	for _, p := range s.packets[:5] {
		f.Add(p)
	}
	f.Add([]byte{0xfb, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		n48, err := packetSamples48(pkt)
		if err == nil && (n48 <= 0 || n48 > maxPacket48) {
			t.Fatalf("duration %d", n48)
		}
		out := make([]int16, maxPacketOut)
		for _, name := range decoders() {
			d, err := Options{Decoder: name}.newDecoder()
			if err != nil {
				t.Fatal(err)
			}
			n, err := d.decode(pkt, out)
			if err == nil && n > maxPacketOut {
				t.Fatalf("%s decoded %d samples", name, n)
			}
			d.close()
		}
	})
}
