// Package whip is a WHIP publisher client (RFC 9725) on pion/webrtc: it
// POSTs an SDP offer to a WHIP endpoint, connects, sends Opus and VP8 read
// from files with real-time pacing, and DELETEs its resource on Close.
//
// Place in the data flow: it is the other end of the recorder's ingest, the
// media source for everything downstream.
//
//	testdata/*.ogg, *.ivf → Media → send loop (pacing, DTX, seq/ts start)
//	→ pion (NACK responder, sender reports) → impairment interceptor (loss,
//	reordering, jitter, SSRC change) → DTLS-SRTP → recorder (WHIP handler)
//
// It is used by the recorder's tests, the load generator (custodian loadgen)
// and end-to-end tests. Media is loaded once (OpenOpus, OpenIVF) and shared
// read-only by any number of publishers.
package whip
