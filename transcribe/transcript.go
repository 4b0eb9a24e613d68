package transcribe

import (
	"context"
	"errors"
)

// Transcript is the stored form of one recording's transcript (SPEC section
// 10). Times are milliseconds on the session clock.
type Transcript struct {
	RecordingID   string      `json:"recording_id"`
	SessionID     string      `json:"session_id"`
	ParticipantID string      `json:"participant_id"`
	Speaker       string      `json:"speaker"`
	Engine        string      `json:"engine"`
	Language      string      `json:"language"`
	Segments      []Segment   `json:"segments"`
	Redactions    []Redaction `json:"redactions"`
}

// Segment is a stretch of speech (an utterance between pauses).
type Segment struct {
	StartMS int64  `json:"start_ms"`
	EndMS   int64  `json:"end_ms"`
	Text    string `json:"text"`
	Words   []Word `json:"words"`
	// Speaker and ParticipantID are filled in merged session transcripts.
	Speaker       string `json:"speaker,omitempty"`
	ParticipantID string `json:"participant_id,omitempty"`
	RecordingID   string `json:"recording_id,omitempty"`
}

// Word is one recognized word.
type Word struct {
	StartMS    int64   `json:"start_ms"`
	EndMS      int64   `json:"end_ms"`
	Word       string  `json:"word"`
	Confidence float64 `json:"confidence"`
}

// Redaction is a span replaced by [REDACTED:TYPE].
type Redaction struct {
	StartMS int64  `json:"start_ms"`
	EndMS   int64  `json:"end_ms"`
	Type    string `json:"type"` // CARD_NUMBER | SSN | EMAIL | PHONE
}

// Audio is a chunk of 16 kHz mono signed 16-bit PCM. OffsetMS is the
// chunk's start relative to the start of the recording.
type Audio struct {
	OffsetMS int64
	Samples  []int16
}

// SampleRate is the rate of Audio.Samples.
const SampleRate = 16000

// Engine turns speech into words. Implementations: transcribe/sphinx
// (offline, default), transcribe/openai (OpenAI-compatible HTTP),
// transcribe/awstranscribe (Amazon Transcribe).
type Engine interface {
	// Name identifies the engine in transcripts ("offline", "openai", "aws").
	Name() string
	// Transcribe recognizes one chunk (at most a few tens of seconds, cut
	// at a pause). Word times are relative to the chunk start; the caller
	// adds OffsetMS. Silence yields no words and no error.
	Transcribe(ctx context.Context, a Audio) ([]Word, error)
}

// ErrEngineUnavailable is returned by an engine that cannot run in this
// build or on this machine (for example the offline engine built without
// cgo, or without its model files).
var ErrEngineUnavailable = errors.New("transcribe: engine unavailable")
