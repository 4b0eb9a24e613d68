package meta

import (
	"time"
)

// Recording statuses (SPEC section 5).
const (
	StatusRecording  = "recording"
	StatusFinalizing = "finalizing"
	StatusComplete   = "complete"
	StatusFailed     = "failed"
	StatusRecovered  = "recovered"
	StatusDeleted    = "deleted"
	// StatusDeleting: claimed for deletion by the retention worker
	// (policy/retention); with DeletedAt set the key is already destroyed.
	StatusDeleting = "deleting"
)

// Session statuses.
const (
	SessionActive = "active"
	SessionEnded  = "ended"
)

// Live recording status of a session as seen by applications (SPEC section 8).
const (
	LiveRecording    = "recording"
	LiveNotRecording = "not_recording"
	LiveFailed       = "failed"
)

// Transcript statuses.
const (
	TranscriptPending   = "pending"
	TranscriptRunning   = "running"
	TranscriptCompleted = "completed"
	TranscriptFailed    = "failed"
	TranscriptDeleted   = "deleted"
)

// Tenant is an isolated customer of the gateway.
type Tenant struct {
	ID        string `gorm:"primaryKey;size:64"`
	Name      string
	CreatedAt time.Time
}

// Token is an opaque bearer token; only its SHA-256 hash is stored.
type Token struct {
	ID         string `gorm:"primaryKey;size:40"`
	TenantID   string `gorm:"size:64;index"`
	Name       string
	Role       string `gorm:"size:32"`
	Department string `gorm:"size:128"`
	Hash       string `gorm:"size:64;uniqueIndex"` // hex SHA-256 of the token
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	CreatedBy  string
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// Session is a governed call. Its id is chosen by the application and is
// unique within a tenant.
type Session struct {
	TenantID   string `gorm:"primaryKey;size:64"`
	ID         string `gorm:"primaryKey;size:128"`
	Department string `gorm:"size:128;index"`
	Labels     JSON[map[string]string]
	Status     string `gorm:"size:16;index"` // active | ended
	// Decision is the policy decision taken when the session was created
	// (policy.Decision as JSON).
	Decision        JSON[map[string]any]
	PolicyName      string
	PolicyVersion   int
	RecordingStatus string `gorm:"size:16"` // recording | not_recording | failed
	FailureReason   string
	Paused          bool
	PausedAt        *time.Time
	StartedAt       time.Time // the session clock's zero
	EndedAt         *time.Time
	LastLeftAt      *time.Time // when the last participant left (idle timeout)
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Participant is one party of a session.
type Participant struct {
	TenantID   string `gorm:"primaryKey;size:64"`
	SessionID  string `gorm:"primaryKey;size:128"`
	ID         string `gorm:"primaryKey;size:128"`
	Name       string
	Attributes JSON[map[string]string]
	Consent    string `gorm:"size:16"` // granted | denied | unknown
	// Decision is the participant's policy decision at its last join
	// (policy.Decision as JSON).
	Decision      JSON[map[string]any]
	ConsentMethod string
	ConsentAt     *time.Time
	JoinedAt      *time.Time
	LeftAt        *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// ConsentRecord is one entry of the consent ledger (append-only).
type ConsentRecord struct {
	ID            int64  `gorm:"primaryKey;autoIncrement"`
	TenantID      string `gorm:"size:64;index:idx_consent_part"`
	SessionID     string `gorm:"size:128;index:idx_consent_part"`
	ParticipantID string `gorm:"size:128;index:idx_consent_part"`
	Granted       bool
	State         string // granted | denied | unknown
	Method        string
	Actor         string
	At            time.Time
}

// Recording is one participant's media connection recorded to one file.
type Recording struct {
	ID            string `gorm:"primaryKey;size:40"`
	TenantID      string `gorm:"size:64;index:idx_rec_session"`
	SessionID     string `gorm:"size:128;index:idx_rec_session"`
	ParticipantID string `gorm:"size:128;index"`
	Department    string `gorm:"size:128;index"`
	Status        string `gorm:"size:16;index"`
	// ContentType is audio/ogg, video/webm or video/x-matroska.
	ContentType string `gorm:"size:32"`
	Codecs      JSON[[]string]
	// InstanceID is the gateway instance writing it (crash recovery).
	InstanceID string    `gorm:"size:64;index"`
	StartedAt  time.Time `gorm:"index"` // wall-clock time of the first packet
	EndedAt    *time.Time
	// StartOffsetMS is StartedAt on the session clock (ms since session start).
	StartOffsetMS int64
	DurationMS    int64
	Parts         int
	Size          int64 // plaintext bytes
	CipherSize    int64
	// ManifestSHA256 is the hex SHA-256 of the final sealed manifest object.
	ManifestSHA256 string `gorm:"size:64"`
	Completeness   JSON[map[string]any]
	FailureReason  string
	PolicyName     string
	// Decision is the participant's policy decision this recording was
	// made under (policy.Decision as JSON), including its access rule.
	// Empty for recordings made before it was stored: the session's
	// decision applies to them.
	Decision       JSON[map[string]any]
	Transcribe     bool
	RedactPII      bool
	KeepUnredacted bool
	// TranscriptionEngine is the engine the policy names for this
	// recording's transcript; empty: the workers' configured default.
	TranscriptionEngine string     `gorm:"size:16"`
	RetainUntil         *time.Time `gorm:"index"`
	DeletedAt           *time.Time
	DeletedReason       string
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// Part is one sealed, independently authenticated encrypted object of a
// recording. N starts at 0 (the container header part) or 1.
type Part struct {
	RecordingID  string `gorm:"primaryKey;size:40"`
	N            int    `gorm:"primaryKey"`
	CipherSHA256 string `gorm:"size:64"`
	CipherSize   int64
	PlainSize    int64
	PlainOffset  int64 // offset of the part's first byte in the plaintext file
	Uploaded     bool
	CreatedAt    time.Time
}

// DataKey is a recording's data key wrapped by a key-encryption key.
// Shredding clears Wrapped and sets ShreddedAt.
type DataKey struct {
	RecordingID string `gorm:"primaryKey;size:40"`
	TenantID    string `gorm:"size:64;index"`
	Provider    string `gorm:"size:16"` // local | aws
	KEKID       string `gorm:"size:256;index"`
	Wrapped     []byte
	ShreddedAt  *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Transcript is the transcript of one recording. The text lives only in an
// encrypted object (ObjectKey) under the recording's data key.
type Transcript struct {
	RecordingID   string `gorm:"primaryKey;size:40"`
	TenantID      string `gorm:"size:64;index:idx_tr_session"`
	SessionID     string `gorm:"size:128;index:idx_tr_session"`
	ParticipantID string `gorm:"size:128"`
	Department    string `gorm:"size:128"`
	Status        string `gorm:"size:16;index"`
	Engine        string `gorm:"size:32"`
	Language      string `gorm:"size:16"`
	FailureReason string
	Attempts      int
	ObjectKey     string
	CipherSHA256  string `gorm:"size:64"`
	// UnredactedKey is set when the policy keeps an unredacted copy, and
	// UnredactedSHA256 is the hex SHA-256 of that sealed object.
	UnredactedKey    string
	UnredactedSHA256 string `gorm:"size:64"`
	Redacted         bool
	WordCount        int
	DurationMS       int64
	RetainUntil      *time.Time `gorm:"index"`
	StartedAt        *time.Time
	CompletedAt      *time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// PolicyVersion is one version of the policy document; the highest is in force.
type PolicyVersion struct {
	Version   int    `gorm:"primaryKey;autoIncrement:false"`
	Document  string // YAML as submitted
	Actor     string
	CreatedAt time.Time
}

// LegalHold keeps the recordings and transcripts of the named sessions and
// participants, existing and future, from deletion until released.
type LegalHold struct {
	ID             string `gorm:"primaryKey;size:40"`
	TenantID       string `gorm:"size:64;index"`
	Name           string
	Reason         string
	SessionIDs     JSON[[]string]
	ParticipantIDs JSON[[]string]
	CreatedBy      string
	CreatedAt      time.Time
	ReleasedBy     string
	ReleasedAt     *time.Time `gorm:"index"`
}

// AuditEntry is one link of the tamper-evident audit chain.
type AuditEntry struct {
	Seq      int64     `gorm:"primaryKey;autoIncrement:false"`
	TenantID string    `gorm:"size:64;index"`
	Time     time.Time `gorm:"index"`
	Actor    string
	Role     string
	Action   string `gorm:"size:64;index"`
	Target   string
	Source   string
	Outcome  string `gorm:"size:16"` // success | denied | error
	Details  JSON[map[string]any]
	PrevHash string `gorm:"size:64"`
	Hash     string `gorm:"size:64"`
}

// AuditCheckpoint is a signed statement of the chain head.
type AuditCheckpoint struct {
	Seq       int64 `gorm:"primaryKey;autoIncrement:false"`
	Hash      string
	KeyID     string
	PublicKey string // base64 Ed25519 public key
	Signature string // base64 Ed25519 signature over "custodian-audit-checkpoint\n{seq}\n{hash}\n{time}"
	Time      time.Time
}

// OutboxEvent is an event written in the same transaction as the state
// change it announces, relayed to NATS until acknowledged.
type OutboxEvent struct {
	Seq       int64  `gorm:"primaryKey;autoIncrement"`
	ID        string `gorm:"size:40;uniqueIndex"` // CloudEvents id and Nats-Msg-Id
	TenantID  string `gorm:"size:64"`
	Kind      string `gorm:"size:64"`
	Subject   string // CloudEvents subject: recording or session id
	Time      time.Time
	Data      []byte // JSON
	Attempts  int
	LastError string
	SentAt    *time.Time `gorm:"index"`
	// LeaseUntil and LeaseOwner keep two relays from publishing a row at once.
	LeaseUntil *time.Time
	LeaseOwner string
	CreatedAt  time.Time
}

// Export is an eDiscovery bundle job.
type Export struct {
	ID          string `gorm:"primaryKey;size:40"`
	TenantID    string `gorm:"size:64;index"`
	Status      string `gorm:"size:16"` // pending | running | complete | failed
	Progress    float64
	Recipient   string // age X25519 public key
	Request     JSON[map[string]any]
	ObjectKey   string
	Size        int64
	SHA256      string
	Error       string
	CreatedBy   string
	CreatedAt   time.Time
	CompletedAt *time.Time
}

// Pull is a WHEP subscription the gateway keeps to record a remote stream.
type Pull struct {
	ID            string `gorm:"primaryKey;size:40"`
	TenantID      string `gorm:"size:64;index"`
	SessionID     string `gorm:"size:128"`
	ParticipantID string `gorm:"size:128"`
	Name          string
	URL           string
	Status        string `gorm:"size:16"`
	Error         string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	EndedAt       *time.Time
}

// Lease is a named, expiring lock held by one gateway instance (retention
// sweeps, checkpoints) so that several instances do a job once.
type Lease struct {
	Name      string `gorm:"primaryKey;size:64"`
	Owner     string `gorm:"size:64"`
	ExpiresAt time.Time
}

// NamedKey is a tenant-wide data key for one purpose ("search-index",
// "audit-signing", "nats-store"), wrapped by the tenant's KEK with encryption
// context {tenant, purpose}.
type NamedKey struct {
	TenantID  string `gorm:"primaryKey;size:64"`
	Purpose   string `gorm:"primaryKey;size:64"`
	Provider  string `gorm:"size:16"`
	KEKID     string `gorm:"size:256"`
	Wrapped   []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// AllModels lists every model, in creation order.
func AllModels() []any {
	return []any{
		&Tenant{}, &Token{}, &Session{}, &Participant{}, &ConsentRecord{},
		&Recording{}, &Part{}, &DataKey{}, &Transcript{}, &PolicyVersion{},
		&LegalHold{}, &AuditEntry{}, &AuditCheckpoint{}, &OutboxEvent{},
		&Export{}, &Pull{}, &Lease{}, &NamedKey{},
	}
}
