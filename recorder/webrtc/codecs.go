package webrtc

import (
	"strings"

	pion "github.com/pion/webrtc/v4"
)

// Media kinds as they appear on SDP m-lines.
const (
	KindAudio = "audio"
	KindVideo = "video"
)

// Codec is one codec the recorder negotiates.
type Codec struct {
	Kind        string // KindAudio or KindVideo
	MimeType    string // e.g. "audio/opus", "video/VP8"
	ClockRate   uint32
	Channels    uint16
	Fmtp        string
	PayloadType uint8 // preferred payload type in our own offers (answers use the offer's)
}

// supportedCodecs is what the recorder can mux: Opus to Ogg or WebM; VP8,
// VP9 and AV1 to WebM; H.264 to Matroska. No RTX, RED, FEC or audio codecs
// other than Opus: retransmissions arrive on the media SSRC (NACK without
// RTX), which the jitter buffer handles like any late packet.
var supportedCodecs = []Codec{
	{KindAudio, pion.MimeTypeOpus, 48000, 2, "minptime=10;useinbandfec=1", 111},
	{KindVideo, pion.MimeTypeVP8, 90000, 0, "", 96},
	{KindVideo, pion.MimeTypeVP9, 90000, 0, "profile-id=0", 98},
	{KindVideo, pion.MimeTypeVP9, 90000, 0, "profile-id=2", 100},
	{KindVideo, pion.MimeTypeAV1, 90000, 0, "", 45},
	{KindVideo, pion.MimeTypeH264, 90000, 0, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", 102},
	{KindVideo, pion.MimeTypeH264, 90000, 0, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 106},
	{KindVideo, pion.MimeTypeH264, 90000, 0, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f", 127},
	{KindVideo, pion.MimeTypeH264, 90000, 0, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f", 112},
	{KindVideo, pion.MimeTypeH264, 90000, 0, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f", 108},
}

// SupportedCodecs returns the codecs NewAPI registers, audio first.
func SupportedCodecs() []Codec {
	return append([]Codec(nil), supportedCodecs...)
}

// supportedCodec reports whether an offered rtpmap (encoding name and clock
// rate) is one we register. Like pion's codec matching, parameters (fmtp)
// do not exclude a codec: pion accepts a partial match by MIME type and
// clock rate.
func supportedCodec(kind, name string, clockRate uint32) (mime string, ok bool) {
	for _, c := range supportedCodecs {
		if c.Kind == kind && strings.EqualFold(c.MimeType, kind+"/"+name) && c.ClockRate == clockRate {
			return c.MimeType, true
		}
	}
	return "", false
}
