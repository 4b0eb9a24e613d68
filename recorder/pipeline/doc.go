// Package pipeline records one participant connection: everything between
// an RTP packet and a sealed part.
//
// In the recorder's data flow it is called by the WebRTC layer (one
// Recording per participant media connection, one Track per received
// track): RTP packets go through a jitter buffer (recorder/jitter), a
// depacketizer (recorder/depacket), the session clock (recorder/clock),
// the gate (consent and pause), and a muxer (recorder/ogg for audio only,
// recorder/webm for audio with video). The muxer's output is cut into
// parts at page or cluster boundaries at least every part duration (media
// or wall time) and handed, in order and on one background goroutine, to a
// Sink (the encrypting storage writer). NACK lists and keyframe requests
// go back to the WebRTC layer through Feedback. Close flushes, pads the
// timeline to the end time, seals the last part, rewrites the header part
// once (WebM: duration, codec parameters, Cues position) and returns the
// completeness report (recorder/report).
//
// Timeline rule: a recording's media timeline equals wall-clock time from
// its first recorded packet to its end. DTX silence, loss, mute and gated
// spans stay as time: audio gaps are filled with Opus silence frames,
// video holds its last frame.
package pipeline
