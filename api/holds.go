package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/policy/retention"
	"github.com/custodian/custodian/storage/meta"
)

// ObjectHolder sets and clears the S3 Object Lock legal hold on every
// object of a recording (storage.Store implements it).
type ObjectHolder interface {
	SetLegalHold(ctx context.Context, tenant, recordingID string, on bool) error
}

// HoldsOptions configure the /v1/legal-holds handlers.
type HoldsOptions struct {
	DB *gorm.DB
	// Objects sets the Object Lock legal hold on held recordings' objects.
	Objects ObjectHolder
	// ObjectLock is true when the blob store enforces S3 Object Lock
	// (s3.object_lock set); without it holds live in the database only.
	ObjectLock bool
	// ObjectLockTimeout bounds setting or clearing Object Lock holds
	// within one request (default 2 minutes); per recording still being
	// written, 5 seconds.
	ObjectLockTimeout time.Duration
	Logger            *slog.Logger
	// Clock returns the current time (default time.Now).
	Clock func() time.Time
}

// Holds serves /v1/legal-holds.
type Holds struct {
	srv  *Server
	opts HoldsOptions
	log  *slog.Logger
}

// NewHolds returns the handlers; Register adds them to srv.
func NewHolds(srv *Server, opts HoldsOptions) *Holds {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.ObjectLockTimeout <= 0 {
		opts.ObjectLockTimeout = 2 * time.Minute
	}
	return &Holds{srv: srv, opts: opts, log: opts.Logger.With("component", "api.holds")}
}

// Register adds the legal hold routes.
func (h *Holds) Register() {
	for _, rt := range h.Routes() {
		h.srv.Handle(rt)
	}
}

// Routes lists the routes of the handlers.
func (h *Holds) Routes() []Route {
	return []Route{
		{Method: "POST", Pattern: "/v1/legal-holds", Perm: auth.HoldsWrite, Handler: h.create,
			Summary: "place a legal hold on sessions and participants (existing and future recordings)"},
		{Method: "GET", Pattern: "/v1/legal-holds", Perm: auth.HoldsRead, Handler: h.list,
			Summary: "list the tenant's legal holds, newest first"},
		{Method: "GET", Pattern: "/v1/legal-holds/{id}", Perm: auth.HoldsRead, Handler: h.get,
			Summary: "a legal hold and the recordings it covers"},
		{Method: "DELETE", Pattern: "/v1/legal-holds/{id}", Perm: auth.HoldsWrite, Handler: h.release,
			Summary: "release a legal hold (retention resumes)"},
	}
}

// HoldRequest is the body of POST /v1/legal-holds.
type HoldRequest struct {
	Name           string   `json:"name"`
	Reason         string   `json:"reason"`
	SessionIDs     []string `json:"session_ids"`
	ParticipantIDs []string `json:"participant_ids"`
}

// HoldStatus values.
const (
	HoldActive   = "active"
	HoldReleased = "released"
)

// Hold is a legal hold as the API shows it.
type Hold struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Reason         string     `json:"reason"`
	SessionIDs     []string   `json:"session_ids"`
	ParticipantIDs []string   `json:"participant_ids"`
	Status         string     `json:"status"` // active | released
	CreatedBy      string     `json:"created_by"`
	CreatedAt      time.Time  `json:"created_at"`
	ReleasedBy     string     `json:"released_by,omitempty"`
	ReleasedAt     *time.Time `json:"released_at,omitempty"`
	// Recordings counts the recordings the hold names (GET of one hold,
	// POST and DELETE only).
	Recordings *HoldRecordings `json:"recordings,omitempty"`
	// ObjectLock reports setting (POST) or clearing (DELETE) the S3 Object
	// Lock legal hold, when Object Lock is configured.
	ObjectLock *HoldObjectLock `json:"object_lock,omitempty"`
}

// HoldRecordings counts the recordings a hold names.
type HoldRecordings struct {
	// Kept are recordings the hold keeps (not deleted).
	Kept int `json:"kept"`
	// Deleted are recordings named by the hold that were deleted before it
	// (or claimed for deletion while it was being placed): a hold cannot
	// bring them back.
	Deleted int `json:"deleted"`
	// DeletedIDs lists up to 100 of them.
	DeletedIDs []string `json:"deleted_ids,omitempty"`
}

// HoldObjectLock reports Object Lock legal hold changes on recordings.
type HoldObjectLock struct {
	Recordings int `json:"recordings"` // recordings whose objects were updated
	Failed     int `json:"failed"`     // recordings that failed (logged; the database hold still applies)
	// Skipped are recordings still covered by another active hold (on
	// release) whose Object Lock hold stays on.
	Skipped int `json:"skipped,omitempty"`
}

func holdView(row meta.LegalHold) Hold {
	h := Hold{
		ID: row.ID, Name: row.Name, Reason: row.Reason,
		SessionIDs: row.SessionIDs.V, ParticipantIDs: row.ParticipantIDs.V,
		Status: HoldActive, CreatedBy: row.CreatedBy, CreatedAt: row.CreatedAt.UTC(),
		ReleasedBy: row.ReleasedBy,
	}
	if h.SessionIDs == nil {
		h.SessionIDs = []string{}
	}
	if h.ParticipantIDs == nil {
		h.ParticipantIDs = []string{}
	}
	if row.ReleasedAt != nil {
		at := row.ReleasedAt.UTC()
		h.Status, h.ReleasedAt = HoldReleased, &at
	}
	return h
}

func countRecordings(recs []meta.Recording) *HoldRecordings {
	c := &HoldRecordings{}
	for i := range recs {
		if retention.Lost(&recs[i]) {
			c.Deleted++
			if len(c.DeletedIDs) < 100 {
				c.DeletedIDs = append(c.DeletedIDs, recs[i].ID)
			}
		} else {
			c.Kept++
		}
	}
	return c
}

func (h *Holds) now() time.Time { return h.opts.Clock().UTC().Truncate(time.Microsecond) }

func (h *Holds) entry(r *http.Request, p auth.Principal, action string, row meta.LegalHold, details map[string]any) audit.Entry {
	return audit.Entry{
		Tenant: p.Tenant, Actor: p.Actor(), Role: string(p.Role), Action: action, Target: "legalhold:" + row.ID,
		Source: h.srv.SourceAddress(r), Outcome: audit.OutcomeSuccess, Details: details, Time: h.now(),
	}
}

func (h *Holds) create(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if _, err := ParseQuery(r); err != nil {
		writeRequestError(w, r, err)
		return
	}
	if !Authorize(w, r, p, auth.HoldsWrite, auth.Resource{Tenant: p.Tenant, Collection: true}) {
		return
	}
	var req HoldRequest
	if err := DecodeJSON(r, &req); err != nil {
		writeRequestError(w, r, err)
		return
	}
	now := h.now()
	row, err := retention.NewHold(retention.HoldSpec{
		Tenant: p.Tenant, Name: req.Name, Reason: req.Reason,
		SessionIDs: req.SessionIDs, ParticipantIDs: req.ParticipantIDs, CreatedBy: p.Actor(),
	}, now)
	var he *retention.HoldError
	if errors.As(err, &he) {
		writeRequestError(w, r, badField(he.Field, "%s", he.Reason))
		return
	}
	if err != nil {
		h.internal(w, r, "new legal hold", err)
		return
	}
	var covered []meta.Recording
	err = h.opts.DB.WithContext(r.Context()).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		recs, err := retention.LockCovered(tx, &row, now)
		if err != nil {
			return err
		}
		covered = recs
		counts := countRecordings(recs)
		if _, err := audit.AppendTx(tx, h.entry(r, p, audit.ActionLegalHoldApply, row, map[string]any{
			"name": row.Name, "reason": row.Reason, "session_ids": row.SessionIDs.V, "participant_ids": row.ParticipantIDs.V,
			"recordings_kept": counts.Kept, "recordings_deleted": counts.Deleted,
		})); err != nil {
			return err
		}
		return events.Emit(tx, events.Event{
			Tenant: p.Tenant, Kind: events.LegalHoldApplied, Subject: row.ID,
			Data: events.LegalHoldData{HoldID: row.ID, Name: row.Name, SessionIDs: row.SessionIDs.V,
				ParticipantIDs: row.ParticipantIDs.V, Actor: p.Actor(), At: now},
		})
	})
	if err != nil {
		h.internal(w, r, "store legal hold", err)
		return
	}
	view := holdView(row)
	view.Recordings = countRecordings(covered)
	if h.opts.ObjectLock {
		view.ObjectLock = h.setObjectHolds(r.Context(), p.Tenant, covered, nil, true)
	}
	h.log.Info("legal hold applied", "hold_id", row.ID, "tenant", p.Tenant, "recordings", view.Recordings.Kept, "actor", p.Actor())
	w.Header().Set("Location", "/v1/legal-holds/"+row.ID)
	WriteJSON(w, http.StatusCreated, view)
}

// setObjectHolds sets (on) or clears the Object Lock legal hold on the
// objects of recs that are not lost; when clearing, recordings that one of
// stillHeld covers are skipped. Failures are logged and counted: the
// database hold is what Custodian enforces; Object Lock protects the
// objects from everyone else.
func (h *Holds) setObjectHolds(ctx context.Context, tenant string, recs []meta.Recording, stillHeld []meta.LegalHold, on bool) *HoldObjectLock {
	res := &HoldObjectLock{}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.ObjectLockTimeout)
	defer cancel()
	for i := range recs {
		rec := &recs[i]
		if retention.Lost(rec) {
			continue
		}
		if !on && coveredByAny(stillHeld, rec) {
			res.Skipped++
			continue
		}
		if err := h.setObjectHold(ctx, tenant, rec, on); err != nil {
			res.Failed++
			h.log.Warn("object lock legal hold not changed", "recording_id", rec.ID, "on", on, "err", err)
			continue
		}
		res.Recordings++
	}
	return res
}

func (h *Holds) setObjectHold(ctx context.Context, tenant string, rec *meta.Recording, on bool) error {
	if rec.Status == meta.StatusRecording || rec.Status == meta.StatusFinalizing {
		// Still being written: set what is uploaded now; the recorder sets
		// the hold on the rest (see docs/governance.md).
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	return h.opts.Objects.SetLegalHold(ctx, tenant, rec.ID, on)
}

func coveredByAny(holds []meta.LegalHold, rec *meta.Recording) bool {
	for i := range holds {
		if retention.Covers(&holds[i], rec.SessionID, rec.ParticipantID) {
			return true
		}
	}
	return false
}

// loadHold loads a hold of the caller's tenant; it answers 404 itself for
// a missing hold or one of another tenant.
func (h *Holds) loadHold(w http.ResponseWriter, r *http.Request, p auth.Principal, perm auth.Permission) (meta.LegalHold, bool) {
	id, err := PathID(r, "id")
	if err != nil {
		writeRequestError(w, r, err)
		return meta.LegalHold{}, false
	}
	var row meta.LegalHold
	err = h.opts.DB.WithContext(r.Context()).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		if Authorize(w, r, p, perm, auth.Resource{Tenant: p.Tenant, Collection: true}) {
			WriteProblem(w, r, http.StatusNotFound, "not-found", "no such resource")
		}
		return row, false
	}
	if err != nil {
		h.internal(w, r, "load legal hold", err)
		return row, false
	}
	if !Authorize(w, r, p, perm, auth.Resource{Tenant: row.TenantID}) {
		return row, false
	}
	return row, true
}

func (h *Holds) get(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if _, err := ParseQuery(r); err != nil {
		writeRequestError(w, r, err)
		return
	}
	row, ok := h.loadHold(w, r, p, auth.HoldsRead)
	if !ok {
		return
	}
	recs, err := retention.CoveredRecordings(r.Context(), h.opts.DB, &row)
	if err != nil {
		h.internal(w, r, "legal hold recordings", err)
		return
	}
	view := holdView(row)
	view.Recordings = countRecordings(recs)
	WriteJSON(w, http.StatusOK, view)
}

// HoldList is a page of GET /v1/legal-holds.
type HoldList struct {
	Holds      []Hold `json:"holds"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func (h *Holds) list(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q, err := ParseQuery(r, "limit", "cursor", "status")
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	if !Authorize(w, r, p, auth.HoldsRead, auth.Resource{Tenant: p.Tenant, Collection: true}) {
		return
	}
	limit, err := q.Limit(DefaultLimit, MaxLimit)
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	before, err := q.Cursor("legal-holds")
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	status, err := q.OneOf("status", HoldActive, HoldReleased)
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	db := h.opts.DB.WithContext(r.Context()).Where("tenant_id = ?", p.Tenant)
	switch status {
	case HoldActive:
		db = db.Where("released_at IS NULL")
	case HoldReleased:
		db = db.Where("released_at IS NOT NULL")
	}
	if before != "" {
		db = db.Where("id < ?", before)
	}
	var rows []meta.LegalHold
	if err := db.Order("id DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		h.internal(w, r, "list legal holds", err)
		return
	}
	out := HoldList{Holds: make([]Hold, 0, min(len(rows), limit))}
	for i, row := range rows {
		if i == limit {
			out.NextCursor = EncodeCursor("legal-holds", rows[i-1].ID)
			break
		}
		out.Holds = append(out.Holds, holdView(row))
	}
	WriteJSON(w, http.StatusOK, out)
}

func (h *Holds) release(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if _, err := ParseQuery(r); err != nil {
		writeRequestError(w, r, err)
		return
	}
	row, ok := h.loadHold(w, r, p, auth.HoldsWrite)
	if !ok {
		return
	}
	if row.ReleasedAt != nil {
		// Releasing twice changes nothing.
		WriteJSON(w, http.StatusOK, holdView(row))
		return
	}
	now := h.now()
	released := false
	var covered []meta.Recording
	err := h.opts.DB.WithContext(r.Context()).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&meta.LegalHold{}).Where("id = ? AND released_at IS NULL", row.ID).
			Updates(map[string]any{"released_at": now, "released_by": p.Actor()})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return nil // released concurrently
		}
		released = true
		row.ReleasedAt, row.ReleasedBy = &now, p.Actor()
		recs, err := retention.CoveredRecordings(r.Context(), tx, &row)
		if err != nil {
			return err
		}
		covered = recs
		counts := countRecordings(recs)
		if _, err := audit.AppendTx(tx, h.entry(r, p, audit.ActionLegalHoldRelease, row, map[string]any{
			"name": row.Name, "session_ids": row.SessionIDs.V, "participant_ids": row.ParticipantIDs.V,
			"recordings_kept": counts.Kept,
		})); err != nil {
			return err
		}
		return events.Emit(tx, events.Event{
			Tenant: p.Tenant, Kind: events.LegalHoldReleased, Subject: row.ID,
			Data: events.LegalHoldData{HoldID: row.ID, Name: row.Name, SessionIDs: row.SessionIDs.V,
				ParticipantIDs: row.ParticipantIDs.V, Actor: p.Actor(), At: now},
		})
	})
	if err != nil {
		h.internal(w, r, "release legal hold", err)
		return
	}
	if !released {
		var cur meta.LegalHold
		if err := h.opts.DB.WithContext(r.Context()).Where("id = ?", row.ID).Take(&cur).Error; err != nil {
			h.internal(w, r, "load legal hold", err)
			return
		}
		WriteJSON(w, http.StatusOK, holdView(cur))
		return
	}
	view := holdView(row)
	view.Recordings = countRecordings(covered)
	if h.opts.ObjectLock {
		active, err := retention.ActiveHolds(r.Context(), h.opts.DB, p.Tenant)
		if err != nil {
			h.log.Warn("cannot list active holds; object lock holds left on (retention clears them)", "hold_id", row.ID, "err", err)
			view.ObjectLock = &HoldObjectLock{Failed: view.Recordings.Kept}
		} else {
			view.ObjectLock = h.setObjectHolds(r.Context(), p.Tenant, covered, active, false)
		}
	}
	h.log.Info("legal hold released", "hold_id", row.ID, "tenant", p.Tenant, "actor", p.Actor())
	WriteJSON(w, http.StatusOK, view)
}

func (h *Holds) internal(w http.ResponseWriter, r *http.Request, op string, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return
	}
	h.log.Error(op, "method", r.Method, "path", r.URL.Path, "err", fmt.Sprint(err))
	WriteProblem(w, r, http.StatusInternalServerError, "internal", "internal error")
}
