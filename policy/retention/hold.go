package retention

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/custodian/custodian/storage/meta"
)

// ErrInvalidHold is matched (errors.Is) by every *HoldError.
var ErrInvalidHold = errors.New("retention: invalid legal hold")

// HoldError says which field of a legal hold request is unacceptable.
type HoldError struct {
	Field  string // name, reason, session_ids, participant_ids
	Reason string
}

func (e *HoldError) Error() string {
	return fmt.Sprintf("retention: legal hold: %s: %s", e.Field, e.Reason)
}

// Unwrap lets errors.Is find ErrInvalidHold.
func (e *HoldError) Unwrap() error { return ErrInvalidHold }

// Limits of a legal hold.
const (
	MaxHoldNameLen   = 200  // characters
	MaxHoldReasonLen = 4000 // characters
	MaxHoldIDs       = 1000 // session ids, and participant ids, each
)

// HoldIDPrefix prefixes legal hold ids (meta.NewID).
const HoldIDPrefix = "hold"

// HoldSpec is a request for a legal hold.
type HoldSpec struct {
	Tenant         string
	Name           string
	Reason         string
	SessionIDs     []string
	ParticipantIDs []string
	CreatedBy      string // actor, e.g. auth.Principal.Actor()
}

// NewHold validates spec and returns the hold row to insert (a new id,
// CreatedAt now, ids de-duplicated and sorted). Name and reason are
// required and trimmed; control characters are refused (the reason may
// have line breaks and tabs). A hold must name at least
// one session or participant, every id must satisfy meta.ValidID, and
// each list holds at most MaxHoldIDs ids.
func NewHold(spec HoldSpec, now time.Time) (meta.LegalHold, error) {
	name := strings.TrimSpace(spec.Name)
	reason := strings.TrimSpace(spec.Reason)
	switch {
	case name == "":
		return meta.LegalHold{}, &HoldError{"name", "is required"}
	case utf8.RuneCountInString(name) > MaxHoldNameLen:
		return meta.LegalHold{}, &HoldError{"name", fmt.Sprintf("longer than %d characters", MaxHoldNameLen)}
	case hasControl(name, false):
		return meta.LegalHold{}, &HoldError{"name", "contains control characters"}
	case reason == "":
		return meta.LegalHold{}, &HoldError{"reason", "is required (the matter, order or request the hold serves)"}
	case utf8.RuneCountInString(reason) > MaxHoldReasonLen:
		return meta.LegalHold{}, &HoldError{"reason", fmt.Sprintf("longer than %d characters", MaxHoldReasonLen)}
	case hasControl(reason, true):
		return meta.LegalHold{}, &HoldError{"reason", "contains control characters"}
	case !utf8.ValidString(name) || !utf8.ValidString(reason):
		return meta.LegalHold{}, &HoldError{"name", "is not valid UTF-8"}
	}
	sessions, err := cleanIDs("session_ids", spec.SessionIDs)
	if err != nil {
		return meta.LegalHold{}, err
	}
	participants, err := cleanIDs("participant_ids", spec.ParticipantIDs)
	if err != nil {
		return meta.LegalHold{}, err
	}
	if len(sessions) == 0 && len(participants) == 0 {
		return meta.LegalHold{}, &HoldError{"session_ids", "a hold must name at least one session or participant"}
	}
	if !meta.ValidID(spec.Tenant) {
		return meta.LegalHold{}, &HoldError{"tenant", "invalid"}
	}
	return meta.LegalHold{
		ID:             meta.NewID(HoldIDPrefix),
		TenantID:       spec.Tenant,
		Name:           name,
		Reason:         reason,
		SessionIDs:     meta.NewJSON(sessions),
		ParticipantIDs: meta.NewJSON(participants),
		CreatedBy:      spec.CreatedBy,
		CreatedAt:      dbTime(now),
	}, nil
}

func hasControl(s string, allowNewlines bool) bool {
	for _, r := range s {
		if unicode.IsControl(r) && !(allowNewlines && (r == '\n' || r == '\t' || r == '\r')) {
			return true
		}
	}
	return false
}

func cleanIDs(field string, ids []string) ([]string, error) {
	if len(ids) > MaxHoldIDs {
		return nil, &HoldError{field, fmt.Sprintf("more than %d ids", MaxHoldIDs)}
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !meta.ValidID(id) {
			return nil, &HoldError{field, fmt.Sprintf("%q is not a valid id (1-128 letters, digits, - _ . : @)", truncate(id, 64))}
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Active reports whether h has not been released.
func Active(h *meta.LegalHold) bool { return h.ReleasedAt == nil }

// Covers reports whether h names the session or the participant (whether
// or not h is still active). Participant ids match in every session of
// the hold's tenant: a hold on participant "alice" keeps all of alice's
// recordings.
func Covers(h *meta.LegalHold, sessionID, participantID string) bool {
	return (sessionID != "" && slices.Contains(h.SessionIDs.V, sessionID)) ||
		(participantID != "" && slices.Contains(h.ParticipantIDs.V, participantID))
}

// ActiveHolds returns the tenant's holds that are not released, oldest
// first.
func ActiveHolds(ctx context.Context, db *gorm.DB, tenant string) ([]meta.LegalHold, error) {
	var holds []meta.LegalHold
	err := db.WithContext(ctx).Where("tenant_id = ? AND released_at IS NULL", tenant).
		Order("created_at, id").Find(&holds).Error
	if err != nil {
		return nil, fmt.Errorf("retention: active holds of %s: %w", tenant, err)
	}
	return holds, nil
}

// HoldsCovering returns the active holds of the tenant that cover the
// session or participant. The database narrows the candidates with LIKE
// on the JSON id lists (ids cannot contain '%' or '"'; '_' and SQLite's
// case folding only widen the match), Covers decides exactly.
func HoldsCovering(ctx context.Context, db *gorm.DB, tenant, sessionID, participantID string) ([]meta.LegalHold, error) {
	var conds []string
	var args []any
	if meta.ValidID(sessionID) {
		conds, args = append(conds, "session_ids LIKE ?"), append(args, `%"`+sessionID+`"%`)
	}
	if meta.ValidID(participantID) {
		conds, args = append(conds, "participant_ids LIKE ?"), append(args, `%"`+participantID+`"%`)
	}
	if len(conds) == 0 {
		return nil, nil
	}
	var holds []meta.LegalHold
	err := db.WithContext(ctx).Where("tenant_id = ? AND released_at IS NULL", tenant).
		Where("("+strings.Join(conds, " OR ")+")", args...).Order("created_at, id").Find(&holds).Error
	if err != nil {
		return nil, fmt.Errorf("retention: holds of %s covering %s/%s: %w", tenant, sessionID, participantID, err)
	}
	return slices.DeleteFunc(holds, func(h meta.LegalHold) bool {
		return !Covers(&h, sessionID, participantID)
	}), nil
}

// Held reports whether an active legal hold of the tenant covers the
// session or the participant. The recorder calls it when a recording
// starts and passes the answer as storage.WriterOptions.LegalHold, so the
// recording's objects carry the S3 Object Lock legal hold from the start
// (see HoldForWrite). On error, treat the recording as held: a spurious
// hold only delays deletion, a missed one could lose evidence.
func Held(ctx context.Context, db *gorm.DB, tenant, sessionID, participantID string) (bool, error) {
	holds, err := HoldsCovering(ctx, db, tenant, sessionID, participantID)
	if err != nil {
		return false, err
	}
	return len(holds) > 0, nil
}

// HoldForWrite is Held that fails safe: it returns true when the lookup
// fails (and the error, for the log). Use its answer for
// storage.WriterOptions.LegalHold.
func HoldForWrite(ctx context.Context, db *gorm.DB, tenant, sessionID, participantID string) (bool, error) {
	held, err := Held(ctx, db, tenant, sessionID, participantID)
	if err != nil {
		return true, err
	}
	return held, nil
}

// coveredQuery selects the tenant's recordings named by h.
func coveredQuery(db *gorm.DB, h *meta.LegalHold) *gorm.DB {
	q := db.Model(&meta.Recording{}).Where("tenant_id = ?", h.TenantID)
	ss, ps := h.SessionIDs.V, h.ParticipantIDs.V
	switch {
	case len(ss) > 0 && len(ps) > 0:
		return q.Where("(session_id IN ? OR participant_id IN ?)", ss, ps)
	case len(ss) > 0:
		return q.Where("session_id IN ?", ss)
	case len(ps) > 0:
		return q.Where("participant_id IN ?", ps)
	default:
		return q.Where("1 = 0")
	}
}

// CoveredRecordings returns the recordings h names, in any status
// (deleted ones included: their tombstones), oldest first.
func CoveredRecordings(ctx context.Context, db *gorm.DB, h *meta.LegalHold) ([]meta.Recording, error) {
	var recs []meta.Recording
	if err := coveredQuery(db.WithContext(ctx), h).Order("started_at, id").Find(&recs).Error; err != nil {
		return nil, fmt.Errorf("retention: recordings of hold %s: %w", h.ID, err)
	}
	return recs, nil
}

// LockCovered runs inside the transaction that inserts (or releases) h:
// it touches (updated_at) every recording h names that is not deleted and
// returns them all. Touching takes the rows' write locks, which serializes
// the hold against a Worker's claim of the same recording on PostgreSQL
// (SQLite transactions are serialized anyway): a claim that committed
// first shows as status deleting in the result; a claim that comes later
// sees the hold and backs off.
func LockCovered(tx *gorm.DB, h *meta.LegalHold, now time.Time) ([]meta.Recording, error) {
	err := coveredQuery(tx, h).Where("status <> ?", meta.StatusDeleted).
		UpdateColumn("updated_at", dbTime(now)).Error
	if err != nil {
		return nil, fmt.Errorf("retention: lock recordings of hold %s: %w", h.ID, err)
	}
	var recs []meta.Recording
	if err := coveredQuery(tx, h).Order("started_at, id").Find(&recs).Error; err != nil {
		return nil, fmt.Errorf("retention: recordings of hold %s: %w", h.ID, err)
	}
	return recs, nil
}

// Lost reports whether a covered recording can no longer be kept by a
// hold: deleted, or claimed for deletion (key destroyed or about to be).
func Lost(r *meta.Recording) bool {
	return r.Status == meta.StatusDeleted || r.Status == StatusDeleting || r.DeletedAt != nil
}

// dbTime is t as stored: UTC, microsecond precision (PostgreSQL's), so
// that comparisons agree on SQLite (text) and PostgreSQL (timestamps).
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
