package depacket

import (
	"errors"

	"github.com/pion/rtp/codecs"
	"github.com/pion/rtp/codecs/vp9"
)

// vp9Format: the VP9 RTP payload format (RFC 9628). Spatial layers of one
// picture are joined into a superframe, as WebM expects.
type vp9Format struct {
	pkt    codecs.VP9Packet
	hdr    vp9.Header
	ends   []int // end offset of each layer frame in the picture
	inLay  bool  // a layer frame is open (B seen, E not yet)
	ssW    int
	ssH    int
	keyPic bool
}

func (f *vp9Format) fragment(frame, payload []byte, first bool) ([]byte, bool, error) {
	b, err := f.pkt.Unmarshal(payload)
	if err != nil {
		return frame, false, err
	}
	if len(b) == 0 {
		return frame, false, errors.New("vp9: empty payload")
	}
	start := false
	if f.pkt.B {
		if f.inLay {
			return frame, false, errors.New("vp9: layer frame begins twice")
		}
		f.inLay = true
		if first {
			start = true
			f.keyPic = !f.pkt.P
		}
	} else if !f.inLay {
		return frame, false, errors.New("vp9: continuation without a beginning")
	}
	if f.pkt.V && len(f.pkt.Width) > 0 {
		f.ssW, f.ssH = int(f.pkt.Width[len(f.pkt.Width)-1]), int(f.pkt.Height[len(f.pkt.Height)-1])
	}
	frame = append(frame, b...)
	if f.pkt.E {
		f.inLay = false
		f.ends = append(f.ends, len(frame))
	}
	return frame, start, nil
}

func (f *vp9Format) finish(data []byte) ([]byte, bool, int, int) {
	if f.inLay && len(f.ends) == 0 {
		// The sender did not set E: the marker ends the only layer.
		f.ends = append(f.ends, len(data))
	}
	if len(f.ends) > 1 {
		data = appendSuperframeIndex(data, f.ends)
	}
	key := f.keyPic
	w, h := 0, 0
	if key {
		if err := f.hdr.Unmarshal(data); err == nil && !f.hdr.NonKeyFrame && f.hdr.FrameSize != nil {
			w, h = int(f.hdr.Width()), int(f.hdr.Height())
		} else if f.ssW > 0 {
			w, h = f.ssW, f.ssH
		}
	}
	return data, key, w, h
}

// appendSuperframeIndex adds the VP9 superframe index (VP9 bitstream spec
// annex B) describing the layer frames ending at ends.
func appendSuperframeIndex(data []byte, ends []int) []byte {
	if len(ends) > 8 {
		ends = ends[len(ends)-8:]
	}
	maxSize, prev := 0, 0
	for _, e := range ends {
		maxSize = max(maxSize, e-prev)
		prev = e
	}
	mag := 1
	for maxSize>>(8*mag) != 0 && mag < 4 {
		mag++
	}
	marker := byte(0xc0 | (mag-1)<<3 | (len(ends) - 1))
	data = append(data, marker)
	prev = 0
	for _, e := range ends {
		sz := e - prev
		prev = e
		for i := range mag {
			data = append(data, byte(sz>>(8*i)))
		}
	}
	return append(data, marker)
}

func (f *vp9Format) reset() {
	f.ends = f.ends[:0]
	f.inLay = false
	f.keyPic = false
}

func (f *vp9Format) codecPrivate() []byte { return nil }
