package depacket

import (
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/custodian/custodian/recorder/jitter"
	"github.com/pion/rtp/codecs"
)

// splitPackets turns fuzz input into packets: each starts with a flags
// byte (bit 0 marker, bit 1 loss before, bit 2 new timestamp) and a length
// byte.
func splitPackets(b []byte) []jitter.Packet {
	var out []jitter.Packet
	ts := uint32(0)
	for len(b) >= 2 {
		flags, n := b[0], int(b[1])
		b = b[2:]
		n = min(n, len(b))
		if flags&4 != 0 {
			ts += 3000
		}
		p := jitter.Packet{Payload: b[:n], Marker: flags&1 != 0, Timestamp: ts}
		if flags&2 != 0 {
			p.LostBefore = 1
		}
		out = append(out, p)
		b = b[n:]
	}
	return out
}

// seed encodes real packets in the fuzz input format.
func seed(f *testing.F, pl mediatest.Payloader, frames [][]byte) {
	s := mediatest.Stream{Payloader: pl, ClockRate: 90000, MTU: 200}
	pkts, _ := s.Packets(mediatest.Timed(frames, 33*time.Millisecond, time.Duration(len(frames))*33*time.Millisecond))
	var in []byte
	for _, p := range pkts {
		if len(p.Packet.Payload) > 255 {
			continue
		}
		fl := byte(4)
		if p.Packet.Marker {
			fl |= 1
		}
		in = append(in, fl, byte(len(p.Packet.Payload)))
		in = append(in, p.Packet.Payload...)
		if len(in) > 4000 {
			break
		}
	}
	f.Add(in)
}

func fuzzDepacketize(f *testing.F, c Codec) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range splitPackets(b) {
			fr, err := d.Push(&p)
			if err == nil && fr != nil && len(fr.Data) > maxFrame+1024 {
				t.Fatalf("frame of %d bytes", len(fr.Data))
			}
		}
		_ = d.CodecPrivate()
	})
}

func FuzzDepacketizeOpus(f *testing.F) {
	f.Add([]byte{0, 3, 0xf8, 0xff, 0xfe})
	fuzzDepacketize(f, Opus)
}

func FuzzDepacketizeVP8(f *testing.F) {
	seed(f, &codecs.VP8Payloader{EnablePictureID: true}, mediatest.IVF(f, "vp8.ivf")[:2])
	fuzzDepacketize(f, VP8)
}

func FuzzDepacketizeVP9(f *testing.F) {
	seed(f, &codecs.VP9Payloader{}, mediatest.IVF(f, "vp9.ivf")[:3])
	fuzzDepacketize(f, VP9)
}

func FuzzDepacketizeAV1(f *testing.F) {
	seed(f, &codecs.AV1Payloader{}, mediatest.IVF(f, "av1.ivf")[:3])
	fuzzDepacketize(f, AV1)
}

func FuzzDepacketizeH264(f *testing.F) {
	seed(f, &codecs.H264Payloader{}, mediatest.H264AccessUnits(f)[:3])
	fuzzDepacketize(f, H264)
}

// FuzzParseSPS and FuzzAV1SequenceHeader exercise the bit readers.
func FuzzParseSPS(f *testing.F) {
	f.Add([]byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) { _, _, _ = parseSPS(b) })
}

func FuzzAV1SequenceHeader(f *testing.F) {
	f.Add([]byte{0x00, 0x00, 0x00, 0x02, 0xaf, 0xff, 0x9b, 0x5f, 0x30, 0x08})
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseAV1SequenceHeader(b) })
}
