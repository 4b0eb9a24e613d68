package webm

import (
	"bytes"
	"testing"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// FuzzWriter writes arbitrary blocks (track, time, keyframe, size from
// the input) and checks the result parses back with ebml-go with every
// block in place.
func FuzzWriter(f *testing.F) {
	f.Add([]byte{1, 0, 0, 1, 10, 2, 0, 33, 1, 200, 1, 127, 255, 0, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		w := NewWriter(Header{DocType: "webm", Tracks: []Track{
			{Number: AudioTrack, CodecID: CodecOpus, SampleRate: 48000, Channels: 1},
			{Number: VideoTrack, CodecID: CodecVP8, Width: 16, Height: 16},
		}})
		out, err := w.AppendHeader(nil)
		if err != nil {
			t.Fatal(err)
		}
		blocks := 0
		tc := int64(0)
		for len(b) >= 5 {
			track := uint64(b[0]%2 + 1)
			tc += int64(b[1])<<8 | int64(b[2]) // may jump far: clusters split
			w.WriteBlock(track, tc, b[3]&1 == 1, bytes.Repeat([]byte{b[3]}, int(b[4])))
			blocks++
			if b[3]&0x80 != 0 {
				out = w.AppendCluster(out)
			}
			b = b[5:]
		}
		out = w.AppendCluster(out)
		out, err = w.AppendCues(out)
		if err != nil {
			t.Fatal(err)
		}
		var seg struct {
			Header  webm.EBMLHeader `ebml:"EBML"`
			Segment webm.Segment    `ebml:"Segment"`
		}
		if err := ebml.Unmarshal(bytes.NewReader(out), &seg); err != nil {
			t.Fatalf("parse back: %v", err)
		}
		n := 0
		for _, c := range seg.Segment.Cluster {
			n += len(c.SimpleBlock)
		}
		if n != blocks {
			t.Fatalf("%d blocks parsed, %d written", n, blocks)
		}
	})
}
