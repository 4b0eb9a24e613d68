// Package sphinx is the offline speech-to-text engine: CMU PocketSphinx
// (Debian's libpocketsphinx, en-US model) called through cgo.
//
// In the transcription data flow it sits after the audio path
// (transcribe/audio: decrypt, demux, Opus decode, 16 kHz resample, cut at
// pauses) and before redaction: the job runner hands it one chunk of 16 kHz
// mono PCM at a time as a transcribe.Audio and gets back words with times
// relative to the chunk start and a confidence in [0, 1].
//
// Each chunk is decoded as one whole utterance (ps_process_raw with
// full_utt), so cepstral mean normalisation sees the entire chunk; live
// (streaming) decoding loses about 8 WER points on read speech. Audio is
// handed to the decoder from memory and never written to disk.
//
// A decoder is not safe for concurrent use and holds about 107 MB, so an
// Engine keeps a small pool sized with WithDecoders (one per transcription
// worker). Built without cgo (CGO_ENABLED=0), New still exists and returns
// an Engine whose Transcribe fails with transcribe.ErrEngineUnavailable.
package sphinx
