package depacket

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/custodian/custodian/recorder/jitter"
	"github.com/pion/rtp/codecs"
)

// send packetizes frames with pion's payloader and feeds the packets in
// order to a new depacketizer, dropping the packets whose index is in
// drop. It returns the frames that came out.
func send(t *testing.T, c Codec, pl mediatest.Payloader, frames [][]byte, drop map[int]bool) ([]Frame, Depacketizer) {
	t.Helper()
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	s := mediatest.Stream{Payloader: pl, ClockRate: 90000, SSRC: 1, FirstSeq: 65500, FirstTS: 4294960000, MTU: 1200}
	pkts, _ := s.Packets(mediatest.Timed(frames, 33*time.Millisecond, time.Duration(len(frames))*33*time.Millisecond))
	var out []Frame
	var lost uint64
	for i, sp := range pkts {
		if drop[i] || sp.Lost {
			lost++
			continue
		}
		p := &jitter.Packet{
			SequenceNumber: sp.Packet.SequenceNumber,
			Timestamp:      sp.Packet.Timestamp,
			Marker:         sp.Packet.Marker,
			Payload:        sp.Packet.Payload,
			LostBefore:     lost,
		}
		lost = 0
		f, err := d.Push(p)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if f != nil {
			g := *f
			g.Data = bytes.Clone(f.Data)
			out = append(out, g)
		}
	}
	return out, d
}

func TestVP8RoundTrip(t *testing.T) {
	frames := mediatest.IVF(t, "vp8.ivf")[:45]
	out, d := send(t, VP8, &codecs.VP8Payloader{EnablePictureID: true}, frames, nil)
	if len(out) != len(frames) {
		t.Fatalf("%d frames out, want %d", len(out), len(frames))
	}
	for i := range out {
		if !bytes.Equal(out[i].Data, frames[i]) {
			t.Fatalf("frame %d differs", i)
		}
		if want := frames[i][0]&1 == 0; out[i].Keyframe != want {
			t.Fatalf("frame %d keyframe=%v", i, out[i].Keyframe)
		}
	}
	if out[0].Width != 640 || out[0].Height != 360 {
		t.Fatalf("keyframe size %dx%d", out[0].Width, out[0].Height)
	}
	if d.NeedKeyframe() {
		t.Fatal("still waiting for a keyframe")
	}
}

// TestVP8LossWaitsForKeyframe drops one packet of frame 3: frames from
// there up to the next keyframe (frame 30) are discarded.
func TestVP8LossWaitsForKeyframe(t *testing.T) {
	frames := mediatest.IVF(t, "vp8.ivf")[:45]
	pl := &codecs.VP8Payloader{EnablePictureID: true}
	// Find the index of frame 3's first packet.
	idx := 0
	for i := range 3 {
		idx += len(pl.Payload(1188, frames[i]))
	}
	pl = &codecs.VP8Payloader{EnablePictureID: true}
	out, d := send(t, VP8, pl, frames, map[int]bool{idx + 1: true})
	if len(out) != 3+15 {
		t.Fatalf("%d frames out, want 18", len(out))
	}
	if !out[3].Keyframe || !bytes.Equal(out[3].Data, frames[30]) {
		t.Fatal("frame after loss is not the next keyframe")
	}
	if st := d.Stats(); st.FramesDiscarded != 27 {
		t.Fatalf("discarded %d, want 27", st.FramesDiscarded)
	}
}

func TestVP9RoundTrip(t *testing.T) {
	frames := mediatest.IVF(t, "vp9.ivf")
	out, _ := send(t, VP9, &codecs.VP9Payloader{}, frames, nil)
	if len(out) != len(frames) {
		t.Fatalf("%d frames out, want %d", len(out), len(frames))
	}
	keys := 0
	for i := range out {
		if !bytes.Equal(out[i].Data, frames[i]) {
			t.Fatalf("frame %d differs", i)
		}
		if out[i].Keyframe {
			keys++
		}
	}
	if !out[0].Keyframe || out[0].Width != 320 || out[0].Height != 240 || keys != 2 {
		t.Fatalf("first %+v keys %d", out[0].Keyframe, keys)
	}
}

// stripTD removes temporal delimiter OBUs from a low-overhead AV1 frame.
func stripTD(t *testing.T, b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		h := 1
		if b[0]&4 != 0 {
			h = 2
		}
		n, l, err := leb128(b[h:])
		if err != nil {
			t.Fatal(err)
		}
		end := h + l + int(n)
		if b[0]>>3&0xf != obuTemporalDelimiter {
			out = append(out, b[:end]...)
		}
		b = b[end:]
	}
	return out
}

func TestAV1RoundTrip(t *testing.T) {
	frames := mediatest.IVF(t, "av1.ivf")
	out, d := send(t, AV1, &codecs.AV1Payloader{}, frames, nil)
	if len(out) != len(frames) {
		t.Fatalf("%d frames out, want %d", len(out), len(frames))
	}
	for i := range out {
		if want := stripTD(t, frames[i]); !bytes.Equal(out[i].Data, want) {
			t.Fatalf("frame %d differs: %d vs %d bytes", i, len(out[i].Data), len(want))
		}
	}
	if !out[0].Keyframe || out[0].Width != 320 || out[0].Height != 240 {
		t.Fatalf("first frame key=%v %dx%d", out[0].Keyframe, out[0].Width, out[0].Height)
	}
	cp := d.CodecPrivate()
	if len(cp) < 8 || cp[0] != 0x81 || cp[2]&0x0c != 0x0c { // 4:2:0
		t.Fatalf("av1C % x", cp)
	}
}

func TestH264RoundTrip(t *testing.T) {
	aus := mediatest.H264AccessUnits(t)
	out, d := send(t, H264, &codecs.H264Payloader{}, aus, nil)
	if len(out) != len(aus) {
		t.Fatalf("%d frames out, want %d", len(out), len(aus))
	}
	for i := range out {
		var want []byte
		for _, nal := range mediatest.SplitAnnexB(aus[i]) {
			if typ := nal[0] & 0x1f; typ == 9 || typ == 12 {
				continue // pion's payloader drops AUD and filler
			}
			want = binary.BigEndian.AppendUint32(want, uint32(len(nal)))
			want = append(want, nal...)
		}
		if !bytes.Equal(out[i].Data, want) {
			t.Fatalf("access unit %d differs", i)
		}
	}
	if !out[0].Keyframe || out[0].Width != 320 || out[0].Height != 240 {
		t.Fatalf("first AU key=%v %dx%d", out[0].Keyframe, out[0].Width, out[0].Height)
	}
	if cp := d.CodecPrivate(); len(cp) < 10 || cp[0] != 1 || cp[4] != 0xff {
		t.Fatalf("avcC % x", cp)
	}
}

func TestOpus(t *testing.T) {
	pkts := mediatest.OpusPackets(t)
	d, _ := New(Opus)
	for i, p := range pkts[:100] {
		f, err := d.Push(&jitter.Packet{Payload: p, Timestamp: uint32(i * 960)})
		if err != nil || f == nil || !bytes.Equal(f.Data, p) {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if _, err := d.Push(&jitter.Packet{Payload: []byte{0x03}}); err == nil {
		t.Fatal("code-3 packet without a count byte accepted")
	}
	if _, err := d.Push(&jitter.Packet{}); err == nil {
		t.Fatal("empty packet accepted")
	}
}

func TestParseMimeType(t *testing.T) {
	for mime, want := range map[string]Codec{"audio/opus": Opus, "video/VP8": VP8, "video/vp9": VP9, "video/AV1": AV1, "video/H264": H264} {
		if c, err := ParseMimeType(mime); err != nil || c != want {
			t.Errorf("%s: %v %v", mime, c, err)
		}
	}
	if _, err := ParseMimeType("audio/PCMU"); err == nil {
		t.Error("PCMU accepted")
	}
}

// TestH264LossInFUA drops a middle fragment of the first IDR: that access
// unit is discarded, the depacketizer waits for the next IDR (frame 15).
func TestH264LossInFUA(t *testing.T) {
	aus := mediatest.H264AccessUnits(t)
	pl := &codecs.H264Payloader{}
	first := len(pl.Payload(1188, aus[0]))
	if first < 3 {
		t.Skip("first access unit too small to fragment")
	}
	out, d := send(t, H264, &codecs.H264Payloader{}, aus, map[int]bool{first / 2: true})
	if len(out) == 0 || !out[0].Keyframe || len(out) != len(aus)-15 {
		t.Fatalf("%d frames out (first key=%v), want %d", len(out), len(out) > 0 && out[0].Keyframe, len(aus)-15)
	}
	if !d.NeedKeyframe() && d.Stats().FramesDiscarded != 15 {
		t.Fatalf("discarded %d", d.Stats().FramesDiscarded)
	}
}
