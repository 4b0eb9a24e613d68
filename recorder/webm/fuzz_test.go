package webm

import (
	"bytes"
	"testing"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// FuzzWriter writes arbitrary blocks (track, time, keyframe, size from
// the input) for each video codec the recorder muxes (VP8, VP9, AV1 in
// WebM; H.264 with an arbitrary CodecPrivate in Matroska) and checks the
// result parses back with ebml-go with every block in place.
func FuzzWriter(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 1, 10, 2, 0, 33, 1, 200, 1, 127, 255, 0, 3})
	f.Add([]byte{1, 2, 0, 0, 1, 10, 1, 0, 33, 1, 200})
	f.Add([]byte{2, 1, 0, 0, 1, 10, 2, 0, 33, 129, 200})
	f.Add([]byte{3, 1, 0, 0, 1, 10, 2, 0, 33, 1, 200, 1, 127, 255, 0, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		docType, video, private := "webm", CodecVP8, []byte(nil)
		switch b[0] % 4 {
		case 1:
			video = CodecVP9
		case 2:
			video = CodecAV1
		case 3:
			docType, video = "matroska", CodecH264
			private = b[1:min(len(b), 1+int(b[0]>>2))] // an arbitrary avcC
		}
		b = b[1:]
		w := NewWriter(Header{DocType: docType, Tracks: []Track{
			{Number: AudioTrack, CodecID: CodecOpus, SampleRate: 48000, Channels: 1},
			{Number: VideoTrack, CodecID: video, CodecPrivate: private, Width: 16, Height: 16},
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
		if seg.Header.DocType != docType || len(seg.Segment.Tracks.TrackEntry) != 2 || seg.Segment.Tracks.TrackEntry[1].CodecID != video {
			t.Fatalf("parsed back doctype %q tracks %+v, want %s with %s", seg.Header.DocType, seg.Segment.Tracks.TrackEntry, docType, video)
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
