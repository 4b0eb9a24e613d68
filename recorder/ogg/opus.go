package ogg

import (
	"encoding/binary"
	"errors"
)

// SampleRate is Opus's granule rate: granule positions count 48 kHz samples
// whatever the input rate.
const SampleRate = 48000

// OpusHead returns the identification header packet (RFC 7845 section 5.1)
// for a mono or stereo stream (mapping family 0) with the given pre-skip
// and original input rate.
func OpusHead(channels int, preSkip uint16, inputRate uint32) []byte {
	if channels < 1 {
		channels = 1
	}
	if channels > 2 {
		channels = 2
	}
	p := make([]byte, 19)
	copy(p, "OpusHead")
	p[8] = 1 // version
	p[9] = byte(channels)
	binary.LittleEndian.PutUint16(p[10:], preSkip)
	binary.LittleEndian.PutUint32(p[12:], inputRate)
	// output gain 0, mapping family 0
	return p
}

// OpusTags returns the comment header packet (RFC 7845 section 5.2) with
// the given vendor string and comments ("KEY=value").
func OpusTags(vendor string, comments ...string) []byte {
	p := make([]byte, 0, 16+len(vendor)+16*len(comments))
	p = append(p, "OpusTags"...)
	p = binary.LittleEndian.AppendUint32(p, uint32(len(vendor)))
	p = append(p, vendor...)
	p = binary.LittleEndian.AppendUint32(p, uint32(len(comments)))
	for _, c := range comments {
		p = binary.LittleEndian.AppendUint32(p, uint32(len(c)))
		p = append(p, c...)
	}
	return p
}

// Head is a parsed OpusHead packet.
type Head struct {
	Version   uint8
	Channels  uint8
	PreSkip   uint16
	InputRate uint32
	Gain      int16
	Mapping   uint8
}

// ErrNotOpusHead is returned by ParseOpusHead for a packet that is not a
// valid identification header.
var ErrNotOpusHead = errors.New("ogg: not an OpusHead packet")

// ParseOpusHead parses an identification header packet.
func ParseOpusHead(p []byte) (Head, error) {
	if len(p) < 19 || string(p[:8]) != "OpusHead" {
		return Head{}, ErrNotOpusHead
	}
	h := Head{
		Version:   p[8],
		Channels:  p[9],
		PreSkip:   binary.LittleEndian.Uint16(p[10:]),
		InputRate: binary.LittleEndian.Uint32(p[12:]),
		Gain:      int16(binary.LittleEndian.Uint16(p[16:])),
		Mapping:   p[18],
	}
	if h.Version>>4 != 0 || h.Channels == 0 {
		return Head{}, ErrNotOpusHead
	}
	return h, nil
}

// frameSamples is the frame size in 48 kHz samples of each of the 32 TOC
// configurations (RFC 6716 section 3.1).
var frameSamples = [32]int{
	480, 960, 1920, 2880, // SILK NB 10, 20, 40, 60 ms
	480, 960, 1920, 2880, // SILK MB
	480, 960, 1920, 2880, // SILK WB
	480, 960, // Hybrid SWB 10, 20
	480, 960, // Hybrid FB
	120, 240, 480, 960, // CELT NB 2.5, 5, 10, 20
	120, 240, 480, 960, // CELT WB
	120, 240, 480, 960, // CELT SWB
	120, 240, 480, 960, // CELT FB
}

// ErrBadOpusPacket is returned for an Opus packet whose TOC is malformed.
var ErrBadOpusPacket = errors.New("ogg: malformed Opus packet")

// PacketSamples returns the duration of an Opus packet in 48 kHz samples
// from its TOC byte (RFC 6716 section 3.2), at most 120 ms (5760).
func PacketSamples(p []byte) (int, error) {
	if len(p) < 1 {
		return 0, ErrBadOpusPacket
	}
	fs := frameSamples[p[0]>>3]
	var frames int
	switch p[0] & 3 {
	case 0:
		frames = 1
	case 1, 2:
		frames = 2
	default:
		if len(p) < 2 {
			return 0, ErrBadOpusPacket
		}
		frames = int(p[1] & 0x3F)
	}
	n := fs * frames
	if n == 0 || n > 5760 {
		return 0, ErrBadOpusPacket
	}
	return n, nil
}

// silenceFrames are single-frame mono CELT fullband packets that decode to
// digital silence: the TOC byte, then the range coder bytes 0xFF 0xFE,
// which code the CELT silence flag. Indexed by duration: 2.5, 5, 10, 20 ms.
var silenceFrames = [4][3]byte{
	{28 << 3, 0xFF, 0xFE},
	{29 << 3, 0xFF, 0xFE},
	{30 << 3, 0xFF, 0xFE},
	{31 << 3, 0xFF, 0xFE},
}

// SilenceSamples lists the durations (48 kHz samples) SilenceFrame offers,
// longest first.
var SilenceSamples = [4]int{960, 480, 240, 120}

// SilenceFrame returns a 3-byte Opus packet that decodes to samples (one
// of SilenceSamples) of silence, or nil for any other duration. The slice
// is shared: do not modify it.
func SilenceFrame(samples int) []byte {
	switch samples {
	case 960:
		return silenceFrames[3][:]
	case 480:
		return silenceFrames[2][:]
	case 240:
		return silenceFrames[1][:]
	case 120:
		return silenceFrames[0][:]
	}
	return nil
}
