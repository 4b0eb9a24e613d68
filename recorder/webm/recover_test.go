package webm

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/custodian/custodian/recorder/ogg"
)

// TestFinishHeader: a file whose writer never closed gets a header with
// the duration up to its last block, of the same size.
func TestFinishHeader(t *testing.T) {
	frames := mediatest.IVF(t, "vp8.ivf")
	w := NewWriter(Header{DocType: "webm", Start: time.Unix(1700000000, 0), Tracks: []Track{
		{Number: AudioTrack, CodecID: CodecOpus, CodecPrivate: ogg.OpusHead(1, 0, 48000), SampleRate: 48000, Channels: 1},
		{Number: VideoTrack, CodecID: CodecVP8, Width: 640, Height: 360},
	}})
	file, err := w.AppendHeader(nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames[:90] { // 3 s
		w.WriteBlock(VideoTrack, int64(i)*1000/30, f[0]&1 == 0, f)
		if i%30 == 29 {
			file = w.AppendCluster(file)
		}
	}
	hdr, err := FinishHeader(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(hdr) != HeaderSize {
		t.Fatalf("header %d bytes", len(hdr))
	}
	fixed := append(bytes.Clone(hdr), file[HeaderSize:]...)
	path := filepath.Join(t.TempDir(), "f.webm")
	if err := os.WriteFile(path, fixed, 0o600); err != nil {
		t.Fatal(err)
	}
	d, codecs := ffprobe(t, path)
	if codecs != "opus:vp8" || d < 2.95 || d > 3.0 {
		t.Fatalf("ffprobe %s %.3f", codecs, d)
	}
	if _, err := FinishHeader([]byte("not webm at all")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func FuzzFinishHeader(f *testing.F) {
	w := NewWriter(Header{DocType: "webm", Tracks: []Track{{Number: AudioTrack, CodecID: CodecOpus, SampleRate: 48000, Channels: 1}}})
	file, _ := w.AppendHeader(nil)
	w.WriteBlock(AudioTrack, 0, true, []byte{0xf8, 0xff, 0xfe})
	file = w.AppendCluster(file)
	f.Add(file[HeaderSize:])
	f.Fuzz(func(t *testing.T, tail []byte) {
		_, _ = FinishHeader(append(bytes.Clone(file[:HeaderSize]), tail...))
	})
}
