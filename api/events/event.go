package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/custodian/custodian/storage/meta"
	"gorm.io/gorm"
)

// Event kinds (SPEC section 7). The NATS subject is custodian.{tenant}.{kind}
// and the CloudEvents type io.custodian.{kind}.
const (
	SessionStarted      = "session.started"
	SessionEnded        = "session.ended"
	RecordingStarted    = "recording.started"
	RecordingCompleted  = "recording.completed"
	RecordingFailed     = "recording.failed"
	RecordingRecovered  = "recording.recovered"
	RecordingDeleted    = "recording.deleted"
	TranscriptCompleted = "transcript.completed"
	TranscriptFailed    = "transcript.failed"
	LegalHoldApplied    = "legalhold.applied"
	LegalHoldReleased   = "legalhold.released"
	ConsentRecorded     = "consent.recorded"
	PolicyUpdated       = "policy.updated"
)

// Stream and subject names.
const (
	StreamName    = "CUSTODIAN_EVENTS"
	SubjectPrefix = "custodian"
	TypePrefix    = "io.custodian."
	Source        = "/custodian"
)

// Event is a state change to announce. Data holds ids, times, sizes,
// hashes, retention dates and completeness: never transcript text or key
// material.
type Event struct {
	Tenant  string
	Kind    string
	Subject string // recording or session id
	Data    any
}

// MaxDataBytes bounds an event's JSON data, far below NATS's default
// maximum payload, so that no committed row can be unpublishable.
const MaxDataBytes = 256 << 10

// ErrInvalidEvent is returned by Emit for an event that could never be
// published: a tenant that is not one subject token, a malformed kind, or
// oversized data. It is checked before anything is written.
var ErrInvalidEvent = errors.New("events: invalid event")

// validate checks that e maps to a valid NATS subject of exactly
// custodian.{tenant}.{kind}: the tenant is one token (no '.', '*', '>' or
// white space), the kind is lowercase dotted words.
func validate(e Event) error {
	if e.Tenant == "" || e.Kind == "" {
		return fmt.Errorf("tenant and kind are required: %w", ErrInvalidEvent)
	}
	if len(e.Tenant) > 64 || strings.Contains(e.Tenant, ".") || !meta.ValidID(e.Tenant) {
		return fmt.Errorf("tenant %q is not a single subject token: %w", e.Tenant, ErrInvalidEvent)
	}
	if len(e.Kind) > 64 {
		return fmt.Errorf("kind %q too long: %w", e.Kind, ErrInvalidEvent)
	}
	for _, word := range strings.Split(e.Kind, ".") {
		if word == "" {
			return fmt.Errorf("kind %q: %w", e.Kind, ErrInvalidEvent)
		}
		for _, r := range word {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return fmt.Errorf("kind %q: %w", e.Kind, ErrInvalidEvent)
			}
		}
	}
	return nil
}

// Subject returns the NATS subject of an event of kind in tenant.
func Subject(tenant, kind string) string {
	return SubjectPrefix + "." + tenant + "." + kind
}

// Emit writes e to the outbox inside tx, the transaction that makes the
// state change it announces. The relay publishes it once tx has committed
// (and never if tx rolls back); Emit also wakes the relay of this process.
// An event that could never be published (see ErrInvalidEvent) is refused
// before anything is written.
func Emit(tx *gorm.DB, e Event) error {
	if err := validate(e); err != nil {
		return fmt.Errorf("events: emit: %w", err)
	}
	data, err := json.Marshal(e.Data)
	if err != nil {
		return fmt.Errorf("events: emit %s: %w: %w", e.Kind, ErrInvalidEvent, err)
	}
	if len(data) > MaxDataBytes {
		return fmt.Errorf("events: emit %s: data is %d bytes: %w", e.Kind, len(data), ErrInvalidEvent)
	}
	row := meta.OutboxEvent{
		ID:       meta.NewID("evt"),
		TenantID: e.Tenant,
		Kind:     e.Kind,
		Subject:  e.Subject,
		Time:     time.Now().UTC().Truncate(time.Microsecond),
		Data:     data,
	}
	if err := tx.Create(&row).Error; err != nil {
		return fmt.Errorf("events: emit %s: %w", e.Kind, err)
	}
	notify()
	return nil
}

// CloudEvent is the structured-mode JSON form of an event (CloudEvents 1.0).
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Tenant          string          `json:"tenant"` // extension attribute
	Data            json.RawMessage `json:"data"`
}

// ToCloudEvent renders an outbox row.
func ToCloudEvent(row meta.OutboxEvent) CloudEvent {
	data := json.RawMessage(row.Data)
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return CloudEvent{
		SpecVersion:     "1.0",
		ID:              row.ID,
		Source:          Source,
		Type:            TypePrefix + row.Kind,
		Subject:         row.Subject,
		Time:            row.Time.UTC(),
		DataContentType: "application/json",
		Tenant:          row.TenantID,
		Data:            data,
	}
}

// wake is signalled (without blocking) whenever a row is emitted, so the
// relay in this process publishes without waiting for its poll interval.
var wake = make(chan struct{}, 1)

func notify() {
	select {
	case wake <- struct{}{}:
	default:
	}
}
