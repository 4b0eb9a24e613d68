package audio

import (
	"errors"
	"fmt"
	"strings"
)

// ErrCorrupt means the recording's container or an Opus packet in it is
// malformed (bad checksum, impossible element size, undecodable packet).
var ErrCorrupt = errors.New("audio: corrupt recording")

// ErrTruncated means the recording ends in the middle of a page, element or
// packet, or before its declared end.
var ErrTruncated = errors.New("audio: truncated recording")

// ErrUnsupported means the content type, codec or channel layout is not one
// this package decodes (for example a WebM whose audio is Vorbis).
var ErrUnsupported = errors.New("audio: unsupported recording")

// ErrNoAudio means the container is well formed but has no Opus audio track
// (for example a video-only WebM). Callers usually treat it like silence.
var ErrNoAudio = errors.New("audio: recording has no audio track")

// FormatError describes where a recording could not be read. Err is one of
// ErrCorrupt, ErrTruncated, ErrUnsupported or ErrNoAudio, possibly wrapping
// the underlying cause; errors.Is works through it.
type FormatError struct {
	Container string // "ogg" or "webm"
	Offset    int64  // byte offset in the recording, -1 when unknown
	Packet    int64  // index of the Opus packet, -1 when not about a packet
	Err       error
}

func (e *FormatError) Error() string {
	s := "audio: " + e.Container
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at byte %d", e.Offset)
	}
	if e.Packet >= 0 {
		s += fmt.Sprintf(" packet %d", e.Packet)
	}
	return s + ": " + strings.TrimPrefix(e.Err.Error(), "audio: ")
}

func (e *FormatError) Unwrap() error { return e.Err }

// kindError attaches a sentinel kind to a cause: errors.Is finds both.
type kindError struct {
	kind  error
	cause error
}

func (e *kindError) Error() string {
	if e.cause == nil {
		return e.kind.Error()
	}
	return e.kind.Error() + ": " + e.cause.Error()
}

func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func corruptf(format string, args ...any) error {
	return &kindError{kind: ErrCorrupt, cause: fmt.Errorf(format, args...)}
}

func truncatedf(format string, args ...any) error {
	return &kindError{kind: ErrTruncated, cause: fmt.Errorf(format, args...)}
}

func unsupportedf(format string, args ...any) error {
	return &kindError{kind: ErrUnsupported, cause: fmt.Errorf(format, args...)}
}
