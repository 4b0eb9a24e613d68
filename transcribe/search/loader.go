package search

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"gorm.io/gorm"

	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
)

// statusDeleting is the recording status the retention worker sets while
// it deletes a recording (policy/retention.StatusDeleting).
const statusDeleting = "deleting"

// TranscriptObject is the name of the sealed object holding a recording's
// transcript JSON (redacted when its policy says so): what is indexed.
const TranscriptObject = "transcript"

// Objects is what the loader needs from the encrypted object store
// (storage.Store implements it).
type Objects interface {
	// GetObject returns the plaintext of a sealed named object. Errors
	// wrap storage.ErrKeyDestroyed for a shredded recording.
	GetObject(ctx context.Context, tenant, recordingID, name string) ([]byte, error)
}

// Loader reads what the index should hold for a recording from the
// database and the object store: the database says whether a recording's
// transcript is completed and not deleted, and gives its department,
// times and policy decision; the object store gives the words.
type Loader struct {
	db      *gorm.DB
	objects Objects
	sealed  SealedFunc
	log     *slog.Logger
}

// SealedFunc returns the sealed bytes of an object key, to check them
// against the hash the database recorded for the transcript.
type SealedFunc func(ctx context.Context, key string) ([]byte, error)

// WithSealed makes the loader check every transcript object's SHA-256
// against meta.Transcript.CipherSHA256 before indexing it, so a replaced
// or rolled-back object is not indexed.
func (l *Loader) WithSealed(fn SealedFunc) *Loader {
	l.sealed = fn
	return l
}

// NewLoader returns a Loader.
func NewLoader(db *gorm.DB, objects Objects, log *slog.Logger) *Loader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Loader{db: db, objects: objects, log: log}
}

// Load returns the document recording should have in the index, or ok
// false when it should have none (no completed transcript, deleted,
// shredded, or a transcript that fails verification, which is logged).
// An error is worth retrying (database or object store unavailable, an
// object not uploaded yet).
func (l *Loader) Load(ctx context.Context, tenant, recordingID string) (doc Document, ok bool, err error) {
	var tr meta.Transcript
	err = l.db.WithContext(ctx).Where("recording_id = ? AND tenant_id = ?", recordingID, tenant).Take(&tr).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Document{}, false, nil
	}
	if err != nil {
		return Document{}, false, fmt.Errorf("search: load transcript row %s: %w", recordingID, err)
	}
	return l.load(ctx, tr)
}

func (l *Loader) load(ctx context.Context, tr meta.Transcript) (Document, bool, error) {
	if tr.Status != meta.TranscriptCompleted {
		return Document{}, false, nil
	}
	var rec meta.Recording
	err := l.db.WithContext(ctx).Where("id = ? AND tenant_id = ?", tr.RecordingID, tr.TenantID).Take(&rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Document{}, false, nil
	}
	if err != nil {
		return Document{}, false, fmt.Errorf("search: load recording %s: %w", tr.RecordingID, err)
	}
	// "deleting": claimed by the retention worker, the key about to go.
	if rec.Status == meta.StatusDeleted || rec.Status == statusDeleting || rec.DeletedAt != nil {
		return Document{}, false, nil
	}
	access, err := l.access(ctx, rec)
	if err != nil {
		return Document{}, false, err
	}
	if l.sealed != nil {
		b, err := l.sealed(ctx, storage.ObjectKey(tr.TenantID, tr.RecordingID, TranscriptObject))
		if err != nil {
			return Document{}, false, fmt.Errorf("search: fetch transcript %s: %w", tr.RecordingID, err)
		}
		sum := sha256.Sum256(b)
		if tr.CipherSHA256 == "" || subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(tr.CipherSHA256)) != 1 {
			l.log.Error("transcript object differs from the one recorded; not indexed", "tenant", tr.TenantID, "recording_id", tr.RecordingID)
			return Document{}, false, nil
		}
	}
	pt, err := l.objects.GetObject(ctx, tr.TenantID, tr.RecordingID, TranscriptObject)
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrKeyDestroyed):
		return Document{}, false, nil
	case storage.IsIntegrity(err):
		l.log.Error("transcript failed verification; not indexed", "tenant", tr.TenantID, "recording_id", tr.RecordingID, "err", err)
		return Document{}, false, nil
	default:
		return Document{}, false, fmt.Errorf("search: read transcript %s: %w", tr.RecordingID, err)
	}
	defer clear(pt)
	var t transcribe.Transcript
	if err := json.Unmarshal(pt, &t); err != nil || (t.RecordingID != "" && t.RecordingID != tr.RecordingID) {
		l.log.Error("transcript object does not decode or names another recording; not indexed",
			"tenant", tr.TenantID, "recording_id", tr.RecordingID)
		return Document{}, false, nil
	}
	t.RecordingID = tr.RecordingID
	if t.SessionID == "" {
		t.SessionID = rec.SessionID
	}
	if t.ParticipantID == "" {
		t.ParticipantID = rec.ParticipantID
	}
	if t.Speaker == "" {
		var p meta.Participant
		if err := l.db.WithContext(ctx).Select("name").
			Where("tenant_id = ? AND session_id = ? AND id = ?", rec.TenantID, rec.SessionID, rec.ParticipantID).
			Limit(1).Find(&p).Error; err == nil {
			t.Speaker = p.Name
		}
	}
	doc := NewDocument(t, tr.TenantID, rec.Department, rec.StartedAt, rec.StartOffsetMS, access)
	doc.Version = tr.CipherSHA256
	return doc, true, nil
}

// access returns the access rule of the policy decision a recording was
// made under: its own, or else its session's (nil when none was stored).
func (l *Loader) access(ctx context.Context, rec meta.Recording) (*policy.Access, error) {
	tenant, sessionID := rec.TenantID, rec.SessionID
	stored := rec.Decision.V
	if len(stored) == 0 {
		var s []meta.Session
		if err := l.db.WithContext(ctx).Select("tenant_id", "id", "decision").
			Where("tenant_id = ? AND id = ?", tenant, sessionID).Limit(1).Find(&s).Error; err != nil {
			return nil, fmt.Errorf("search: load session %s decision: %w", sessionID, err)
		}
		if len(s) == 0 || len(s[0].Decision.V) == 0 {
			return nil, nil
		}
		stored = s[0].Decision.V
	}
	var d policy.Decision
	b, err := json.Marshal(stored)
	if err == nil {
		err = json.Unmarshal(b, &d)
	}
	if err != nil {
		// Fail closed: only admins may find what an unreadable decision covers.
		l.log.Error("session policy decision does not decode; its recordings are searchable by admins only",
			"tenant", tenant, "session_id", sessionID, "err", err)
		return &policy.Access{Roles: []string{policy.RoleAdmin}}, nil
	}
	return &d.Access, nil
}
