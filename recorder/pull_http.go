package recorder

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/recorder/whep"
	"github.com/custodian/custodian/storage/meta"
)

// Audit actions of pulls.
const (
	actionPullStart = "session.pull.start"
	actionPullStop  = "session.pull.stop"
)

// maxTokenLen bounds a WHEP bearer token.
const maxTokenLen = 8 << 10

// registerPull adds the pull routes (join mode, WHEP).
func (r *Recorder) registerPull(srv *api.Server) {
	srv.Handle(api.Route{Method: "POST", Pattern: "/v1/sessions/{id}/pull", Perm: auth.SessionsWrite, Handler: r.handlePullPost(srv),
		Summary: "pull: subscribe to a WHEP endpoint and record it as a participant of the session"})
	srv.Handle(api.Route{Method: "DELETE", Pattern: "/v1/sessions/{id}/pull/{pull_id}", Perm: auth.SessionsWrite, Handler: r.handlePullDelete(srv),
		Summary: "pull: stop a WHEP pull; its recording is finalized"})
}

type pullBody struct {
	WHEPURL       string            `json:"whep_url"`
	Token         string            `json:"token"`
	ParticipantID string            `json:"participant_id"`
	Name          string            `json:"name"`
	Attributes    map[string]string `json:"attributes"`
}

// validate checks the body; it never quotes the token or the URL's query.
func (b pullBody) validate() []api.FieldError {
	var fields []api.FieldError
	if _, err := whep.ParseURL(b.WHEPURL); err != nil {
		fields = append(fields, api.FieldError{Field: "whep_url", Reason: "an absolute http or https URL of a WHEP endpoint"})
	}
	if !meta.ValidID(b.ParticipantID) {
		fields = append(fields, api.FieldError{Field: "participant_id", Reason: "1 to 128 letters, digits, '-', '_', '.', ':' or '@', not starting with '.'"})
	}
	if len(b.Name) > maxNameLen || strings.ContainsFunc(b.Name, unicode.IsControl) {
		fields = append(fields, api.FieldError{Field: "name", Reason: fmt.Sprintf("at most %d printable characters", maxNameLen)})
	}
	if len(b.Token) > maxTokenLen || strings.ContainsFunc(b.Token, func(c rune) bool { return unicode.IsControl(c) || c == ' ' }) {
		fields = append(fields, api.FieldError{Field: "token", Reason: fmt.Sprintf("at most %d bytes, no spaces or control characters", maxTokenLen)})
	}
	if len(b.Attributes) > maxPairs {
		fields = append(fields, api.FieldError{Field: "attributes", Reason: fmt.Sprintf("at most %d attributes", maxPairs)})
	}
	for k, v := range b.Attributes {
		if !meta.ValidID(k) || len(k) > 64 || len(v) > maxValueLen || strings.ContainsFunc(v, unicode.IsControl) {
			fields = append(fields, api.FieldError{Field: "attributes." + k, Reason: "keys are ids of at most 64 characters; values at most 256 printable characters"})
		}
	}
	return fields
}

// handlePullPost is POST /v1/sessions/{id}/pull: the session (created if
// unknown, like a WHIP POST), the participant's policy decision, fail-closed
// admission, then the first subscription, synchronously: 201 once media is
// connected, or an error that says what the WHEP endpoint did.
func (r *Recorder) handlePullPost(srv *api.Server) api.Handler {
	return func(w http.ResponseWriter, req *http.Request, p auth.Principal) {
		ctx := req.Context()
		sid := req.PathValue("id")
		if !meta.ValidID(sid) {
			problem(w, req, http.StatusBadRequest, "invalid-id", "session id: 1 to 128 letters, digits, '-', '_', '.', ':' or '@', not starting with '.'")
			return
		}
		// An existing session outside the caller's scope is 404 before
		// anything about the request is looked at (ids cannot be probed).
		var existing []meta.Session
		if err := r.db.WithContext(ctx).Select("tenant_id", "id", "department").
			Where("tenant_id = ? AND id = ?", p.Tenant, sid).Limit(1).Find(&existing).Error; err != nil {
			r.log.Error("pull: session", "session_id", sid, "err", err)
			problem(w, req, http.StatusInternalServerError, "internal", "could not load the session")
			return
		}
		if len(existing) == 1 && !api.Authorize(w, req, p, auth.SessionsWrite, auth.Resource{Tenant: existing[0].TenantID, Department: existing[0].Department}) {
			return
		}
		var b pullBody
		if !decodeBody(w, req, &b) {
			return
		}
		if fields := b.validate(); len(fields) > 0 {
			api.WriteProblemDoc(w, req, api.Problem{Type: api.ProblemTypeBase + "invalid-request", Status: http.StatusBadRequest,
				Detail: "the pull is not valid", Errors: fields})
			return
		}
		if r.isClosing() {
			w.Header().Set("Retry-After", "5")
			problem(w, req, http.StatusServiceUnavailable, "shutting-down", "the gateway is shutting down")
			return
		}
		dept := ""
		if p.Role == auth.RoleSupervisor {
			dept = p.Department
		}
		s, created, err := r.sessionForWHIP(ctx, p, sid, dept, nil)
		switch {
		case errors.Is(err, errSessionEnded):
			problem(w, req, http.StatusConflict, "session-ended", "session "+sid+" has ended; use a new session id")
			return
		case err != nil:
			r.log.Error("pull: session", "session_id", sid, "err", err)
			problem(w, req, http.StatusInternalServerError, "internal", "could not open the session")
			return
		}
		if !created && !api.Authorize(w, req, p, auth.SessionsWrite, auth.Resource{Tenant: s.key.tenant, Department: s.dept}) {
			return
		}
		pl, err := r.startPull(ctx, s, b.ParticipantID, b.Name, b.WHEPURL, b.Token, b.Attributes)
		if pl != nil {
			r.auditPull(ctx, p, srv.SourceAddress(req), actionPullStart, pl, err)
		}
		if errors.Is(err, errPullExists) {
			problem(w, req, http.StatusConflict, "pull-exists", "participant "+b.ParticipantID+" already has an active pull in this session; DELETE it first")
			return
		}
		if err != nil {
			pe := classify(err)
			if pe.status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "5")
			}
			detail := pe.Error()
			if pl != nil {
				detail += " (pull " + pl.id + ")"
			}
			problem(w, req, pe.status, pe.code, detail)
			return
		}
		row, err := r.loadPull(ctx, s.key.tenant, s.key.id, pl.id)
		if err != nil {
			problem(w, req, http.StatusInternalServerError, "internal", "could not load the pull")
			return
		}
		w.Header().Set("Location", "/v1/sessions/"+url.PathEscape(sid)+"/pull/"+pl.id)
		api.WriteJSON(w, http.StatusCreated, r.pullDoc(row))
	}
}

// handlePullDelete is DELETE /v1/sessions/{id}/pull/{pull_id}: stops the
// pull (its recording is finalized before the answer). A pull that already
// ended answers 200 with its final state; one held by another gateway
// instance 409.
func (r *Recorder) handlePullDelete(srv *api.Server) api.Handler {
	return func(w http.ResponseWriter, req *http.Request, p auth.Principal) {
		srow, ok := r.sessionRow(w, req, p, auth.SessionsWrite)
		if !ok {
			return
		}
		id := req.PathValue("pull_id")
		if !meta.ValidID(id) {
			problem(w, req, http.StatusNotFound, "not-found", "no such pull")
			return
		}
		row, err := r.loadPull(req.Context(), srow.TenantID, srow.ID, id)
		if errors.Is(err, gorm.ErrRecordNotFound) {
			problem(w, req, http.StatusNotFound, "not-found", "no such pull")
			return
		} else if err != nil {
			r.log.Error("pull: load", "pull_id", id, "err", err)
			problem(w, req, http.StatusInternalServerError, "internal", "could not load the pull")
			return
		}
		pl := r.pulls.get(id)
		if pl == nil {
			if isPullStatusLive(row.Status) {
				problem(w, req, http.StatusConflict, "pull-elsewhere", "pull "+id+" is held by another gateway instance; send the DELETE to the instance that took its POST")
				return
			}
			api.WriteJSON(w, http.StatusOK, r.pullDoc(row))
			return
		}
		pl.stopWith(req.Context(), "stopped by DELETE")
		r.auditPull(req.Context(), p, srv.SourceAddress(req), actionPullStop, pl, nil)
		if row, err = r.loadPull(req.Context(), srow.TenantID, srow.ID, id); err != nil {
			problem(w, req, http.StatusInternalServerError, "internal", "could not load the pull")
			return
		}
		api.WriteJSON(w, http.StatusOK, r.pullDoc(row))
	}
}

// auditPull appends an audit entry for a pull's start (with its outcome)
// or stop. The URL is redacted and the token never included.
func (r *Recorder) auditPull(ctx context.Context, p auth.Principal, source, action string, pl *pull, failure error) {
	details := map[string]any{"session_id": pl.s.key.id, "participant_id": pl.participant, "pull_id": pl.id, "url": whep.Redact(pl.endpoint)}
	if failure != nil {
		details["error"] = classify(failure).Error()
	}
	outcome := audit.OutcomeSuccess
	if failure != nil {
		outcome = audit.OutcomeError
	}
	_, err := audit.AppendTx(r.db.WithContext(context.WithoutCancel(ctx)), audit.Entry{Tenant: p.Tenant, Actor: p.Actor(), Role: string(p.Role),
		Action: action, Target: "session:" + pl.s.key.id, Source: source, Outcome: outcome, Details: details})
	if err != nil {
		r.log.Warn("audit pull", "pull_id", pl.id, "err", err)
	}
}
