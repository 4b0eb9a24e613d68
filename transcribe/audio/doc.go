// Package audio turns a decrypted recording into 16 kHz mono speech chunks
// for the transcription engines.
//
// Where it sits in the data flow:
//
//	finished recording → job on JetStream → storage decrypts in memory →
//	[audio: demux Ogg/WebM → decode Opus → 16 kHz mono → cut at pauses] →
//	engine → redact → encrypted transcript + index
//
// Input is the plaintext of a recording as an io.Reader and its content type
// (audio/ogg, video/webm, video/x-matroska). Nothing is written to disk: the
// container is demuxed as a stream, Opus packets are decoded one at a time
// and only the chunk being built (at most Options.MaxChunk of audio) is held
// in memory, so an hour-long call costs no more memory than a short one.
//
// Opus is decoded straight to 16 kHz mono: libopus (cgo, Debian libopus-dev)
// when cgo is enabled, with packet-loss concealment and in-band FEC across
// gaps in the timeline; github.com/pion/opus (pure Go, no concealment: gaps
// become silence) in CGO_ENABLED=0 builds or with the nolibopus build tag.
// Both decoders produce 16 kHz natively (SILK decodes wideband at 16 kHz,
// CELT drops the bands above 8 kHz before its inverse transform), so no
// separate resampler is needed and nothing above 8 kHz can alias.
//
// Gaps in the container's timeline (a jump in Ogg granule positions or WebM
// block timestamps) are kept as time, so every chunk's OffsetMS is its start
// on the recording's own timeline.
package audio
