package api

import (
	"crypto/ed25519"
	"errors"
	"net/http"
	"time"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/storage/meta"
)

// AuditEntryJSON is an audit entry as the API shows it.
type AuditEntryJSON struct {
	Seq      int64          `json:"seq"`
	Tenant   string         `json:"tenant_id"`
	Time     time.Time      `json:"time"`
	Actor    string         `json:"actor"`
	Role     string         `json:"role"`
	Action   string         `json:"action"`
	Target   string         `json:"target"`
	Source   string         `json:"source"`
	Outcome  string         `json:"outcome"`
	Details  map[string]any `json:"details,omitempty"`
	PrevHash string         `json:"prev_hash"`
	Hash     string         `json:"hash"`
}

func auditEntryJSON(e meta.AuditEntry) AuditEntryJSON {
	return AuditEntryJSON{
		Seq: e.Seq, Tenant: e.TenantID, Time: e.Time, Actor: e.Actor, Role: e.Role, Action: e.Action,
		Target: e.Target, Source: e.Source, Outcome: e.Outcome, Details: e.Details.V, PrevHash: e.PrevHash, Hash: e.Hash,
	}
}

// AuditList is the answer of GET /v1/audit.
type AuditList struct {
	Entries    []AuditEntryJSON `json:"entries"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// parseAuditFilter reads the query of GET /v1/audit into an audit.Filter
// of tenant.
func parseAuditFilter(r *http.Request, tenant string) (audit.Filter, error) {
	q, err := ParseQuery(r, "actor", "action", "target", "outcome", "from", "to", "limit", "cursor")
	if err != nil {
		return audit.Filter{}, err
	}
	f := audit.Filter{Tenant: tenant, Cursor: q.String("cursor")}
	for _, fld := range []struct {
		name string
		dst  *string
		max  int
	}{{"actor", &f.Actor, 300}, {"action", &f.Action, 64}, {"target", &f.Target, 300}} {
		if *fld.dst, err = q.Text(fld.name, fld.max); err != nil {
			return f, err
		}
	}
	if f.Outcome, err = q.OneOf("outcome", audit.OutcomeSuccess, audit.OutcomeDenied, audit.OutcomeError); err != nil {
		return f, err
	}
	if f.From, err = q.Time("from"); err != nil {
		return f, err
	}
	if f.To, err = q.Time("to"); err != nil {
		return f, err
	}
	if f.Limit, err = q.Limit(audit.DefaultListLimit, audit.MaxListLimit); err != nil {
		return f, err
	}
	return f, nil
}

func (v *V1) listAudit(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	f, err := parseAuditFilter(r, p.Tenant)
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	if !Authorize(w, r, p, auth.AuditRead, auth.Resource{Tenant: p.Tenant, Collection: true}) {
		return
	}
	rows, next, err := audit.List(r.Context(), v.db, f)
	if errors.Is(err, audit.ErrInvalidCursor) {
		writeRequestError(w, r, badField("cursor", "invalid cursor: use next_cursor of the previous page unchanged"))
		return
	}
	if err != nil {
		v.internal(w, r, "list audit entries", err)
		return
	}
	details := map[string]any{"count": len(rows)}
	for k, val := range map[string]string{"actor": f.Actor, "action": f.Action, "target": f.Target, "outcome": f.Outcome} {
		if val != "" {
			details[k] = val
		}
	}
	if !v.recordOrFail(w, r, p, audit.ActionAuditRead, "audit", details) {
		return
	}
	out := AuditList{Entries: make([]AuditEntryJSON, 0, len(rows)), NextCursor: next}
	for _, e := range rows {
		out.Entries = append(out.Entries, auditEntryJSON(e))
	}
	WriteJSON(w, http.StatusOK, out)
}

// AuditVerifyResult is the answer of GET /v1/audit/verify: the result of
// audit.Verify (ok, entries, head_seq, head_hash, first_bad_seq, reason,
// detail) and the last signed checkpoint and the key checkpoints must be
// signed with.
type AuditVerifyResult struct {
	audit.Result
	LastCheckpoint *CheckpointJSON `json:"last_checkpoint,omitempty"`
	SigningKey     *SigningKeyJSON `json:"signing_key,omitempty"`
}

// CheckpointJSON is a signed statement of the chain head.
type CheckpointJSON struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	KeyID     string    `json:"key_id"`
	PublicKey string    `json:"public_key"`
	Signature string    `json:"signature"`
	Time      time.Time `json:"time"`
}

// SigningKeyJSON names the gateway's Ed25519 signing key.
type SigningKeyJSON struct {
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"` // base64, standard encoding
}

func (v *V1) verifyAudit(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if _, err := ParseQuery(r); err != nil {
		writeRequestError(w, r, err)
		return
	}
	if !Authorize(w, r, p, auth.AuditRead, auth.Resource{Tenant: p.Tenant, Collection: true}) {
		return
	}
	ctx := r.Context()
	var opts []audit.VerifyOption
	var key *SigningKeyJSON
	if v.opts.SigningKey != nil {
		priv, keyID, err := v.opts.SigningKey(ctx)
		if err != nil {
			v.internal(w, r, "signing key", err)
			return
		}
		pub := priv.Public().(ed25519.PublicKey)
		clear(priv)
		opts = append(opts, audit.WithTrustedKey(keyID, pub))
		key = &SigningKeyJSON{KeyID: keyID, PublicKey: encodeKey(pub)}
	}
	// One verification at a time: it reads the whole chain.
	v.verifyMu.Lock()
	res, err := audit.Verify(ctx, v.db, opts...)
	v.verifyMu.Unlock()
	if err != nil {
		v.internal(w, r, "verify audit chain", err)
		return
	}
	out := AuditVerifyResult{Result: res, SigningKey: key}
	var cps []meta.AuditCheckpoint
	if err := v.db.WithContext(ctx).Order("seq DESC").Limit(1).Find(&cps).Error; err != nil {
		v.internal(w, r, "load checkpoint", err)
		return
	}
	if len(cps) == 1 {
		c := cps[0]
		out.LastCheckpoint = &CheckpointJSON{Seq: c.Seq, Hash: c.Hash, KeyID: c.KeyID, PublicKey: c.PublicKey, Signature: c.Signature, Time: c.Time}
	}
	details := map[string]any{"ok": res.OK, "head_seq": res.HeadSeq}
	if !res.OK {
		details["first_bad_seq"], details["reason"] = res.FirstBadSeq, string(res.Reason)
	}
	if !v.recordOrFail(w, r, p, audit.ActionAuditVerify, "audit", details) {
		return
	}
	WriteJSON(w, http.StatusOK, out)
}
