// Package webm writes WebM and Matroska files as an append-only stream of
// parts.
//
// In the recorder's data flow it sits after the session clock, beside
// recorder/ogg: the pipeline gives it timestamped frames (milliseconds on
// the recording timeline) and cuts its output into parts at cluster
// boundaries. The header (EBML header, Segment of unknown size, SeekHead,
// Info, Tracks, padded with a Void to a fixed size) is its own part 0, so
// that at close it can be rewritten once with the same length to add the
// Segment duration, the final codec parameters and the Cues position;
// every later part is a complete Cluster and is never rewritten. Header
// and Cues are marshalled with github.com/at-wat/ebml-go; clusters and
// SimpleBlocks, written for every frame, are encoded here without
// allocation.
package webm
