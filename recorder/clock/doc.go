// Package clock maps RTP time to one session clock.
//
// In the recorder's data flow it sits after the depacketizers and before
// the muxers. Every session has one Session clock (nanoseconds since the
// session's epoch on the gateway's monotonic clock); every track has a
// Mapper that turns its RTP timestamps (extended across 32-bit
// wrap-around) into session time: through RTCP sender reports (NTP ↔ RTP)
// when the sender sends them, by arrival time otherwise. The NTP domain of
// one sender is tied to the session clock by one Sender shared by its
// tracks, so audio and video stay in sync. Timestamps that disagree with
// arrival by more than the allowed skew are rejected (hostile or broken
// RTP), and a jump that persists re-anchors the mapping (a real timestamp
// reset). Because every recording of a session maps to the same clock,
// recordings of different participants line up.
package clock
