// Package webrtc is the recorder's WebRTC plumbing on pion/webrtc v4: the
// API factory, the offer checks for the WHIP handler, and small RTCP helpers.
//
// Place in the data flow: it sits at the very start.
//
//	WHIP POST → ReadOffer/ValidateOffer → NewAPI(...).NewPeerConnection
//	→ RTP in (interceptor: receiver reports; NACKs come from the pipeline)
//	→ jitter buffer / sample builder → session clock → muxer → ...
//
// NewAPI builds a pion API from config.WebRTC: the ICE settings an operator
// needs (interfaces, IPs, NAT 1:1 host addresses, UDP port range, one UDP port
// for every peer), no mDNS, no TCP candidates, DTLS-SRTP only, the codecs the
// recorder can mux (Opus; VP8, VP9, AV1, H.264) and only the interceptors a
// receive-only recorder needs. The same factory with WithRole(RoleSend) builds
// publishers (recorder/whip, the load generator) and the WHEP puller reuses
// the receive role.
//
// ReadRTCP drains a receiver's RTCP (which also drives the interceptors that
// read it) and hands sender reports to the session clock. KeyframeRequester
// sends throttled PLIs. NewLoggerFactory adapts pion's logging to log/slog
// and scrubs ICE credentials from pion's messages.
//
// Callers that also import pion's webrtc package import this one under
// another name, for example rtc.
package webrtc
