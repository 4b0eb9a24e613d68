// Package wer measures word error rate (WER): how far an engine's words are
// from a reference transcript.
//
// It sits beside the transcription data flow, not in it: tests and
// benchmarks feed audio to a transcribe.Engine (directly, or through the
// whole recording pipeline) and score the words against references with
// Normalize and Align, summed over a set in a Report. LoadLibriVox reads
// the real read-speech test set of Debian's pocketsphinx-testdata package,
// the baseline every pipeline change is compared against.
//
// WER = (substitutions + deletions + insertions) / reference words, after
// both sides are normalized the same way (lower case, no punctuation,
// numbers written as words as PocketSphinx outputs them).
package wer
