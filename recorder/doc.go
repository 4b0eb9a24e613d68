// Package recorder is Custodian's WebRTC participant: the WHIP ingest
// endpoints (RFC 9725), governed sessions with one clock each, and one
// receive-only pion PeerConnection per participant connection, recorded by
// one recorder/pipeline.Recording into one encrypted recording.
//
// Place in the data flow: it is the top of the recorder, between the HTTP
// router and the pipeline.
//
//	POST /whip/{session}/{participant}  (bearer token, ingest permission)
//	→ offer checks (recorder/webrtc) → admission: session, policy decision,
//	  consent, storage and key provider up (fail closed)
//	→ pion PeerConnection (one codec per kind negotiated, DTLS-SRTP)
//	→ one read goroutine per track (pooled buffers) → pipeline.Track
//	→ session clock (recorder/clock, shared by the session's participants)
//	→ pipeline: jitter buffer, depacketizer, gate (consent, pause), muxer
//	→ sink: storage.Writer (created at the first part, with the recording
//	  row) → spool (fsync) → blob store
//	→ close: manifest → recording row → outbox event in one transaction
//	→ relay → NATS
//
// The Recorder also serves the session API (/v1/sessions: create, list,
// get, end, pause, resume, consent), watches live sessions (storage and key
// provider health, participants' media, idle timeout) so that a session
// whose policy requires recording fails closed within two seconds, and at
// start finalizes the recordings a crash interrupted (Store.Recover).
//
// A failure ends only the participant connection it happened on.
package recorder
