package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"gorm.io/gorm"
)

// Audit actions of reads that are only audited when denied.
const (
	actionRecordingRead = "recording.read"
	actionExportRead    = "export.read"
)

// recordingStatuses are the values of the status filter.
var recordingStatuses = []string{meta.StatusRecording, meta.StatusFinalizing, meta.StatusComplete,
	meta.StatusFailed, meta.StatusRecovered, meta.StatusDeleting, meta.StatusDeleted}

// RecordingJSON is a recording as the API shows it.
type RecordingJSON struct {
	ID             string         `json:"id"`
	Tenant         string         `json:"tenant"`
	SessionID      string         `json:"session_id"`
	ParticipantID  string         `json:"participant_id"`
	Department     string         `json:"department"`
	Status         string         `json:"status"`
	ContentType    string         `json:"content_type"`
	Codecs         []string       `json:"codecs"`
	StartedAt      time.Time      `json:"started_at"`
	EndedAt        *time.Time     `json:"ended_at,omitempty"`
	StartOffsetMS  int64          `json:"start_offset_ms"`
	DurationMS     int64          `json:"duration_ms"`
	Parts          int            `json:"parts"`
	Size           int64          `json:"size"`
	CipherSize     int64          `json:"cipher_size"`
	ManifestSHA256 string         `json:"manifest_sha256,omitempty"`
	FailureReason  string         `json:"failure_reason,omitempty"`
	Policy         string         `json:"policy,omitempty"`
	Transcribe     bool           `json:"transcribe"`
	RedactPII      bool           `json:"redact_pii"`
	Retention      RetentionJSON  `json:"retention"`
	Deleted        *DeletedJSON   `json:"deleted,omitempty"`
	Completeness   map[string]any `json:"completeness,omitempty"`
	Transcript     *TranscriptRef `json:"transcript,omitempty"`
	Links          Links          `json:"links"`
}

// RetentionJSON says how long a recording is kept.
type RetentionJSON struct {
	RetainUntil *time.Time `json:"retain_until,omitempty"`
	// LegalHolds lists the active legal holds covering the recording
	// (detail view only); while there is one it is never deleted.
	LegalHolds []string `json:"legal_holds,omitempty"`
	LegalHold  bool     `json:"legal_hold"`
}

// DeletedJSON describes a deleted (shredded) recording's tombstone.
type DeletedJSON struct {
	At     *time.Time `json:"at,omitempty"`
	Reason string     `json:"reason,omitempty"`
}

// TranscriptRef is a recording's transcript state.
type TranscriptRef struct {
	Status    string `json:"status"`
	Engine    string `json:"engine,omitempty"`
	Language  string `json:"language,omitempty"`
	Redacted  bool   `json:"redacted"`
	WordCount int    `json:"word_count"`
}

// Links are URLs of related resources.
type Links struct {
	Self       string `json:"self"`
	Media      string `json:"media,omitempty"`
	Transcript string `json:"transcript,omitempty"`
	Session    string `json:"session,omitempty"`
}

func recordingJSON(r meta.Recording) RecordingJSON {
	out := RecordingJSON{
		ID: r.ID, Tenant: r.TenantID, SessionID: r.SessionID, ParticipantID: r.ParticipantID, Department: r.Department,
		Status: r.Status, ContentType: r.ContentType, Codecs: r.Codecs.V, StartedAt: r.StartedAt, EndedAt: r.EndedAt,
		StartOffsetMS: r.StartOffsetMS, DurationMS: r.DurationMS, Parts: r.Parts, Size: r.Size, CipherSize: r.CipherSize,
		ManifestSHA256: r.ManifestSHA256, FailureReason: r.FailureReason, Policy: r.PolicyName,
		Transcribe: r.Transcribe, RedactPII: r.RedactPII,
		Retention: RetentionJSON{RetainUntil: r.RetainUntil},
		Links: Links{
			Self:       "/v1/recordings/" + r.ID,
			Media:      "/v1/recordings/" + r.ID + "/media",
			Transcript: "/v1/recordings/" + r.ID + "/transcript",
			Session:    "/v1/sessions/" + r.SessionID,
		},
	}
	if out.Codecs == nil {
		out.Codecs = []string{}
	}
	if r.Status == meta.StatusDeleted || r.DeletedAt != nil {
		out.Deleted = &DeletedJSON{At: r.DeletedAt, Reason: r.DeletedReason}
		out.Links.Media, out.Links.Transcript = "", ""
	}
	return out
}

// decisions loads and caches the stored policy decisions of sessions.
type decisions struct {
	db     *gorm.DB
	tenant string
	m      map[string]*policy.Decision
}

func newDecisions(db *gorm.DB, tenant string) *decisions {
	return &decisions{db: db, tenant: tenant, m: map[string]*policy.Decision{}}
}

// load fetches the decisions of the given sessions not yet cached.
func (d *decisions) load(ctx context.Context, sessionIDs []string) error {
	var missing []string
	for _, id := range sessionIDs {
		if _, ok := d.m[id]; !ok && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var rows []meta.Session
	if err := d.db.WithContext(ctx).Select("tenant_id", "id", "decision").
		Where("tenant_id = ? AND id IN ?", d.tenant, missing).Find(&rows).Error; err != nil {
		return fmt.Errorf("api: load session decisions: %w", err)
	}
	for _, id := range missing {
		d.m[id] = nil
	}
	for _, s := range rows {
		dec, err := decodeDecision(s.Decision.V)
		if err != nil {
			return fmt.Errorf("api: session %s: %w", s.ID, err)
		}
		d.m[s.ID] = dec
	}
	return nil
}

// forRecording returns the decision rec was made under: its own (the
// participant's decision, stored since schema version 2) or else its
// session's.
func (d *decisions) forRecording(ctx context.Context, rec meta.Recording) (*policy.Decision, error) {
	if len(rec.Decision.V) > 0 {
		return decodeDecision(rec.Decision.V)
	}
	return d.get(ctx, rec.SessionID)
}

func (d *decisions) get(ctx context.Context, sessionID string) (*policy.Decision, error) {
	if err := d.load(ctx, []string{sessionID}); err != nil {
		return nil, err
	}
	return d.m[sessionID], nil
}

// decodeDecision reads a stored policy.Decision (nil when none was stored).
func decodeDecision(m map[string]any) (*policy.Decision, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var dec policy.Decision
	if err := json.Unmarshal(b, &dec); err != nil {
		return nil, err
	}
	return &dec, nil
}

func recordingResource(r meta.Recording, dec *policy.Decision) auth.Resource {
	return auth.Resource{Tenant: r.TenantID, Department: r.Department, Policy: dec}
}

// loadRecording reads path parameter id and the recording row and checks
// perm on it. On any failure it answers (400, 404, 403) and returns false;
// action names the audit action of a denied or missing attempt.
func (v *V1) loadRecording(w http.ResponseWriter, r *http.Request, p auth.Principal, perm auth.Permission, action string) (meta.Recording, bool) {
	id, err := PathID(r, "id")
	if err != nil {
		writeRequestError(w, r, err)
		return meta.Recording{}, false
	}
	target := "recording:" + id
	var rec meta.Recording
	err = v.db.WithContext(r.Context()).Where("id = ?", id).Take(&rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		v.notFound(w, r, p, action, target)
		return rec, false
	}
	if err != nil {
		v.internal(w, r, "load recording", err)
		return rec, false
	}
	if rec.TenantID != p.Tenant {
		// Another tenant's id: answer exactly as for a missing one, without
		// touching that tenant's sessions.
		v.authorize(w, r, p, perm, auth.Resource{Tenant: rec.TenantID}, action, target)
		return rec, false
	}
	dec, err := newDecisions(v.db, rec.TenantID).forRecording(r.Context(), rec)
	if err != nil {
		v.internal(w, r, "load recording policy", err)
		return rec, false
	}
	if !v.authorize(w, r, p, perm, recordingResource(rec, dec), action, target) {
		return rec, false
	}
	return rec, true
}

// RecordingList is the answer of GET /v1/recordings.
type RecordingList struct {
	Recordings []RecordingJSON `json:"recordings"`
	NextCursor string          `json:"next_cursor,omitempty"`
}

// recordingFilter is the parsed query of GET /v1/recordings.
type recordingFilter struct {
	SessionID, ParticipantID, Department, Status string
	From, To                                     time.Time
	Limit                                        int
	After                                        string // cursor position: ids below it
}

func parseRecordingFilter(r *http.Request) (recordingFilter, error) {
	q, err := ParseQuery(r, "session_id", "participant_id", "department", "from", "to", "status", "limit", "cursor")
	if err != nil {
		return recordingFilter{}, err
	}
	var f recordingFilter
	if f.SessionID, err = q.ID("session_id"); err != nil {
		return f, err
	}
	if f.ParticipantID, err = q.ID("participant_id"); err != nil {
		return f, err
	}
	if f.Department, err = q.Text("department", 128); err != nil {
		return f, err
	}
	if f.Status, err = q.OneOf("status", recordingStatuses...); err != nil {
		return f, err
	}
	if f.From, err = q.Time("from"); err != nil {
		return f, err
	}
	if f.To, err = q.Time("to"); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, badField("to", "must be after from")
	}
	if f.Limit, err = q.Limit(DefaultLimit, MaxLimit); err != nil {
		return f, err
	}
	if f.After, err = q.Cursor("recordings"); err != nil {
		return f, err
	}
	return f, nil
}

// listScanRounds bounds how many batches one page may examine when the
// policies' access rules hide many rows; the page may then be shorter
// than limit, with a next_cursor.
const listScanRounds = 8

func (v *V1) listRecordings(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	f, err := parseRecordingFilter(r)
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	if !Authorize(w, r, p, auth.RecordingsRead, auth.Resource{Tenant: p.Tenant, Collection: true}) {
		return
	}
	page, next, err := v.queryRecordings(r.Context(), p, auth.RecordingsRead, f)
	if err != nil {
		v.internal(w, r, "list recordings", err)
		return
	}
	out := RecordingList{Recordings: make([]RecordingJSON, 0, len(page)), NextCursor: next}
	for _, rec := range page {
		out.Recordings = append(out.Recordings, recordingJSON(rec))
	}
	WriteJSON(w, http.StatusOK, out)
}

// queryRecordings returns one page of the recordings p may access with
// perm, newest first (by id, which sorts by creation time), and the cursor
// of the next page. Tenant and department scope are part of the query
// (auth.Scope); the policies' access rules are applied to each batch
// before the page is formed, never after it.
func (v *V1) queryRecordings(ctx context.Context, p auth.Principal, perm auth.Permission, f recordingFilter) ([]meta.Recording, string, error) {
	decs := newDecisions(v.db, p.Tenant)
	var page []meta.Recording
	after := f.After
	for range listScanRounds {
		q := auth.Scope(p).Where(v.db.WithContext(ctx).Model(&meta.Recording{}), "tenant_id", "department")
		if f.SessionID != "" {
			q = q.Where("session_id = ?", f.SessionID)
		}
		if f.ParticipantID != "" {
			q = q.Where("participant_id = ?", f.ParticipantID)
		}
		if f.Department != "" {
			q = q.Where("department = ?", f.Department)
		}
		if f.Status != "" {
			q = q.Where("status = ?", f.Status)
		}
		if !f.From.IsZero() {
			q = q.Where("started_at >= ?", f.From)
		}
		if !f.To.IsZero() {
			q = q.Where("started_at < ?", f.To)
		}
		if after != "" {
			q = q.Where("id < ?", after)
		}
		want := f.Limit - len(page)
		var batch []meta.Recording
		if err := q.Order("id DESC").Limit(want + 1).Find(&batch).Error; err != nil {
			return nil, "", fmt.Errorf("api: query recordings: %w", err)
		}
		more := len(batch) > want
		if more {
			batch = batch[:want]
		}
		sessions := make([]string, 0, len(batch))
		for _, rec := range batch {
			sessions = append(sessions, rec.SessionID)
		}
		if err := decs.load(ctx, sessions); err != nil {
			return nil, "", err
		}
		for _, rec := range batch {
			dec := decs.m[rec.SessionID]
			if len(rec.Decision.V) > 0 {
				own, err := decodeDecision(rec.Decision.V)
				if err != nil {
					return nil, "", fmt.Errorf("api: recording %s decision: %w", rec.ID, err)
				}
				dec = own
			}
			if auth.Authorize(p, perm, recordingResource(rec, dec)) == auth.Allow {
				page = append(page, rec)
			}
		}
		if !more {
			return page, "", nil
		}
		after = batch[len(batch)-1].ID
		if len(page) == f.Limit {
			break
		}
	}
	return page, EncodeCursor("recordings", after), nil
}

func (v *V1) getRecording(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	rec, ok := v.loadRecording(w, r, p, auth.RecordingsRead, actionRecordingRead)
	if !ok {
		return
	}
	out := recordingJSON(rec)
	out.Completeness = rec.Completeness.V
	ctx := r.Context()
	var tr []meta.Transcript
	if err := v.db.WithContext(ctx).Where("recording_id = ?", rec.ID).Limit(1).Find(&tr).Error; err != nil {
		v.internal(w, r, "load transcript state", err)
		return
	}
	if len(tr) == 1 {
		out.Transcript = &TranscriptRef{Status: tr[0].Status, Engine: tr[0].Engine, Language: tr[0].Language,
			Redacted: tr[0].Redacted, WordCount: tr[0].WordCount}
	}
	holds, err := v.holdsCovering(ctx, rec)
	if err != nil {
		v.internal(w, r, "load legal holds", err)
		return
	}
	out.Retention.LegalHolds, out.Retention.LegalHold = holds, len(holds) > 0
	WriteJSON(w, http.StatusOK, out)
}

// holdsCovering returns the ids of the active legal holds that name the
// recording's session or participant.
func (v *V1) holdsCovering(ctx context.Context, rec meta.Recording) ([]string, error) {
	var holds []meta.LegalHold
	if err := v.db.WithContext(ctx).Where("tenant_id = ? AND released_at IS NULL", rec.TenantID).
		Order("id").Find(&holds).Error; err != nil {
		return nil, err
	}
	var ids []string
	for _, h := range holds {
		if slices.Contains(h.SessionIDs.V, rec.SessionID) || slices.Contains(h.ParticipantIDs.V, rec.ParticipantID) {
			ids = append(ids, h.ID)
		}
	}
	return ids, nil
}

// maxRangeDetail bounds the Range header kept in an audit entry.
const maxRangeDetail = 200

func (v *V1) getMedia(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	rec, ok := v.loadRecording(w, r, p, auth.MediaRead, audit.ActionMediaRead)
	if !ok {
		return
	}
	target := "recording:" + rec.ID
	fail := func(status int, kind, detail string) {
		v.record(r, p, audit.ActionMediaRead, target, audit.OutcomeError, map[string]any{"status": status})
		WriteProblem(w, r, status, kind, detail)
	}
	switch rec.Status {
	case meta.StatusDeleted, meta.StatusDeleting:
		fail(http.StatusGone, "key-destroyed", "the recording was deleted: key destroyed")
		return
	case meta.StatusRecording, meta.StatusFinalizing:
		fail(http.StatusConflict, "not-finished", "the recording is still being written; its media can be read when it is complete")
		return
	}
	ctx := r.Context()
	opts := storage.ReadOptions{AllowIncomplete: rec.Status != meta.StatusComplete}
	cacheKey := ""
	if rec.ManifestSHA256 != "" && !readerCacheOff.Load() {
		cacheKey = rec.TenantID + "/" + rec.ID + "/" + rec.ManifestSHA256 + "/" + strconv.FormatBool(opts.AllowIncomplete)
	}
	// A cached Reader holds a copy of the data key: check on every request
	// that the key still exists.
	var dk []meta.DataKey
	if err := v.db.WithContext(ctx).Select("recording_id", "shredded_at", "wrapped").Where("recording_id = ?", rec.ID).Limit(1).Find(&dk).Error; err != nil {
		v.internal(w, r, "load data key state", err)
		return
	}
	if len(dk) == 1 && (dk[0].ShreddedAt != nil || len(dk[0].Wrapped) == 0) {
		v.readers.drop(cacheKey)
		fail(http.StatusGone, "key-destroyed", "the recording's data key was destroyed: key destroyed")
		return
	}
	cr, err := v.readers.get(ctx, cacheKey, func(ctx context.Context) (*storage.Reader, error) {
		return v.opts.Store.Open(ctx, rec.TenantID, rec.ID, opts)
	})
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrKeyDestroyed):
		fail(http.StatusGone, "key-destroyed", "the recording's data key was destroyed: key destroyed")
		return
	case errors.Is(err, storage.ErrIncomplete), storage.IsNotFound(err):
		fail(http.StatusConflict, "not-finished", "the recording has no complete manifest yet")
		return
	case storage.IsIntegrity(err):
		v.log.Error("recording failed verification", "recording_id", rec.ID, "err", err)
		fail(http.StatusInternalServerError, "integrity", "the stored recording failed its integrity check")
		return
	default:
		v.record(r, p, audit.ActionMediaRead, target, audit.OutcomeError, map[string]any{"status": http.StatusInternalServerError})
		v.internal(w, r, "open recording", err)
		return
	}
	defer v.readers.release(cr)
	rd := cr.rd
	m := rd.Manifest()
	details := map[string]any{"status": rec.Status, "size": m.PlainSize}
	if rg := r.Header.Get("Range"); rg != "" {
		if len(rg) > maxRangeDetail {
			rg = rg[:maxRangeDetail] + "…"
		}
		details["range"] = rg
	}
	if !v.recordOrFail(w, r, p, audit.ActionMediaRead, target, details) {
		return
	}
	h := w.Header()
	ct := rec.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("ETag", `"`+m.SHA256+`"`)
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Disposition", `inline; filename="`+rec.ID+extension(ct)+`"`)
	mr := newMediaReader(ctx, rd, m)
	defer mr.Close()
	http.ServeContent(w, r, "", time.Time{}, mr)
}

// extension returns the file extension of a recording's content type.
func extension(contentType string) string {
	switch contentType {
	case "audio/ogg":
		return ".ogg"
	case "video/webm", "audio/webm":
		return ".webm"
	case "video/x-matroska", "audio/x-matroska":
		return ".mkv"
	default:
		return ".bin"
	}
}
