package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/storage/meta"
	"gorm.io/gorm"
)

// DefaultTokenTTL is the lifetime of a token created without "ttl".
const DefaultTokenTTL = 720 * time.Hour

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Role       string `json:"role"`
	Tenant     string `json:"tenant,omitempty"` // must be the caller's own; default it
	Department string `json:"department,omitempty"`
	Name       string `json:"name,omitempty"`
	// TTL is a Go duration ("720h") or whole days ("30d"); "0" means the
	// token never expires. Default 720h.
	TTL string `json:"ttl,omitempty"`
}

// CreatedToken is the answer of POST /v1/tokens: the token's plaintext,
// shown this once, and its description.
type CreatedToken struct {
	Token string `json:"token"`
	auth.TokenInfo
}

// TokenList is the answer of GET /v1/tokens.
type TokenList struct {
	Tokens     []auth.TokenInfo `json:"tokens"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// parseTTL reads a token lifetime: "" (default), "0", a Go duration or
// whole days.
func parseTTL(s string) (time.Duration, error) {
	switch strings.TrimSpace(s) {
	case "":
		return DefaultTokenTTL, nil
	case "0", "0s":
		return 0, nil
	}
	d, err := config.ParseRetention(s)
	if err != nil || d <= 0 {
		return 0, badField("ttl", "must be a positive Go duration such as 720h, whole days such as 30d, or 0 for no expiry")
	}
	return d, nil
}

// tokenSpec validates a token request of p into an auth.Spec.
func tokenSpec(p auth.Principal, req TokenRequest) (auth.Spec, error) {
	if req.Tenant == "" {
		req.Tenant = p.Tenant
	}
	role := auth.Role(req.Role)
	if !role.Valid() {
		return auth.Spec{}, badField("role", "must be one of admin, compliance, supervisor, auditor, ingest")
	}
	if err := checkText(req.Department, 128); err != nil {
		return auth.Spec{}, badField("department", "%s", err)
	}
	if err := checkText(req.Name, 200); err != nil {
		return auth.Spec{}, badField("name", "%s", err)
	}
	if role == auth.RoleSupervisor && req.Department == "" {
		return auth.Spec{}, badField("department", "a supervisor token needs a department")
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return auth.Spec{}, err
	}
	return auth.Spec{Tenant: req.Tenant, Role: role, Department: req.Department, Name: req.Name, TTL: ttl, CreatedBy: p.Actor()}, nil
}

func (v *V1) createToken(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var req TokenRequest
	if err := DecodeJSON(r, &req); err != nil {
		writeRequestError(w, r, err)
		return
	}
	spec, err := tokenSpec(p, req)
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	details := map[string]any{"role": string(spec.Role), "department": spec.Department, "ttl": spec.TTL.String()}
	if d := auth.CanCreateToken(p, spec.Tenant, spec.Role, spec.Department); d != auth.Allow {
		v.record(r, p, audit.ActionTokenCreate, "tenant:"+spec.Tenant, audit.OutcomeDenied, details)
		WriteProblem(w, r, http.StatusForbidden, "forbidden",
			"you may only create tokens of your own tenant for roles your own role covers")
		return
	}
	var plaintext string
	var row meta.Token
	err = v.db.WithContext(r.Context()).Transaction(func(tx *gorm.DB) error {
		var err error
		plaintext, row, err = auth.CreateToken(r.Context(), tx, spec)
		if err != nil {
			return err
		}
		_, err = audit.AppendTx(tx, v.entry(r, p, audit.ActionTokenCreate, "token:"+row.ID, audit.OutcomeSuccess, details))
		return err
	})
	if errors.Is(err, auth.ErrInvalidSpec) {
		writeRequestError(w, r, &RequestError{Reason: strings.TrimPrefix(err.Error(), "auth: create token: ")})
		return
	}
	if err != nil {
		v.internal(w, r, "create token", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", "/v1/tokens/"+row.ID)
	WriteJSON(w, http.StatusCreated, CreatedToken{Token: plaintext, TokenInfo: auth.Info(row, v.now())})
}

func (v *V1) listTokens(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q, err := ParseQuery(r, "limit", "cursor", "status")
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	limit, err := q.Limit(DefaultLimit, MaxLimit)
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	after, err := q.Cursor("tokens")
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	status, err := q.OneOf("status", auth.TokenActive, auth.TokenExpired, auth.TokenRevoked)
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	if !Authorize(w, r, p, auth.TokensRead, auth.Resource{Tenant: p.Tenant, Collection: true}) {
		return
	}
	now := v.now().UTC()
	db := v.db.WithContext(r.Context()).Where("tenant_id = ?", p.Tenant)
	if after != "" {
		db = db.Where("id > ?", after)
	}
	switch status {
	case auth.TokenActive:
		db = db.Where("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)", now)
	case auth.TokenExpired:
		db = db.Where("revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?", now)
	case auth.TokenRevoked:
		db = db.Where("revoked_at IS NOT NULL")
	}
	var rows []meta.Token
	if err := db.Order("id").Limit(limit + 1).Find(&rows).Error; err != nil {
		v.internal(w, r, "list tokens", err)
		return
	}
	out := TokenList{Tokens: []auth.TokenInfo{}}
	if len(rows) > limit {
		rows = rows[:limit]
		out.NextCursor = EncodeCursor("tokens", rows[limit-1].ID)
	}
	for _, t := range rows {
		out.Tokens = append(out.Tokens, auth.Info(t, now))
	}
	WriteJSON(w, http.StatusOK, out)
}

func (v *V1) revokeToken(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id, err := PathID(r, "id")
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	target := "token:" + id
	ctx := r.Context()
	var t meta.Token
	err = v.db.WithContext(ctx).Where("id = ?", id).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		v.notFound(w, r, p, audit.ActionTokenRevoke, target)
		return
	}
	if err != nil {
		v.internal(w, r, "load token", err)
		return
	}
	if d := auth.CanRevokeToken(p, t.TenantID, auth.Role(t.Role), t.Department); d != auth.Allow {
		v.record(r, p, audit.ActionTokenRevoke, target, audit.OutcomeDenied, map[string]any{"status": d.HTTPStatus()})
		if d == auth.NotFound {
			WriteProblem(w, r, http.StatusNotFound, "not-found", "no such resource")
		} else {
			WriteProblem(w, r, http.StatusForbidden, "forbidden", "you may only revoke tokens of roles your own role covers")
		}
		return
	}
	err = v.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if t, err = auth.RevokeToken(ctx, tx, t.TenantID, t.ID); err != nil {
			return err
		}
		_, err = audit.AppendTx(tx, v.entry(r, p, audit.ActionTokenRevoke, target, audit.OutcomeSuccess,
			map[string]any{"role": t.Role, "department": t.Department}))
		return err
	})
	if errors.Is(err, auth.ErrTokenNotFound) {
		v.notFound(w, r, p, audit.ActionTokenRevoke, target)
		return
	}
	if err != nil {
		v.internal(w, r, "revoke token", err)
		return
	}
	WriteJSON(w, http.StatusOK, auth.Info(t, v.now()))
}
