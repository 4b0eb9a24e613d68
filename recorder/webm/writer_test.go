package webm

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/custodian/custodian/recorder/ogg"
)

// ffprobe returns format duration (s) and "codec:codec" of a file.
func ffprobe(tb testing.TB, path string) (float64, string) {
	tb.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		tb.Skip("ffprobe not installed")
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name",
		"-of", "default=nw=1:nk=1", path).CombinedOutput()
	if err != nil {
		tb.Fatalf("ffprobe: %v\n%s", err, out)
	}
	lines := strings.Fields(string(out))
	d, err := strconv.ParseFloat(lines[len(lines)-1], 64)
	if err != nil {
		tb.Fatalf("ffprobe output %q", out)
	}
	return d, strings.Join(lines[:len(lines)-1], ":")
}

// TestWriteParts writes 4 s of VP8 and Opus as header + cluster parts,
// rewrites the header part with the duration, and checks the file with
// ffprobe and by parsing it back with ebml-go.
func TestWriteParts(t *testing.T) {
	frames := mediatest.IVF(t, "vp8.ivf")
	opus := mediatest.OpusPackets(t)
	h := Header{DocType: "webm", Start: time.Unix(1700000000, 0), Tracks: []Track{
		{Number: AudioTrack, CodecID: CodecOpus, CodecPrivate: ogg.OpusHead(1, 0, 48000), SampleRate: 48000, Channels: 1},
		{Number: VideoTrack, CodecID: CodecVP8, Width: 640, Height: 360},
	}}
	w := NewWriter(h)
	var parts [][]byte
	p0, err := w.AppendHeader(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p0) != HeaderSize {
		t.Fatalf("header part %d bytes", len(p0))
	}
	parts = append(parts, p0)
	for ms := int64(0); ms < 4000; ms += 10 {
		if ms%20 == 0 {
			w.WriteBlock(AudioTrack, ms, true, opus[ms/20])
		}
		if ms%1000 == 990 {
			parts = append(parts, w.AppendCluster(nil))
		}
	}
	for i, f := range frames {
		w.WriteBlock(VideoTrack, int64(i)*1000/30, f[0]&1 == 0, f)
	}
	parts = append(parts, w.AppendCluster(nil))
	last, err := w.AppendCues(nil)
	if err != nil {
		t.Fatal(err)
	}
	parts = append(parts, last)
	h.Duration = 4 * time.Second
	w.SetHeader(h)
	p0b, err := w.AppendHeader(nil)
	if err != nil || len(p0b) != HeaderSize {
		t.Fatalf("rewritten header: %d bytes, %v", len(p0b), err)
	}
	parts[0] = p0b
	file := bytes.Join(parts, nil)
	path := filepath.Join(t.TempDir(), "out.webm")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	d, codecs := ffprobe(t, path)
	if codecs != "opus:vp8" || d < 3.99 || d > 4.01 {
		t.Fatalf("ffprobe: %s %.3f s", codecs, d)
	}
	var seg struct {
		Header  webm.EBMLHeader `ebml:"EBML"`
		Segment webm.Segment    `ebml:"Segment"`
	}
	if err := ebml.Unmarshal(bytes.NewReader(file), &seg); err != nil {
		t.Fatalf("ebml-go: %v", err)
	}
	if seg.Header.DocType != "webm" || seg.Segment.Info.Duration != 4000 || len(seg.Segment.Tracks.TrackEntry) != 2 {
		t.Fatalf("parsed header %+v %+v", seg.Header, seg.Segment.Info)
	}
	blocks := 0
	for _, c := range seg.Segment.Cluster {
		blocks += len(c.SimpleBlock)
	}
	if blocks != 200+len(frames) {
		t.Fatalf("%d blocks, want %d", blocks, 200+len(frames))
	}
	if seg.Segment.Cues == nil || len(seg.Segment.Cues.CuePoint) == 0 {
		t.Fatal("no cues")
	}
	// Every cue points at a cluster.
	for _, cp := range seg.Segment.Cues.CuePoint {
		pos := int(cp.CueTrackPositions[0].CueClusterPosition) + int(w.segData)
		if !bytes.Equal(file[pos:pos+4], idCluster) {
			t.Fatalf("cue at %d does not point at a cluster", pos)
		}
	}
}

func TestHeaderTooLarge(t *testing.T) {
	w := NewWriter(Header{DocType: "matroska", Tracks: []Track{{Number: VideoTrack, CodecID: CodecH264, CodecPrivate: make([]byte, HeaderSize)}}})
	if _, err := w.AppendHeader(nil); err != ErrHeaderTooLarge {
		t.Fatalf("got %v", err)
	}
}

func TestVint(t *testing.T) {
	for _, tc := range []struct {
		v    uint64
		want []byte
	}{{0, []byte{0x80}}, {126, []byte{0xfe}}, {127, []byte{0x40, 0x7f}}, {16382, []byte{0x7f, 0xfe}}, {16383, []byte{0x20, 0x3f, 0xff}}} {
		if got := appendVint(nil, tc.v); !bytes.Equal(got, tc.want) {
			t.Errorf("vint(%d) = % x, want % x", tc.v, got, tc.want)
		}
	}
}
