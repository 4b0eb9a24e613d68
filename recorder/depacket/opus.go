package depacket

import (
	"fmt"

	"github.com/custodian/custodian/recorder/jitter"
	"github.com/custodian/custodian/recorder/ogg"
)

// opusDepacketizer: RFC 7587, one Opus packet per RTP packet.
type opusDepacketizer struct {
	frame Frame
	stats Stats
}

func (d *opusDepacketizer) Push(p *jitter.Packet) (*Frame, error) {
	if _, err := ogg.PacketSamples(p.Payload); err != nil {
		d.stats.Invalid++
		return nil, fmt.Errorf("%w: opus: %v", ErrInvalid, err)
	}
	d.frame = Frame{Data: p.Payload, Timestamp: p.Timestamp, Keyframe: true, Arrival: p.Arrival, Packets: 1}
	d.stats.Frames++
	return &d.frame, nil
}

func (d *opusDepacketizer) NeedKeyframe() bool   { return false }
func (d *opusDepacketizer) CodecPrivate() []byte { return nil }
func (d *opusDepacketizer) Stats() Stats         { return d.stats }
