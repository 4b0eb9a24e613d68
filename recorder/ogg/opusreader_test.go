package ogg

import (
	"bytes"
	"io"
	"testing"
)

func TestOpusReader(t *testing.T) {
	w := NewWriter(3)
	var out []byte
	_ = w.WritePacket(OpusHead(2, 0, 48000), 0)
	out = w.Flush(out, false)
	_ = w.WritePacket(OpusTags("v", "K=v"), 0)
	out = w.Flush(out, false)
	var g int64
	for _, n := range []int{960, 480, 960, 120} {
		g += int64(n)
		_ = w.WritePacket(SilenceFrame(n), g)
	}
	out = w.Flush(out, true)
	r, err := NewOpusReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.Head.Channels != 2 || !bytes.Contains(r.Tags, []byte("K=v")) {
		t.Fatalf("head %+v tags %q", r.Head, r.Tags)
	}
	var pos []int64
	for {
		_, p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pos = append(pos, p)
	}
	if want := []int64{0, 960, 1440, 2400}; len(pos) != 4 || pos[3] != want[3] || pos[1] != want[1] {
		t.Fatalf("positions %v, want %v", pos, want)
	}
	if _, err := NewOpusReader(bytes.NewReader(out[:20])); err == nil {
		t.Fatal("truncated file accepted")
	}
}
