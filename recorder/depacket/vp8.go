package depacket

import (
	"errors"

	"github.com/pion/rtp/codecs"
)

// vp8Format: RFC 7741.
type vp8Format struct {
	pkt codecs.VP8Packet
}

func (f *vp8Format) fragment(frame, payload []byte, _ bool) ([]byte, bool, error) {
	b, err := f.pkt.Unmarshal(payload)
	if err != nil {
		return frame, false, err
	}
	if len(b) == 0 {
		return frame, false, errors.New("vp8: empty payload")
	}
	start := f.pkt.S == 1 && f.pkt.PID == 0
	return append(frame, b...), start, nil
}

func (f *vp8Format) finish(data []byte) ([]byte, bool, int, int) {
	if len(data) < 3 || data[0]&1 != 0 {
		return data, false, 0, 0
	}
	// Keyframe: 3-byte frame tag, start code 9d 01 2a, 14-bit sizes.
	if len(data) >= 10 && data[3] == 0x9d && data[4] == 0x01 && data[5] == 0x2a {
		w := int(uint16(data[6])|uint16(data[7])<<8) & 0x3fff
		h := int(uint16(data[8])|uint16(data[9])<<8) & 0x3fff
		return data, true, w, h
	}
	return data, false, 0, 0
}

func (f *vp8Format) reset()               {}
func (f *vp8Format) codecPrivate() []byte { return nil }
