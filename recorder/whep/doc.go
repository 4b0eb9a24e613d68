// Package whep is the recorder's WHEP client (WebRTC-HTTP Egress Protocol,
// IETF draft-ietf-wish-whep): the HTTP half of a pull. It POSTs the
// recorder's SDP offer to a WHEP endpoint with the bearer token, checks the
// 201 answer (Location, application/sdp, media to receive), and DELETEs the
// resource to stop.
//
// Place in the data flow: it is the signalling of join mode, beside WHIP
// ingest. The recorder (recorder.Recorder's pulls) builds the receive-only
// PeerConnection, hands its offer to Subscribe, and records what arrives
// exactly like a WHIP participant:
//
//	POST /v1/sessions/{id}/pull → recorder: PeerConnection (recvonly audio,
//	video) → offer → whep.Subscribe → WHEP server → answer → media
//	→ pipeline → encrypted recording
//
// The token is sent only in the Authorization header and never appears in
// an error: errors name the endpoint by Redact (no user info, query or
// fragment, which may carry credentials).
package whep
