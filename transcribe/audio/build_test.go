package audio

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/at-wat/ebml-go/webm"
	"github.com/custodian/custodian/recorder/ogg"
)

// opusStream is the OpusHead and audio packets of a test recording.
type opusStream struct {
	head    []byte
	packets [][]byte
}

// readOpusStream pulls the packets out of an Ogg test file with the
// recorder's reader.
func readOpusStream(tb testing.TB, name string) opusStream {
	tb.Helper()
	r := ogg.NewReader(bytes.NewReader(readTestdata(tb, name)), 0)
	var s opusStream
	for i := 0; ; i++ {
		p, err := r.NextPacket()
		if errors.Is(err, io.EOF) {
			return s
		}
		if err != nil {
			tb.Fatal(err)
		}
		switch i {
		case 0:
			s.head = bytes.Clone(p.Data)
		case 1: // OpusTags
		default:
			s.packets = append(s.packets, bytes.Clone(p.Data))
		}
	}
}

func (s opusStream) preSkip() int { return int(s.head[10]) | int(s.head[11])<<8 }

// buildOgg writes the stream as Ogg, one packet per page so every packet
// is timed, leaving out the packets drop selects: their time stays on the
// timeline as a granule position jump.
func buildOgg(tb testing.TB, s opusStream, drop func(i int) bool) []byte {
	tb.Helper()
	w := ogg.NewWriter(0x1234)
	var out []byte
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(w.WritePacket(s.head, 0))
	out = w.Flush(out, false)
	must(w.WritePacket(ogg.OpusTags("custodian test"), 0))
	out = w.Flush(out, false)
	var granule int64
	for i, p := range s.packets {
		n, err := packetSamples48(p)
		if err != nil {
			n = 960 // a deliberately bad packet: give it 20 ms
		}
		granule += int64(n)
		if drop != nil && drop(i) {
			continue
		}
		must(w.WritePacket(p, granule))
		out = w.Flush(out, false)
	}
	return w.Flush(out, true)
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

// buildWebM writes the stream as a live-style WebM (unknown-size segment
// and clusters, as ebml-go's writer makes them) with the same drops.
func buildWebM(tb testing.TB, s opusStream, codec string, drop func(i int) bool) []byte {
	tb.Helper()
	var buf bytes.Buffer
	ws, err := webm.NewSimpleBlockWriter(nopCloser{&buf}, []webm.TrackEntry{{
		Name: "audio", TrackNumber: 1, TrackUID: 1, CodecID: codec, TrackType: 2,
		CodecPrivate: s.head, CodecDelay: uint64(s.preSkip()) * 1e9 / opusRate,
		Audio: &webm.Audio{SamplingFrequency: 48000, Channels: 1},
	}})
	if err != nil {
		tb.Fatal(err)
	}
	var pos48 int64
	for i, p := range s.packets {
		n, err := packetSamples48(p)
		if err != nil {
			n = 960
		}
		if drop == nil || !drop(i) {
			if _, err := ws[0].Write(true, pos48/granule48PerMS, p); err != nil {
				tb.Fatal(err)
			}
		}
		pos48 += int64(n)
	}
	if err := ws[0].Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
