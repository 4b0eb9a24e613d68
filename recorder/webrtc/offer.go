package webrtc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// MaxOfferBytes is the largest SDP offer accepted (WHIP answers 413 above it).
const MaxOfferBytes = 64 << 10

// Sentinel errors of ValidateOffer and ReadOffer. Each is wrapped in an
// *OfferError that names the offending line or media section.
var (
	// ErrOfferTooLarge: the body exceeds MaxOfferBytes (HTTP 413).
	ErrOfferTooLarge = errors.New("SDP offer larger than 64 KiB")
	// ErrMalformedSDP: the body does not parse as SDP (HTTP 400).
	ErrMalformedSDP = errors.New("malformed SDP")
	// ErrNoMedia: no audio or video media section that sends media (HTTP 400).
	ErrNoMedia = errors.New("offer has no audio or video to record")
	// ErrNoFingerprint: a media section lacks a DTLS fingerprint (HTTP 400).
	ErrNoFingerprint = errors.New("offer has no DTLS fingerprint")
	// ErrPlainRTP: a media section uses an unencrypted RTP profile (HTTP 400).
	ErrPlainRTP = errors.New("offer uses plain RTP; only DTLS-SRTP is accepted")
	// ErrNoICECredentials: ice-ufrag or ice-pwd is missing (HTTP 400).
	ErrNoICECredentials = errors.New("offer has no ICE credentials")
	// ErrUnsupportedCodecs: no offered codec is one the recorder supports
	// (HTTP 415).
	ErrUnsupportedCodecs = errors.New("offer has only unsupported codecs")
)

// OfferError is a problem with an SDP offer. Err is one of the sentinels
// above; Detail names what was wrong without quoting credentials.
type OfferError struct {
	Err    error
	Detail string
}

func (e *OfferError) Error() string {
	if e.Detail == "" {
		return "webrtc: " + e.Err.Error()
	}
	return "webrtc: " + e.Err.Error() + ": " + e.Detail
}

func (e *OfferError) Unwrap() error { return e.Err }

// HTTPStatus is the status a WHIP handler answers with: 413 for
// ErrOfferTooLarge, 415 for ErrUnsupportedCodecs, 400 otherwise.
func (e *OfferError) HTTPStatus() int {
	switch {
	case errors.Is(e.Err, ErrOfferTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(e.Err, ErrUnsupportedCodecs):
		return http.StatusUnsupportedMediaType
	}
	return http.StatusBadRequest
}

// Code is a short snake_case name of the problem, for problem+json and logs.
func (e *OfferError) Code() string {
	switch e.Err {
	case ErrOfferTooLarge:
		return "sdp_too_large"
	case ErrMalformedSDP:
		return "sdp_malformed"
	case ErrNoMedia:
		return "sdp_no_media"
	case ErrNoFingerprint:
		return "sdp_no_fingerprint"
	case ErrPlainRTP:
		return "sdp_plain_rtp"
	case ErrNoICECredentials:
		return "sdp_no_ice_credentials"
	case ErrUnsupportedCodecs:
		return "sdp_unsupported_codecs"
	}
	return "sdp_invalid"
}

func offerErr(err error, format string, args ...any) *OfferError {
	return &OfferError{Err: err, Detail: fmt.Sprintf(format, args...)}
}

// ReadOffer reads an SDP body of at most MaxOfferBytes from r. A longer body
// is an *OfferError wrapping ErrOfferTooLarge; nothing past the limit is read.
func ReadOffer(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxOfferBytes+1))
	if err != nil {
		return nil, fmt.Errorf("webrtc: read offer: %w", err)
	}
	if len(b) > MaxOfferBytes {
		return nil, offerErr(ErrOfferTooLarge, "limit is %d bytes", MaxOfferBytes)
	}
	return b, nil
}

// Offer summarises a valid offer for the WHIP handler. It holds no ICE
// credentials, so it can be logged.
type Offer struct {
	Media []MediaSection
	// HasICEUfrag is true when every media section has an ice-ufrag
	// (directly or at session level); ValidateOffer requires it.
	HasICEUfrag bool
	// ICELite is true when the offerer is an ICE-lite agent.
	ICELite bool
	// Candidates is the number of candidates in the offer (0 when the
	// client trickles them or sends them later).
	Candidates int
}

// MediaSection is one m-line of an offer.
type MediaSection struct {
	Index     int    // position among the m-lines
	Kind      string // "audio", "video", or another media type
	MID       string
	Direction string // sendrecv, sendonly, recvonly or inactive
	Rejected  bool   // port 0
	// Codecs are the offered encodings in offer order ("audio/opus",
	// "video/VP8", "video/rtx", ...), one entry per payload type.
	Codecs []string
	// Supported are the offered codecs the recorder supports (MIME types as
	// in SupportedCodecs, deduplicated, offer order).
	Supported []string
}

// Sends reports whether the media section carries media to the recorder.
func (m MediaSection) Sends() bool {
	return !m.Rejected && (m.Direction == "sendrecv" || m.Direction == "sendonly")
}

// Kinds returns the kinds of the media sections that send media to the
// recorder with a supported codec, in m-line order, deduplicated.
func (o Offer) Kinds() []string {
	var kinds []string
	for _, m := range o.Media {
		if m.Sends() && len(m.Supported) > 0 && !contains(kinds, m.Kind) {
			kinds = append(kinds, m.Kind)
		}
	}
	return kinds
}

// HasVideo reports whether a video section sends a supported codec.
func (o Offer) HasVideo() bool { return contains(o.Kinds(), KindVideo) }

// ValidateOffer checks a WHIP offer before it reaches pion and returns a
// summary. It requires: at most MaxOfferBytes; valid SDP; at least one audio
// or video section that sends media; a DTLS fingerprint and a secure RTP
// profile (UDP/TLS/RTP/SAVPF) on every audio and video section; ICE
// credentials; and at least one supported codec among the sending sections.
// Errors are *OfferError.
func ValidateOffer(raw []byte) (Offer, error) {
	if len(raw) > MaxOfferBytes {
		return Offer{}, offerErr(ErrOfferTooLarge, "%d bytes, limit is %d", len(raw), MaxOfferBytes)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return Offer{}, offerErr(ErrMalformedSDP, "empty body")
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(raw)); err != nil {
		return Offer{}, offerErr(ErrMalformedSDP, "%s", scrubSDPError(err))
	}

	sessFingerprint := hasAttr(sd.Attributes, "fingerprint")
	sessUfrag := hasAttr(sd.Attributes, "ice-ufrag")
	sessPwd := hasAttr(sd.Attributes, "ice-pwd")
	sessDir := direction(sd.Attributes, "sendrecv")
	off := Offer{HasICEUfrag: true, ICELite: hasAttr(sd.Attributes, "ice-lite")}

	var sendingAV, unsupported []string
	for i, md := range sd.MediaDescriptions {
		if md == nil {
			continue
		}
		m := MediaSection{
			Index:     i,
			Kind:      md.MediaName.Media,
			Direction: direction(md.Attributes, sessDir),
			Rejected:  md.MediaName.Port.Value == 0,
		}
		m.MID, _ = md.Attribute("mid")
		for _, a := range md.Attributes {
			if a.Key == "candidate" {
				off.Candidates++
			}
		}
		if m.Kind != KindAudio && m.Kind != KindVideo {
			off.Media = append(off.Media, m)
			continue
		}
		if m.Rejected {
			off.Media = append(off.Media, m)
			continue
		}
		if !secureProfile(md.MediaName.Protos) {
			return Offer{}, offerErr(ErrPlainRTP, "m-line %d (%s) uses %s", i, m.Kind, strings.Join(md.MediaName.Protos, "/"))
		}
		if !sessFingerprint && !hasAttr(md.Attributes, "fingerprint") {
			return Offer{}, offerErr(ErrNoFingerprint, "m-line %d (%s) has no a=fingerprint", i, m.Kind)
		}
		if !sessUfrag && !hasAttr(md.Attributes, "ice-ufrag") {
			off.HasICEUfrag = false
			return Offer{}, offerErr(ErrNoICECredentials, "m-line %d (%s) has no a=ice-ufrag", i, m.Kind)
		}
		if !sessPwd && !hasAttr(md.Attributes, "ice-pwd") {
			return Offer{}, offerErr(ErrNoICECredentials, "m-line %d (%s) has no a=ice-pwd", i, m.Kind)
		}
		m.Codecs, m.Supported = codecsOf(md, m.Kind)
		if m.Sends() {
			sendingAV = append(sendingAV, m.Kind)
			if len(m.Supported) == 0 {
				unsupported = append(unsupported, fmt.Sprintf("m-line %d (%s): %s", i, m.Kind, codecList(m.Codecs)))
			}
		}
		off.Media = append(off.Media, m)
	}
	if len(sendingAV) == 0 {
		return Offer{}, offerErr(ErrNoMedia, "%d media sections, none sends audio or video", len(sd.MediaDescriptions))
	}
	if len(off.Kinds()) == 0 {
		return Offer{}, offerErr(ErrUnsupportedCodecs, "%s; supported: %s", strings.Join(unsupported, "; "), supportedList())
	}
	return off, nil
}

// codecsOf lists a media section's payload types as MIME types, and the
// supported ones among them.
func codecsOf(md *sdp.MediaDescription, kind string) (offered, supported []string) {
	rtpmaps := map[string]string{} // payload type -> "name/clock[/ch]"
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, enc, ok := strings.Cut(a.Value, " ")
		if ok {
			rtpmaps[pt] = strings.TrimSpace(enc)
		}
	}
	for _, pt := range md.MediaName.Formats {
		enc, ok := rtpmaps[pt]
		if !ok {
			enc = staticPayload(pt)
		}
		if enc == "" {
			offered = append(offered, kind+"/pt"+pt)
			continue
		}
		parts := strings.Split(enc, "/")
		offered = append(offered, kind+"/"+parts[0])
		if len(parts) < 2 {
			continue
		}
		clock, err := strconv.ParseUint(parts[1], 10, 32)
		if err != nil {
			continue
		}
		if mime, ok := supportedCodec(kind, parts[0], uint32(clock)); ok && !contains(supported, mime) {
			supported = append(supported, mime)
		}
	}
	return offered, supported
}

// staticPayload names the static payload types (RFC 3551) browsers offer
// without an rtpmap.
func staticPayload(pt string) string {
	switch pt {
	case "0":
		return "PCMU/8000"
	case "8":
		return "PCMA/8000"
	case "9":
		return "G722/8000"
	case "13":
		return "CN/8000"
	}
	return ""
}

func secureProfile(protos []string) bool {
	// UDP/TLS/RTP/SAVPF (RFC 5764/8843) or the legacy RTP/SAVPF with DTLS.
	for _, p := range protos {
		if p == "SAVPF" || p == "SAVP" {
			return true
		}
	}
	return false
}

func direction(attrs []sdp.Attribute, def string) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return def
}

func hasAttr(attrs []sdp.Attribute, key string) bool {
	for _, a := range attrs {
		if a.Key == key && strings.TrimSpace(a.Value) != "" {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func codecList(codecs []string) string {
	if len(codecs) == 0 {
		return "no codecs"
	}
	return strings.Join(codecs, ", ")
}

func supportedList() string {
	var names []string
	for _, c := range supportedCodecs {
		if !contains(names, c.MimeType) {
			names = append(names, c.MimeType)
		}
	}
	return strings.Join(names, ", ")
}

// scrubSDPError keeps pion/sdp's parse error (which quotes the offending
// line) unless that line carries ICE credentials.
func scrubSDPError(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return ScrubICECredentials(msg)
}
