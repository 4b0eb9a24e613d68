package audio

import (
	"errors"
	"testing"

	rwebm "github.com/custodian/custodian/recorder/webm"
)

// buildRecorderWebM writes the stream with the recorder's own WebM muxer,
// as the recorder does for audio+video sessions: header part, clusters of
// one second, Cues, header rewritten at close.
func buildRecorderWebM(tb testing.TB, s opusStream, drop func(int) bool) []byte {
	tb.Helper()
	h := rwebm.Header{DocType: "webm", Tracks: []rwebm.Track{{
		Number: rwebm.AudioTrack, CodecID: rwebm.CodecOpus, CodecPrivate: s.head, SampleRate: 48000, Channels: 1,
	}}}
	w := rwebm.NewWriter(h)
	file, err := w.AppendHeader(nil)
	if err != nil {
		tb.Fatal(err)
	}
	var pos48 int64
	for i, p := range s.packets {
		if drop == nil || !drop(i) {
			w.WriteBlock(rwebm.AudioTrack, pos48/granule48PerMS, true, p)
		}
		n, err := packetSamples48(p)
		if err != nil {
			tb.Fatal(err)
		}
		pos48 += int64(n)
		if i%50 == 49 {
			file = w.AppendCluster(file)
		}
	}
	file = w.AppendCluster(file)
	if file, err = w.AppendCues(file); err != nil {
		tb.Fatal(err)
	}
	hdr, err := w.AppendHeader(nil)
	if err != nil {
		tb.Fatal(err)
	}
	copy(file, hdr)
	return file
}

func TestRecorderWebM(t *testing.T) {
	s := readOpusStream(t, "call04.ogg")
	ref := decodeFile(t, "call04.ogg", "")
	drop := func(i int) bool { return i >= 150 && i < 250 }
	for _, tt := range []struct {
		name string
		drop func(int) bool
	}{{"complete", nil}, {"2 s lost", drop}} {
		t.Run(tt.name, func(t *testing.T) {
			data := buildRecorderWebM(t, s, tt.drop)
			got, err := decodeBytes(t, data, ContentTypeWebM, Options{})
			if err != nil {
				t.Fatal(err)
			}
			// The Ogg decode ends exactly (end trimming); WebM without
			// DiscardPadding may run to the end of the last packet.
			if d := len(got) - len(ref); d < 0 || d > 320 {
				t.Errorf("%d samples, Ogg decode has %d", len(got), len(ref))
			}
			if c := correlation(ref[len(ref)-outRate:], got[len(ref)-outRate:len(ref)], 0); c < 0.99 {
				t.Errorf("last second differs from the Ogg decode: correlation %.3f", c)
			}
			// A cut file (crash before close) is still readable up to the cut.
			cut := data[:len(data)*2/3]
			part, err := decodeBytes(t, cut, ContentTypeWebM, Options{})
			if err != nil && !errors.Is(err, ErrTruncated) {
				t.Errorf("cut recorder WebM: %v", err)
			}
			if len(part) < outRate {
				t.Errorf("cut recorder WebM gave %d samples", len(part))
			}
		})
	}
}
