package recorder

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage/meta"
)

// Audit actions of the recorder.
const (
	actionConsent = audit.ActionConsentRecord
	actionPause   = audit.ActionSessionPause
	actionResume  = audit.ActionSessionResume
)

// Register adds the WHIP and session routes to srv.
func (r *Recorder) Register(srv *api.Server) {
	routes := []api.Route{
		{Method: "POST", Pattern: "/whip/{session}/{participant}", Perm: auth.Ingest, Handler: r.handleWHIPPost(srv),
			Summary: "WHIP: publish a participant's media (SDP offer in, answer out)"},
		{Method: "DELETE", Pattern: "/whip/{session}/{participant}/{resource}", Perm: auth.Ingest, Handler: r.handleWHIPDelete,
			Summary: "WHIP: end a participant connection; its recording is finalized"},
		{Method: "PATCH", Pattern: "/whip/{session}/{participant}/{resource}", Perm: auth.Ingest, Handler: r.handleWHIPPatch,
			Summary: "WHIP: trickle ICE and ICE restart (not supported: 405)"},
		{Method: "POST", Pattern: "/v1/sessions", Perm: auth.SessionsWrite, Handler: r.handleCreateSession(srv),
			Summary: "create a session ahead of its media; returns the policy decision and recording_status"},
		{Method: "GET", Pattern: "/v1/sessions", Perm: auth.SessionsRead, Handler: r.handleListSessions,
			Summary: "list sessions (filters status, department; limit, cursor)"},
		{Method: "GET", Pattern: "/v1/sessions/{id}", Perm: auth.SessionsRead, Handler: r.handleGetSession,
			Summary: "a session with its decision, live recording_status, participants and recordings"},
		{Method: "POST", Pattern: "/v1/sessions/{id}/end", Perm: auth.SessionsWrite, Handler: r.handleEndSession,
			Summary: "end a session: every participant connection ends and its recording is finalized"},
		{Method: "POST", Pattern: "/v1/sessions/{id}/pause", Perm: auth.SessionsWrite, Handler: r.handlePause(srv, true),
			Summary: "pause recording (PCI): media is not stored until resume; the gap is kept as silence"},
		{Method: "POST", Pattern: "/v1/sessions/{id}/resume", Perm: auth.SessionsWrite, Handler: r.handlePause(srv, false),
			Summary: "resume recording after a pause"},
		{Method: "POST", Pattern: "/v1/sessions/{id}/participants/{pid}/consent", Perm: auth.SessionsWrite, Handler: r.handleConsent(srv),
			Summary: "record a participant's consent (consent ledger)"},
	}
	for _, rt := range routes {
		srv.Handle(rt)
	}
	r.registerPull(srv)
}

// SessionDoc is the JSON form of a session.
type SessionDoc struct {
	ID         string            `json:"id"`
	Tenant     string            `json:"tenant"`
	Department string            `json:"department,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Status     string            `json:"status"` // active | ended
	// RecordingStatus is recording | not_recording | failed (live).
	RecordingStatus string `json:"recording_status"`
	// FailureReason is a fixed token when recording_status is failed:
	// storage_unavailable, no_media, recording_failed.
	FailureReason string           `json:"failure_reason,omitempty"`
	Paused        bool             `json:"paused"`
	PausedAt      *time.Time       `json:"paused_at,omitempty"`
	Decision      map[string]any   `json:"decision"`
	PolicyVersion int              `json:"policy_version"`
	StartedAt     time.Time        `json:"started_at"`
	EndedAt       *time.Time       `json:"ended_at,omitempty"`
	Participants  []ParticipantDoc `json:"participants,omitempty"`
	Recordings    []RecordingDoc   `json:"recordings,omitempty"`
	// Pulls are the session's WHEP pulls (join mode).
	Pulls []PullDoc `json:"pulls,omitempty"`
}

// ParticipantDoc is a participant of a session.
type ParticipantDoc struct {
	ID            string            `json:"id"`
	Name          string            `json:"name,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
	Consent       string            `json:"consent"`
	ConsentMethod string            `json:"consent_method,omitempty"`
	ConsentAt     *time.Time        `json:"consent_at,omitempty"`
	JoinedAt      *time.Time        `json:"joined_at,omitempty"`
	LeftAt        *time.Time        `json:"left_at,omitempty"`
	// Connections is the number of live media connections on this gateway.
	Connections int `json:"connections"`
}

// RecordingDoc summarizes a recording of a session.
type RecordingDoc struct {
	ID            string     `json:"id"`
	ParticipantID string     `json:"participant_id"`
	Status        string     `json:"status"`
	ContentType   string     `json:"content_type,omitempty"`
	Codecs        []string   `json:"codecs,omitempty"`
	StartedAt     time.Time  `json:"started_at"`
	EndedAt       *time.Time `json:"ended_at,omitempty"`
	StartOffsetMS int64      `json:"start_offset_ms"`
	DurationMS    int64      `json:"duration_ms"`
	Parts         int        `json:"parts"`
	FailureReason string     `json:"failure_reason,omitempty"`
	RetainUntil   *time.Time `json:"retain_until,omitempty"`
}

// ListDoc is a page of a list endpoint.
type ListDoc[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func (r *Recorder) sessionDoc(row meta.Session) SessionDoc {
	d := SessionDoc{
		ID: row.ID, Tenant: row.TenantID, Department: row.Department, Labels: row.Labels.V, Status: row.Status,
		RecordingStatus: row.RecordingStatus, FailureReason: row.FailureReason, Paused: row.Paused, PausedAt: row.PausedAt,
		Decision: row.Decision.V, PolicyVersion: row.PolicyVersion, StartedAt: row.StartedAt.UTC(), EndedAt: row.EndedAt,
	}
	if d.RecordingStatus == "" {
		d.RecordingStatus = meta.LiveNotRecording
	}
	r.mu.Lock()
	s := r.sessions[sessionKey{row.TenantID, row.ID}]
	r.mu.Unlock()
	if s != nil && row.Status == meta.SessionActive {
		s.mu.Lock()
		d.RecordingStatus = s.liveStatus()
		if s.failed {
			d.FailureReason = s.failReason
		}
		d.Paused = s.paused
		s.mu.Unlock()
	}
	return d
}

func (r *Recorder) fullSessionDoc(ctx context.Context, row meta.Session) (SessionDoc, error) {
	d := r.sessionDoc(row)
	var parts []meta.Participant
	if err := r.db.WithContext(ctx).Where("tenant_id = ? AND session_id = ?", row.TenantID, row.ID).Order("created_at, id").Find(&parts).Error; err != nil {
		return d, err
	}
	live := map[string]int{}
	r.mu.Lock()
	s := r.sessions[sessionKey{row.TenantID, row.ID}]
	r.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		for _, c := range s.conns {
			live[c.participant]++
		}
		s.mu.Unlock()
	}
	d.Participants = []ParticipantDoc{}
	for _, p := range parts {
		d.Participants = append(d.Participants, ParticipantDoc{
			ID: p.ID, Name: p.Name, Attributes: p.Attributes.V, Consent: p.Consent, ConsentMethod: p.ConsentMethod,
			ConsentAt: p.ConsentAt, JoinedAt: p.JoinedAt, LeftAt: p.LeftAt, Connections: live[p.ID],
		})
	}
	var recs []meta.Recording
	if err := r.db.WithContext(ctx).Where("tenant_id = ? AND session_id = ?", row.TenantID, row.ID).Order("started_at, id").Find(&recs).Error; err != nil {
		return d, err
	}
	d.Recordings = []RecordingDoc{}
	for _, x := range recs {
		d.Recordings = append(d.Recordings, RecordingDoc{
			ID: x.ID, ParticipantID: x.ParticipantID, Status: x.Status, ContentType: x.ContentType, Codecs: x.Codecs.V,
			StartedAt: x.StartedAt.UTC(), EndedAt: x.EndedAt, StartOffsetMS: x.StartOffsetMS, DurationMS: x.DurationMS,
			Parts: x.Parts, FailureReason: x.FailureReason, RetainUntil: x.RetainUntil,
		})
	}
	var err error
	d.Pulls, err = r.pullDocs(ctx, row.TenantID, row.ID)
	return d, err
}

// sessionRow loads a session the caller may act on with perm; it answers
// the request itself (404, 403, 500) and returns false otherwise.
func (r *Recorder) sessionRow(w http.ResponseWriter, req *http.Request, p auth.Principal, perm auth.Permission) (meta.Session, bool) {
	id := req.PathValue("id")
	var row meta.Session
	if !meta.ValidID(id) {
		problem(w, req, http.StatusNotFound, "not-found", "no such resource")
		return row, false
	}
	err := r.db.WithContext(req.Context()).Where("tenant_id = ? AND id = ?", p.Tenant, id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		problem(w, req, http.StatusNotFound, "not-found", "no such resource")
		return row, false
	}
	if err != nil {
		r.log.Error("load session", "session_id", id, "err", err)
		problem(w, req, http.StatusInternalServerError, "internal", "could not load the session")
		return row, false
	}
	if !api.Authorize(w, req, p, perm, auth.Resource{Tenant: row.TenantID, Department: row.Department}) {
		return row, false
	}
	return row, true
}

// decodeBody reads a JSON body strictly (unknown fields are errors).
func decodeBody(w http.ResponseWriter, req *http.Request, v any) bool {
	dec := json.NewDecoder(req.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			problem(w, req, http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("body over %d bytes", mbe.Limit))
			return false
		}
		problem(w, req, http.StatusBadRequest, "invalid-json", "request body: "+err.Error())
		return false
	}
	if dec.More() {
		problem(w, req, http.StatusBadRequest, "invalid-json", "request body: more than one JSON value")
		return false
	}
	return true
}

type createSessionBody struct {
	ID         string            `json:"id"`
	Department string            `json:"department"`
	Labels     map[string]string `json:"labels"`
}

func (r *Recorder) handleCreateSession(srv *api.Server) api.Handler {
	return func(w http.ResponseWriter, req *http.Request, p auth.Principal) {
		var b createSessionBody
		if !decodeBody(w, req, &b) {
			return
		}
		if b.ID == "" {
			b.ID = meta.NewID("ses")
		}
		var fields []api.FieldError
		if !meta.ValidID(b.ID) {
			fields = append(fields, api.FieldError{Field: "id", Reason: "1 to 128 letters, digits, '-', '_', '.', ':' or '@', not starting with '.'"})
		}
		if b.Department != "" && !meta.ValidID(b.Department) {
			fields = append(fields, api.FieldError{Field: "department", Reason: "1 to 128 letters, digits, '-', '_', '.', ':' or '@'"})
		}
		if len(b.Labels) > maxPairs {
			fields = append(fields, api.FieldError{Field: "labels", Reason: fmt.Sprintf("at most %d labels", maxPairs)})
		}
		for k, v := range b.Labels {
			if !meta.ValidID(k) || len(k) > 64 || len(v) > maxValueLen || strings.ContainsFunc(v, unicode.IsControl) || strings.Contains(v, ",") {
				fields = append(fields, api.FieldError{Field: "labels." + k, Reason: "keys are ids of at most 64 characters; values at most 256 printable characters without commas"})
			}
		}
		if len(fields) > 0 {
			api.WriteProblemDoc(w, req, api.Problem{Type: api.ProblemTypeBase + "invalid-request", Status: http.StatusBadRequest,
				Detail: "the session is not valid", Errors: fields})
			return
		}
		if b.Department == "" && p.Role == auth.RoleSupervisor {
			b.Department = p.Department
		}
		if d := auth.Authorize(p, auth.SessionsWrite, auth.Resource{Tenant: p.Tenant, Department: b.Department}); d != auth.Allow {
			problem(w, req, http.StatusForbidden, "forbidden", "not allowed to create sessions in this department")
			return
		}
		row := r.newSessionRow(p.Tenant, b.ID, b.Department, b.Labels, time.Now())
		if _, err := r.createSession(req.Context(), row); errors.Is(err, errSessionExists) {
			problem(w, req, http.StatusConflict, "session-exists", "session "+b.ID+" already exists")
			return
		} else if err != nil {
			r.log.Error("create session", "session_id", b.ID, "err", err)
			problem(w, req, http.StatusInternalServerError, "internal", "could not create the session")
			return
		}
		doc, err := r.fullSessionDoc(req.Context(), row)
		if err != nil {
			problem(w, req, http.StatusInternalServerError, "internal", "could not load the session")
			return
		}
		w.Header().Set("Location", "/v1/sessions/"+row.ID)
		api.WriteJSON(w, http.StatusCreated, doc)
	}
}

func (r *Recorder) handleGetSession(w http.ResponseWriter, req *http.Request, p auth.Principal) {
	row, ok := r.sessionRow(w, req, p, auth.SessionsRead)
	if !ok {
		return
	}
	doc, err := r.fullSessionDoc(req.Context(), row)
	if err != nil {
		r.log.Error("session document", "session_id", row.ID, "err", err)
		problem(w, req, http.StatusInternalServerError, "internal", "could not load the session")
		return
	}
	api.WriteJSON(w, http.StatusOK, doc)
}

// Limits of GET /v1/sessions.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
	cursorPrefix     = "s1:"
)

func encodeSessionCursor(row meta.Session) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(row.CreatedAt.UnixNano(), 10) + ":" + row.ID))
}

func decodeSessionCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(b), cursorPrefix) {
		return time.Time{}, "", errors.New("invalid cursor")
	}
	ns, id, ok := strings.Cut(strings.TrimPrefix(string(b), cursorPrefix), ":")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || !meta.ValidID(id) {
		return time.Time{}, "", errors.New("invalid cursor")
	}
	return time.Unix(0, n).UTC(), id, nil
}

func (r *Recorder) handleListSessions(w http.ResponseWriter, req *http.Request, p auth.Principal) {
	q := req.URL.Query()
	limit := defaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			problem(w, req, http.StatusBadRequest, "invalid-query", "limit: a positive integer")
			return
		}
		limit = min(n, maxListLimit)
	}
	db := auth.Scope(p).Where(r.db.WithContext(req.Context()).Model(&meta.Session{}), "tenant_id", "department")
	if v := q.Get("status"); v != "" {
		if v != meta.SessionActive && v != meta.SessionEnded {
			problem(w, req, http.StatusBadRequest, "invalid-query", "status: active or ended")
			return
		}
		db = db.Where("status = ?", v)
	}
	if v := q.Get("department"); v != "" {
		db = db.Where("department = ?", v)
	}
	if v := q.Get("recording_status"); v != "" {
		db = db.Where("recording_status = ?", v)
	}
	if c := q.Get("cursor"); c != "" {
		at, id, err := decodeSessionCursor(c)
		if err != nil {
			problem(w, req, http.StatusBadRequest, "invalid-cursor", "cursor: not one this endpoint issued")
			return
		}
		db = db.Where("created_at < ? OR (created_at = ? AND id < ?)", at, at, id)
	}
	var rows []meta.Session
	if err := db.Order("created_at DESC, id DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		r.log.Error("list sessions", "err", err)
		problem(w, req, http.StatusInternalServerError, "internal", "could not list sessions")
		return
	}
	out := ListDoc[SessionDoc]{Items: []SessionDoc{}}
	if len(rows) > limit {
		rows = rows[:limit]
		out.NextCursor = encodeSessionCursor(rows[limit-1])
	}
	for _, row := range rows {
		out.Items = append(out.Items, r.sessionDoc(row))
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func (r *Recorder) handleEndSession(w http.ResponseWriter, req *http.Request, p auth.Principal) {
	row, ok := r.sessionRow(w, req, p, auth.SessionsWrite)
	if !ok {
		return
	}
	if row.Status == meta.SessionEnded {
		problem(w, req, http.StatusConflict, "session-ended", "session "+row.ID+" has already ended")
		return
	}
	s, err := r.liveSession(req.Context(), row.TenantID, row.ID)
	if err == nil && s != nil {
		err = r.endSession(req.Context(), s, endAPI)
	}
	if errors.Is(err, errSessionEnded) {
		problem(w, req, http.StatusConflict, "session-ended", "session "+row.ID+" has already ended")
		return
	} else if err != nil {
		r.log.Error("end session", "session_id", row.ID, "err", err)
		problem(w, req, http.StatusInternalServerError, "internal", "could not end the session")
		return
	}
	r.writeReloadedSession(w, req, row)
}

// writeReloadedSession answers 200 with the session document of row,
// read again first so that it shows what the handler just changed.
func (r *Recorder) writeReloadedSession(w http.ResponseWriter, req *http.Request, row meta.Session) {
	_ = r.db.WithContext(req.Context()).Where("tenant_id = ? AND id = ?", row.TenantID, row.ID).Take(&row).Error
	doc, err := r.fullSessionDoc(req.Context(), row)
	if err != nil {
		problem(w, req, http.StatusInternalServerError, "internal", "could not load the session")
		return
	}
	api.WriteJSON(w, http.StatusOK, doc)
}

// handlePause closes (pause) or opens (resume) the gate of every
// connection of the session. The gate changes first, in memory, so no
// media after the request is stored; then the state and an audit entry
// are written.
func (r *Recorder) handlePause(srv *api.Server, pause bool) api.Handler {
	action := actionResume
	if pause {
		action = actionPause
	}
	return func(w http.ResponseWriter, req *http.Request, p auth.Principal) {
		row, ok := r.sessionRow(w, req, p, auth.SessionsWrite)
		if !ok {
			return
		}
		if row.Status == meta.SessionEnded {
			problem(w, req, http.StatusConflict, "session-ended", "session "+row.ID+" has ended")
			return
		}
		s, err := r.liveSession(req.Context(), row.TenantID, row.ID)
		if err != nil || s == nil {
			problem(w, req, http.StatusConflict, "session-ended", "session "+row.ID+" has ended")
			return
		}
		now := time.Now()
		s.mu.Lock()
		changed := s.paused != pause
		s.paused = pause
		n := 0
		for _, c := range s.conns {
			c.setGate(s.gateFor(c.decision, c.participant), now)
			n++
		}
		s.mu.Unlock()
		if changed {
			utc := now.UTC()
			upd := map[string]any{"paused": pause, "paused_at": &utc}
			if !pause {
				upd["paused_at"] = nil
			}
			err = r.db.WithContext(req.Context()).Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&meta.Session{}).Where("tenant_id = ? AND id = ?", row.TenantID, row.ID).Updates(upd).Error; err != nil {
					return err
				}
				return appendAudit(tx, p, srv.SourceAddress(req), action, "session:"+row.ID, map[string]any{
					"session_id": row.ID, "at": utc.Format(time.RFC3339Nano), "connections": n})
			})
			if err != nil {
				r.log.Error("store pause state", "session_id", row.ID, "pause", pause, "err", err)
				problem(w, req, http.StatusInternalServerError, "internal", "the gate changed but its state could not be stored")
				return
			}
			r.log.Info("session "+map[bool]string{true: "paused", false: "resumed"}[pause], "session_id", row.ID, "connections", n)
		}
		r.writeReloadedSession(w, req, row)
	}
}

type consentBody struct {
	Granted *bool  `json:"granted"`
	Method  string `json:"method"`
}

func (r *Recorder) handleConsent(srv *api.Server) api.Handler {
	return func(w http.ResponseWriter, req *http.Request, p auth.Principal) {
		row, ok := r.sessionRow(w, req, p, auth.SessionsWrite)
		if !ok {
			return
		}
		pid := req.PathValue("pid")
		if !meta.ValidID(pid) {
			problem(w, req, http.StatusBadRequest, "invalid-id", "participant id: 1 to 128 letters, digits, '-', '_', '.', ':' or '@'")
			return
		}
		var b consentBody
		if !decodeBody(w, req, &b) {
			return
		}
		if b.Granted == nil {
			api.WriteProblemDoc(w, req, api.Problem{Type: api.ProblemTypeBase + "invalid-request", Status: http.StatusBadRequest,
				Detail: "granted is required", Errors: []api.FieldError{{Field: "granted", Reason: "true or false"}}})
			return
		}
		if len(b.Method) > 64 || strings.ContainsFunc(b.Method, unicode.IsControl) {
			api.WriteProblemDoc(w, req, api.Problem{Type: api.ProblemTypeBase + "invalid-request", Status: http.StatusBadRequest,
				Detail: "method is too long", Errors: []api.FieldError{{Field: "method", Reason: "at most 64 printable characters"}}})
			return
		}
		state := policy.StateDenied
		if *b.Granted {
			state = policy.StateGranted
		}
		if row.Status == meta.SessionActive {
			// Make the session live so that its connections follow.
			if _, err := r.liveSession(req.Context(), row.TenantID, row.ID); err != nil && !errors.Is(err, errSessionEnded) {
				r.log.Warn("load session for consent", "session_id", row.ID, "err", err)
			}
		}
		if err := r.recordConsent(req.Context(), row.TenantID, row.ID, pid, state, b.Method, p, srv.SourceAddress(req)); err != nil {
			r.log.Error("consent", "session_id", row.ID, "err", err)
			problem(w, req, http.StatusInternalServerError, "internal", "could not record consent")
			return
		}
		var part meta.Participant
		if err := r.db.WithContext(req.Context()).Where("tenant_id = ? AND session_id = ? AND id = ?", row.TenantID, row.ID, pid).Take(&part).Error; err != nil {
			problem(w, req, http.StatusInternalServerError, "internal", "could not load the participant")
			return
		}
		api.WriteJSON(w, http.StatusOK, ParticipantDoc{ID: part.ID, Name: part.Name, Attributes: part.Attributes.V,
			Consent: part.Consent, ConsentMethod: part.ConsentMethod, ConsentAt: part.ConsentAt, JoinedAt: part.JoinedAt, LeftAt: part.LeftAt})
	}
}

func emitConsent(tx *gorm.DB, tenant, sid, pid, state, method string, at time.Time) error {
	return events.Emit(tx, events.Event{Tenant: tenant, Kind: events.ConsentRecorded, Subject: sid,
		Data: events.ConsentData{SessionID: sid, ParticipantID: pid, State: state, Method: method, At: at}})
}

func appendAudit(tx *gorm.DB, p auth.Principal, source, action, target string, details map[string]any) error {
	_, err := audit.AppendTx(tx, audit.Entry{Tenant: p.Tenant, Actor: p.Actor(), Role: string(p.Role), Action: action,
		Target: target, Source: source, Outcome: audit.OutcomeSuccess, Details: details})
	return err
}
