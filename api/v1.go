package api

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/storage"
	"gorm.io/gorm"
)

// ContentStore is what the /v1 handlers need from the encrypted object
// store (storage.Store implements it).
type ContentStore interface {
	// Open verifies a recording's manifest and returns a Reader.
	Open(ctx context.Context, tenant, recordingID string, opts storage.ReadOptions) (*storage.Reader, error)
	// GetObject returns the plaintext of a sealed named object.
	GetObject(ctx context.Context, tenant, recordingID, name string) ([]byte, error)
}

// BundleStore keeps encrypted export bundles (ciphertext to their
// recipient): storage.Blob implements it.
type BundleStore interface {
	Put(ctx context.Context, key string, data []byte, opts storage.PutOptions) error
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, error)
	Delete(ctx context.Context, key string) error
}

// SigningKeyFunc returns the gateway's Ed25519 key for audit checkpoints
// and export manifests, and its key id.
type SigningKeyFunc func(ctx context.Context) (ed25519.PrivateKey, string, error)

// SealedFunc returns the sealed bytes of an object key (the spool's copy
// while it is not uploaded, else the blob store's), to compare with the
// hash recorded in the database before the object is trusted.
type SealedFunc func(ctx context.Context, key string) ([]byte, error)

// V1Options configure the /v1 handlers.
type V1Options struct {
	DB    *gorm.DB
	Store ContentStore
	// Sealed fetches sealed objects for hash checks of transcripts.
	Sealed SealedFunc
	// Bundles stores export bundles.
	Bundles    BundleStore
	SigningKey SigningKeyFunc
	// Owner names this instance in export job leases.
	Owner  string
	Logger *slog.Logger
	// Clock returns the current time (default time.Now).
	Clock func() time.Time
	// RejectAuditRate bounds audit entries for refused requests (401, 403
	// from the router) per second; more are counted and the count is added
	// to the next entry. Default 20.
	RejectAuditRate int
}

// V1 serves the /v1 API of SPEC section 9 that is not owned by the
// recorder, governance or search: recordings, media, transcripts, tokens,
// the audit log, exports and the OpenAPI document.
type V1 struct {
	srv  *Server
	db   *gorm.DB
	opts V1Options
	log  *slog.Logger
	now  func() time.Time

	verifyMu sync.Mutex // one audit verification at a time

	rejectMu         sync.Mutex
	rejectWindow     time.Time
	rejectCount      int
	rejectSuppressed int

	exportWake chan struct{}
	readers    *readerCache
}

// NewV1 returns the handlers; Register adds them to srv.
func NewV1(srv *Server, opts V1Options) *V1 {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.RejectAuditRate <= 0 {
		opts.RejectAuditRate = 20
	}
	return &V1{
		srv: srv, db: opts.DB, opts: opts, now: opts.Clock,
		log:        opts.Logger.With("component", "api"),
		exportWake: make(chan struct{}, 1),
		readers:    newReaderCache(opts.Clock),
	}
}

// Close releases what V1 holds in memory (opened recordings and their
// data keys). Requests still running finish first with what they hold.
func (v *V1) Close() error {
	v.readers.close()
	return nil
}

// Register adds every route of V1 to its server and makes it audit
// requests the router refuses.
func (v *V1) Register() {
	for _, rt := range v.routes() {
		v.srv.Handle(rt)
	}
	v.srv.OnReject(v.auditReject)
}

func (v *V1) routes() []Route {
	return []Route{
		{Method: "GET", Pattern: "/v1/recordings", Perm: auth.RecordingsRead, Handler: v.listRecordings,
			Summary: "list recordings the caller may read"},
		{Method: "GET", Pattern: "/v1/recordings/{id}", Perm: auth.RecordingsRead, Handler: v.getRecording,
			Summary: "recording metadata, completeness report, retention and links"},
		{Method: "GET", Pattern: "/v1/recordings/{id}/media", Perm: auth.MediaRead, Handler: v.getMedia,
			Summary: "decrypted media, streamed, with HTTP Range"},
		{Method: "GET", Pattern: "/v1/recordings/{id}/transcript", Perm: auth.TranscriptsRead, Handler: v.getRecordingTranscript,
			Summary: "a recording's transcript as JSON, WebVTT or text"},
		{Method: "GET", Pattern: "/v1/recordings/{id}/transcript/unredacted", Perm: auth.TranscriptsUnredacted, Handler: v.getUnredactedTranscript,
			Summary: "the unredacted copy of a recording's transcript (policy keep_unredacted)"},
		{Method: "GET", Pattern: "/v1/sessions/{id}/transcript", Perm: auth.TranscriptsRead, Handler: v.getSessionTranscript,
			Summary: "a session's transcript, every participant merged and speaker-labelled"},
		{Method: "POST", Pattern: "/v1/tokens", Perm: auth.TokensWrite, Handler: v.createToken,
			Summary: "create an API token (the plaintext is returned once)"},
		{Method: "GET", Pattern: "/v1/tokens", Perm: auth.TokensRead, Handler: v.listTokens,
			Summary: "list the tenant's tokens"},
		{Method: "DELETE", Pattern: "/v1/tokens/{id}", Perm: auth.TokensWrite, Handler: v.revokeToken,
			Summary: "revoke a token"},
		{Method: "GET", Pattern: "/v1/audit", Perm: auth.AuditRead, Handler: v.listAudit,
			Summary: "audit log entries, newest first"},
		{Method: "GET", Pattern: "/v1/audit/verify", Perm: auth.AuditRead, Handler: v.verifyAudit,
			Summary: "verify the audit hash chain and its signed checkpoints"},
		{Method: "POST", Pattern: "/v1/exports", Perm: auth.ExportsWrite, Handler: v.createExport,
			Summary: "start an eDiscovery export encrypted to an age recipient"},
		{Method: "GET", Pattern: "/v1/exports/{id}", Perm: auth.ExportsRead, Handler: v.getExport,
			Summary: "export status and progress"},
		{Method: "GET", Pattern: "/v1/exports/{id}/download", Perm: auth.ExportsRead, Handler: v.downloadExport,
			Summary: "download a finished export bundle (age-encrypted zip)"},
		{Method: "GET", Pattern: "/v1/openapi.yaml", Handler: serveOpenAPI,
			Summary: "this API's OpenAPI 3.1 document"},
	}
}

// entry builds an audit entry for a request of p.
func (v *V1) entry(r *http.Request, p auth.Principal, action, target, outcome string, details map[string]any) audit.Entry {
	return audit.Entry{
		Tenant: p.Tenant, Actor: p.Actor(), Role: string(p.Role), Action: action, Target: target,
		Source: v.srv.SourceAddress(r), Outcome: outcome, Details: details, Time: v.now(),
	}
}

// record appends an audit entry for a request; reads call it before the
// response body starts and answer 503 when it fails (nothing is served
// unaudited).
func (v *V1) record(r *http.Request, p auth.Principal, action, target, outcome string, details map[string]any) error {
	_, err := audit.Append(r.Context(), v.db, v.entry(r, p, action, target, outcome, details))
	if err != nil {
		v.log.Error("audit append failed", "action", action, "target", target, "err", err)
	}
	return err
}

// recordOrFail records a successful read and answers 503 itself when that
// fails; it returns whether the handler may go on.
func (v *V1) recordOrFail(w http.ResponseWriter, r *http.Request, p auth.Principal, action, target string, details map[string]any) bool {
	if err := v.record(r, p, action, target, audit.OutcomeSuccess, details); err != nil {
		WriteProblem(w, r, http.StatusServiceUnavailable, "audit-unavailable", "the access could not be recorded in the audit log; try again")
		return false
	}
	return true
}

// authorize applies auth.Authorize to one item and, when it is not
// allowed, records a denied audit entry and answers 403 or 404.
func (v *V1) authorize(w http.ResponseWriter, r *http.Request, p auth.Principal, perm auth.Permission, res auth.Resource, action, target string) bool {
	d := auth.Authorize(p, perm, res)
	if d == auth.Allow {
		return true
	}
	v.record(r, p, action, target, audit.OutcomeDenied, map[string]any{"status": d.HTTPStatus()})
	return Authorize(w, r, p, perm, res)
}

// notFound answers 404 for a missing item and records the attempt when it
// is an audited action, with the same answer as an item out of scope.
func (v *V1) notFound(w http.ResponseWriter, r *http.Request, p auth.Principal, action, target string) {
	if action != "" {
		v.record(r, p, action, target, audit.OutcomeError, map[string]any{"status": http.StatusNotFound})
	}
	WriteProblem(w, r, http.StatusNotFound, "not-found", "no such resource")
}

// internal logs err and answers 500 without details.
func (v *V1) internal(w http.ResponseWriter, r *http.Request, op string, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	v.log.Error(op, "method", r.Method, "path", r.URL.Path, "err", err)
	WriteProblem(w, r, http.StatusInternalServerError, "internal", "internal error")
}

// auditReject is the router's RejectFunc: refused requests are audit
// entries too, at most RejectAuditRate a second (more are counted into the
// next entry), so unauthenticated floods cannot grow the chain without
// bound.
func (v *V1) auditReject(r *http.Request, rt Route, p auth.Principal, status int, err error) {
	v.rejectMu.Lock()
	now := v.now()
	if now.Sub(v.rejectWindow) >= time.Second {
		v.rejectWindow, v.rejectCount = now, 0
	}
	if v.rejectCount >= v.opts.RejectAuditRate {
		v.rejectSuppressed++
		v.rejectMu.Unlock()
		return
	}
	v.rejectCount++
	suppressed := v.rejectSuppressed
	v.rejectSuppressed = 0
	v.rejectMu.Unlock()

	details := map[string]any{"status": status, "method": rt.Method, "route": rt.Pattern}
	if rt.Perm != "" {
		details["permission"] = string(rt.Perm)
	}
	if suppressed > 0 {
		details["suppressed_before"] = suppressed
	}
	e := audit.Entry{Source: v.srv.SourceAddress(r), Outcome: audit.OutcomeDenied, Target: "route:" + rt.Method + " " + rt.Pattern, Details: details, Time: now}
	if status == http.StatusUnauthorized {
		e.Action, e.Actor = "auth.reject", "anonymous"
		details["reason"] = rejectReason(err)
	} else {
		e.Action, e.Tenant, e.Actor, e.Role = "request.deny", p.Tenant, p.Actor(), string(p.Role)
	}
	// Detached from the request: the answer goes out whatever happens here.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if _, err := audit.Append(ctx, v.db, e); err != nil {
		v.log.Error("audit append failed", "action", e.Action, "err", err)
	}
}

func rejectReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrNoToken):
		return "missing"
	case errors.Is(err, auth.ErrExpired):
		return "expired"
	case errors.Is(err, auth.ErrRevoked):
		return "revoked"
	case errors.Is(err, auth.ErrInvalidToken):
		return "invalid"
	default:
		return "unknown"
	}
}
