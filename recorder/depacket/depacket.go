package depacket

import (
	"errors"
	"fmt"
	"strings"

	"github.com/custodian/custodian/recorder/jitter"
)

// Codec identifies a supported payload format.
type Codec uint8

// Supported codecs.
const (
	Opus Codec = iota + 1
	VP8
	VP9
	AV1
	H264
)

// String returns the codec's name as in an SDP rtpmap.
func (c Codec) String() string {
	switch c {
	case Opus:
		return "opus"
	case VP8:
		return "VP8"
	case VP9:
		return "VP9"
	case AV1:
		return "AV1"
	case H264:
		return "H264"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// Video reports whether c is a video codec.
func (c Codec) Video() bool { return c >= VP8 }

// ErrUnsupportedCodec is returned by ParseMimeType for a codec the recorder
// cannot record.
var ErrUnsupportedCodec = errors.New("depacket: unsupported codec")

// ParseMimeType maps a WebRTC codec mime type ("audio/opus", "video/VP8",
// case-insensitive) to a Codec.
func ParseMimeType(mime string) (Codec, error) {
	switch strings.ToLower(mime) {
	case "audio/opus":
		return Opus, nil
	case "video/vp8":
		return VP8, nil
	case "video/vp9":
		return VP9, nil
	case "video/av1":
		return AV1, nil
	case "video/h264":
		return H264, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnsupportedCodec, mime)
}

// ErrInvalid is returned (wrapped) for a packet whose payload cannot be
// parsed; the pipeline counts it as dropped_invalid.
var ErrInvalid = errors.New("depacket: invalid payload")

// Frame is one complete media frame. Data is valid until the next Push.
type Frame struct {
	Data      []byte
	Timestamp uint32 // RTP timestamp
	Keyframe  bool
	// Arrival is when the frame's first packet arrived (ns, session clock).
	Arrival int64
	// Packets is the number of RTP packets the frame came in.
	Packets int
	// Width and Height are set on keyframes whose headers carry them.
	Width, Height int
}

// Stats are a depacketizer's counters.
type Stats struct {
	Frames          uint64 // frames handed out
	FramesDiscarded uint64 // incomplete frames, or frames while waiting for a keyframe
	Invalid         uint64 // packets with unparsable payloads
}

// Depacketizer assembles the frames of one track. It is not safe for
// concurrent use.
type Depacketizer interface {
	// Push adds the next packet in sequence order and returns the frame
	// it completes, if any. An error wrapping ErrInvalid means the packet
	// was dropped.
	Push(p *jitter.Packet) (*Frame, error)
	// NeedKeyframe reports that the depacketizer discards frames until
	// the next keyframe (at the start and after loss).
	NeedKeyframe() bool
	// CodecPrivate returns the codec configuration record the container
	// needs (avcC for H.264, av1C for AV1) once a keyframe has supplied
	// it, and nil otherwise.
	CodecPrivate() []byte
	Stats() Stats
}

// New returns a depacketizer for codec c.
func New(c Codec) (Depacketizer, error) {
	switch c {
	case Opus:
		return &opusDepacketizer{}, nil
	case VP8:
		return newVideo(&vp8Format{}), nil
	case VP9:
		return newVideo(&vp9Format{}), nil
	case AV1:
		return newVideo(&av1Format{}), nil
	case H264:
		return newVideo(&h264Format{}), nil
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedCodec, c)
}
