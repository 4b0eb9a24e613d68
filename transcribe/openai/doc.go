// Package openai is the speech-to-text engine for servers that implement
// OpenAI's POST /v1/audio/transcriptions: OpenAI itself, whisper.cpp's
// server (started with --inference-path /v1/audio/transcriptions) and the
// faster-whisper servers (speaches, faster-whisper-server).
//
// In the transcription data flow it sits where transcribe/sphinx does:
// after the audio path (decode, 16 kHz resample, cut at pauses) and before
// redaction. Each chunk is sent as an in-memory 16 kHz mono WAV file in a
// multipart request with response_format=verbose_json and word timestamps;
// the answer's words (or, from servers without word timestamps, its
// segments) become transcribe.Words relative to the chunk start.
//
// The three server families answer verbose_json slightly differently; all
// are accepted (see parseVerbose). Failed requests (network errors,
// per-request timeouts, 408, 429, 5xx) are retried with exponential
// backoff; other answers fail at once. Errors never contain the audio, the
// recognized text or the API key.
package openai
