package ogg

import (
	"bytes"
	"io"
	"testing"
)

func sampleStream() []byte {
	w := NewWriter(7)
	var out []byte
	_ = w.WritePacket(OpusHead(2, 312, 48000), 0)
	out = w.Flush(out, false)
	_ = w.WritePacket(OpusTags("x", "A=b"), 0)
	out = w.Flush(out, false)
	for i := range 20 {
		_ = w.WritePacket(bytes.Repeat([]byte{byte(i)}, i*30), int64(i+1)*960)
	}
	return w.Flush(out, true)
}

// FuzzOggReader feeds arbitrary bytes to the Reader: it must not panic,
// must not return a packet over its limit, and must stop.
func FuzzOggReader(f *testing.F) {
	f.Add(sampleStream())
	f.Add([]byte("OggS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 4096
		r := NewReader(bytes.NewReader(b), limit)
		for range 10000 {
			p, err := r.NextPacket()
			if err != nil {
				return
			}
			if len(p.Data) > limit {
				t.Fatalf("packet of %d bytes over the limit", len(p.Data))
			}
		}
	})
}

// FuzzOggRoundTrip writes packets derived from the input and reads them
// back unchanged.
func FuzzOggRoundTrip(f *testing.F) {
	f.Add([]byte{3, 0, 255, 1, 2}, uint16(300))
	f.Fuzz(func(t *testing.T, b []byte, big uint16) {
		var pkts [][]byte
		for i, x := range b {
			n := int(x)
			if i == 0 {
				n = int(big) // one packet may span pages
			}
			pkts = append(pkts, bytes.Repeat([]byte{byte(i)}, n))
		}
		w := NewWriter(1)
		var out []byte
		for i, p := range pkts {
			if err := w.WritePacket(p, int64(i)); err != nil {
				t.Fatal(err)
			}
			out = w.AppendPages(out)
		}
		out = w.Flush(out, true)
		r := NewReader(bytes.NewReader(out), 0)
		for i, want := range pkts {
			p, err := r.NextPacket()
			if err != nil {
				t.Fatalf("packet %d: %v", i, err)
			}
			if !bytes.Equal(p.Data, want) {
				t.Fatalf("packet %d differs", i)
			}
		}
		if _, err := r.NextPacket(); err != io.EOF {
			t.Fatalf("after last packet: %v", err)
		}
	})
}
