package audio

import (
	"encoding/binary"
	"math"
)

// Opus constants at the 48 kHz reference rate and at the output rate.
const (
	opusRate       = 48000
	outRate        = 16000
	rateRatio      = opusRate / outRate // 3
	maxPacket48    = 5760               // 120 ms, the longest Opus packet
	maxPacketOut   = maxPacket48 / rateRatio
	granule48PerMS = opusRate / 1000
)

// packetSamples48 returns the duration of an Opus packet in 48 kHz samples
// from its TOC byte and frame count (RFC 6716 section 3.1 and 3.2).
func packetSamples48(pkt []byte) (int, error) {
	if len(pkt) == 0 {
		return 0, corruptf("empty opus packet")
	}
	toc := pkt[0]
	cfg := int(toc >> 3)
	var frame int // in 48 kHz samples
	switch {
	case cfg < 12: // SILK-only: 10, 20, 40, 60 ms
		frame = [4]int{480, 960, 1920, 2880}[cfg&3]
	case cfg < 16: // hybrid: 10, 20 ms
		frame = [2]int{480, 960}[cfg&1]
	default: // CELT-only: 2.5, 5, 10, 20 ms
		frame = [4]int{120, 240, 480, 960}[cfg&3]
	}
	var frames int
	switch toc & 3 {
	case 0:
		frames = 1
	case 1, 2:
		frames = 2
	default:
		if len(pkt) < 2 {
			return 0, corruptf("opus code 3 packet without frame count")
		}
		frames = int(pkt[1] & 0x3f)
		if frames == 0 {
			return 0, corruptf("opus code 3 packet with zero frames")
		}
	}
	n := frames * frame
	if n > maxPacket48 {
		return 0, corruptf("opus packet of %d samples exceeds 120 ms", n)
	}
	return n, nil
}

// opusHead is the identification header of an Opus stream (RFC 7845
// section 5.1), used by Ogg and as WebM CodecPrivate.
type opusHead struct {
	Channels int
	PreSkip  int // 48 kHz samples to drop at the start
	GainQ8   int16
	Family   int
}

func parseOpusHead(b []byte) (opusHead, error) {
	if len(b) < 19 || string(b[:8]) != "OpusHead" {
		return opusHead{}, corruptf("missing OpusHead")
	}
	if b[8]>>4 != 0 { // major version must be 0
		return opusHead{}, unsupportedf("OpusHead version %d", b[8])
	}
	h := opusHead{
		Channels: int(b[9]),
		PreSkip:  int(binary.LittleEndian.Uint16(b[10:12])),
		GainQ8:   int16(binary.LittleEndian.Uint16(b[16:18])),
		Family:   int(b[18]),
	}
	switch {
	case h.Channels == 0:
		return opusHead{}, corruptf("OpusHead with zero channels")
	case h.Channels > 2:
		return opusHead{}, unsupportedf("opus with %d channels", h.Channels)
	case h.Family != 0 && h.Family != 1:
		return opusHead{}, unsupportedf("opus channel mapping family %d", h.Family)
	}
	if h.Family == 1 {
		// Family 1 with one or two channels is a single coupled or
		// uncoupled stream; check the table says so.
		if len(b) < 21+h.Channels {
			return opusHead{}, corruptf("OpusHead mapping table too short")
		}
		if b[19] != 1 {
			return opusHead{}, unsupportedf("opus with %d streams", b[19])
		}
	}
	return h, nil
}

// gain returns the linear output gain of the header (1 for 0 dB).
func (h opusHead) gain() float64 {
	return math.Pow(10, float64(h.GainQ8)/(20*256))
}

// decoder decodes one Opus stream to 16 kHz mono.
type decoder interface {
	// decode decodes one packet into out (at least maxPacketOut long) and
	// returns the number of samples written.
	decode(pkt []byte, out []int16) (int, error)
	// conceal fills out (its length is the gap, a multiple of 40 samples
	// and at most maxPacketOut) for audio lost just before next; next may
	// be nil. Decoders without concealment write silence.
	conceal(next []byte, out []int16) error
	// close releases the decoder.
	close()
}

// newDecoderFunc builds the default decoder for this build: libopus with
// cgo, pion/opus without.
type newDecoderFunc func() (decoder, error)
