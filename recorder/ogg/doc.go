// Package ogg writes and reads Ogg streams (RFC 3533) carrying Opus
// (RFC 7845).
//
// In the recorder's data flow it sits after the session clock: the pipeline
// hands it Opus packets with granule positions taken from the recording
// timeline (not from sample counts), so DTX silence, loss and paused spans
// keep their wall-clock length; gaps are filled with real Opus silence
// frames (see SilenceFrame). The Writer appends complete pages to a byte
// slice owned by the caller, so the pipeline can cut parts at page
// boundaries. The Reader is the demuxer used by transcription and tests:
// it checks every page's CRC and bounds the memory a hostile file can make
// it use.
package ogg
