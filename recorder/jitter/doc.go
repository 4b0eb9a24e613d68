// Package jitter reorders one RTP stream by sequence number.
//
// In the recorder's data flow it sits right after the WebRTC layer (pion's
// SRTP session): every RTP packet of one track goes through a Buffer,
// which hands the packets on in sequence order to the depacketizer. It
// extends the 16-bit sequence number across wrap-around (65535 → 0), drops
// duplicates, holds packets behind a gap for up to the configured latency
// (recording.jitter_buffer) while the sender retransmits in answer to the
// NACKs it lists (AppendNACKs), then gives the missing packets up as lost.
// A packet that arrives after its slot was given up is counted as late.
// Large jumps in sequence number are only believed when the next packet
// confirms them (RFC 3550 appendix A.1), so one hostile packet cannot
// reset the stream.
package jitter
