package depacket

import (
	"fmt"

	"github.com/custodian/custodian/recorder/jitter"
)

// maxFrame bounds one assembled video frame (a 4K keyframe is well below).
const maxFrame = 8 << 20

// format is the codec-specific half of video frame assembly.
type format interface {
	// fragment parses one packet's payload. start reports that the packet
	// begins a frame. It appends the packet's media bytes to frame and
	// returns the extended slice.
	fragment(frame []byte, payload []byte, first bool) (out []byte, start bool, err error)
	// finish completes a frame: it may rewrite data (returned), and
	// reports whether it is a keyframe and its dimensions if known.
	finish(data []byte) (out []byte, key bool, w, h int)
	// reset drops any state of a partly assembled frame.
	reset()
	codecPrivate() []byte
}

// video assembles frames by RTP timestamp and marker bit.
type video struct {
	f format

	buf     []byte
	ts      uint32
	arrival int64
	packets int
	active  bool // a frame is being assembled
	broken  bool // the frame being assembled lost a packet
	waitKey bool
	frame   Frame
	stats   Stats
}

func newVideo(f format) *video { return &video{f: f, waitKey: true} }

func (v *video) NeedKeyframe() bool   { return v.waitKey }
func (v *video) CodecPrivate() []byte { return v.f.codecPrivate() }
func (v *video) Stats() Stats         { return v.stats }

func (v *video) discard() {
	if v.active {
		v.stats.FramesDiscarded++
	}
	v.active, v.broken = false, false
	v.buf = v.buf[:0]
	v.f.reset()
}

func (v *video) Push(p *jitter.Packet) (*Frame, error) {
	if p.LostBefore > 0 {
		// Whatever was lost may have been part of this frame or a
		// reference frame: wait for a keyframe.
		v.waitKey = true
		if v.active {
			v.broken = true
		}
	}
	if v.active && p.Timestamp != v.ts {
		// The previous frame never saw its marker packet.
		v.discard()
	}
	first := !v.active
	if first {
		v.buf = v.buf[:0]
		v.ts, v.arrival, v.packets = p.Timestamp, p.Arrival, 0
		v.active, v.broken = true, false
	}
	if v.broken && !first {
		// The frame already lost a packet: skip to its end.
		v.packets++
		if p.Marker {
			v.discard()
		}
		return nil, nil
	}
	out, start, err := v.f.fragment(v.buf, p.Payload, first)
	if err != nil {
		v.broken = true
		if p.Marker {
			v.discard()
		}
		if p.LostBefore > 0 {
			// A fragment whose beginning was lost: not malformed.
			return nil, nil
		}
		v.stats.Invalid++
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if first && !start {
		// The frame's beginning was lost.
		v.broken = true
	}
	if len(out) > maxFrame {
		v.broken = true
		out = out[:0]
	}
	v.buf = out
	v.packets++
	if !p.Marker {
		return nil, nil
	}
	if v.broken {
		v.discard()
		return nil, nil
	}
	data, key, w, h := v.f.finish(v.buf)
	v.active = false
	v.f.reset()
	if v.waitKey && !key {
		v.stats.FramesDiscarded++
		return nil, nil
	}
	if key {
		v.waitKey = false
	}
	v.buf = data
	v.stats.Frames++
	v.frame = Frame{Data: data, Timestamp: v.ts, Keyframe: key, Arrival: v.arrival, Packets: v.packets, Width: w, Height: h}
	return &v.frame, nil
}
