package events

import "time"

// The data of each event kind. Emitters pass one of these as Event.Data so
// every consumer sees the same fields (docs/events.md). They hold ids,
// times, sizes, hashes, retention dates and completeness: never transcript
// text, free-text reasons typed by people, tokens or key material.

// SessionData is the data of session.started and session.ended.
type SessionData struct {
	SessionID  string            `json:"session_id"`
	Department string            `json:"department,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Policy     string            `json:"policy,omitempty"` // name of the matching policy rule
	Record     string            `json:"record,omitempty"` // required | optional | off
	StartedAt  time.Time         `json:"started_at"`
	EndedAt    *time.Time        `json:"ended_at,omitempty"`
	// EndReason is a fixed token: api, idle_timeout, shutdown.
	EndReason string `json:"end_reason,omitempty"`
}

// RecordingData is the data of recording.started, recording.completed,
// recording.failed, recording.recovered and recording.deleted.
type RecordingData struct {
	RecordingID    string     `json:"recording_id"`
	SessionID      string     `json:"session_id"`
	ParticipantID  string     `json:"participant_id"`
	Department     string     `json:"department,omitempty"`
	Status         string     `json:"status"`
	ContentType    string     `json:"content_type,omitempty"`
	Codecs         []string   `json:"codecs,omitempty"`
	StartedAt      time.Time  `json:"started_at"`
	EndedAt        *time.Time `json:"ended_at,omitempty"`
	StartOffsetMS  int64      `json:"start_offset_ms"`
	DurationMS     int64      `json:"duration_ms,omitempty"`
	Parts          int        `json:"parts,omitempty"`
	Size           int64      `json:"size,omitempty"`        // plaintext bytes
	CipherSize     int64      `json:"cipher_size,omitempty"` // bytes at rest
	ManifestSHA256 string     `json:"manifest_sha256,omitempty"`
	RetainUntil    *time.Time `json:"retain_until,omitempty"`
	// Completeness is the completeness report (SPEC section 5).
	Completeness map[string]any `json:"completeness,omitempty"`
	// Reason is a fixed token for failed (no_media, storage, consent_denied, …)
	// and deleted (retention, api) recordings.
	Reason string `json:"reason,omitempty"`
}

// TranscriptData is the data of transcript.completed and
// transcript.failed.
type TranscriptData struct {
	RecordingID   string     `json:"recording_id"`
	SessionID     string     `json:"session_id"`
	ParticipantID string     `json:"participant_id"`
	Engine        string     `json:"engine"`
	Language      string     `json:"language,omitempty"`
	WordCount     int        `json:"word_count"`
	DurationMS    int64      `json:"duration_ms"`
	Redacted      bool       `json:"redacted"`
	Redactions    int        `json:"redactions,omitempty"`
	CipherSHA256  string     `json:"cipher_sha256,omitempty"`
	RetainUntil   *time.Time `json:"retain_until,omitempty"`
	Attempts      int        `json:"attempts,omitempty"`
	Reason        string     `json:"reason,omitempty"` // failed: a fixed token
}

// LegalHoldData is the data of legalhold.applied and legalhold.released.
// The hold's reason text stays in the database.
type LegalHoldData struct {
	HoldID         string    `json:"hold_id"`
	Name           string    `json:"name"`
	SessionIDs     []string  `json:"session_ids,omitempty"`
	ParticipantIDs []string  `json:"participant_ids,omitempty"`
	Actor          string    `json:"actor"`
	At             time.Time `json:"at"`
}

// ConsentData is the data of consent.recorded.
type ConsentData struct {
	SessionID     string    `json:"session_id"`
	ParticipantID string    `json:"participant_id"`
	State         string    `json:"state"` // granted | denied | unknown
	Method        string    `json:"method,omitempty"`
	At            time.Time `json:"at"`
}

// PolicyData is the data of policy.updated.
type PolicyData struct {
	Version int       `json:"version"`
	SHA256  string    `json:"sha256"` // of the policy document as stored
	Rules   int       `json:"rules"`
	Actor   string    `json:"actor"`
	At      time.Time `json:"at"`
}
