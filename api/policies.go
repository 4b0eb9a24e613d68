package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage/meta"
)

// PolicyHolder is the policy set in force and its version (the gateway's
// Policies, adapted in gateway/governance.go).
type PolicyHolder interface {
	// Policy returns the set in force and its database version (0: the
	// config file).
	Policy() (*policy.Set, int)
	// Install puts set in force as version unless a newer version already
	// is; it reports whether it did.
	Install(set *policy.Set, version int) bool
}

// PoliciesOptions configure the /v1/policies handlers.
type PoliciesOptions struct {
	DB     *gorm.DB
	Holder PolicyHolder
	// DefaultRetention is config retention.default, applied to every
	// accepted document (policy.Set.WithDefaultRetention).
	DefaultRetention time.Duration
	// OperatorTenant is the tenant whose admins manage the gateway-wide
	// document and read it whole (the first-start tenant, "default").
	// Principals of other tenants read only the rules that can apply to
	// their tenant and cannot replace the document. "" : every tenant's
	// admins manage the whole document (single-tenant deployments).
	OperatorTenant string
	// EngineConfigured reports whether this gateway's configuration has
	// the transcription engine a rule names (config
	// Transcription.Configured); a rule naming one it has not gets a
	// warning. Nil: no such check.
	EngineConfigured func(name string) bool
	Logger           *slog.Logger
	// Clock returns the current time (default time.Now).
	Clock func() time.Time
}

// Policies serves GET and PUT /v1/policies.
type Policies struct {
	srv  *Server
	opts PoliciesOptions
	log  *slog.Logger
}

// NewPolicies returns the handlers; Register adds them to srv.
func NewPolicies(srv *Server, opts PoliciesOptions) *Policies {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Policies{srv: srv, opts: opts, log: opts.Logger.With("component", "api.policies")}
}

// Register adds GET and PUT /v1/policies.
func (h *Policies) Register() {
	for _, rt := range h.Routes() {
		h.srv.Handle(rt)
	}
}

// Routes lists the routes of the handlers.
func (h *Policies) Routes() []Route {
	return []Route{
		{Method: "GET", Pattern: "/v1/policies", Perm: auth.PoliciesRead, Handler: h.get,
			Summary: "the policy document in force, its version and warnings"},
		{Method: "PUT", Pattern: "/v1/policies", Perm: auth.PoliciesWrite, Handler: h.put,
			Summary: "replace the policy document (YAML or JSON), validated whole"},
	}
}

// PolicyWarning is a warning about an accepted document.
type PolicyWarning struct {
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// PolicyDocument is the answer of GET and PUT /v1/policies.
type PolicyDocument struct {
	// Version is the stored version in force; 0 for the config file.
	Version int    `json:"version"`
	ETag    string `json:"etag"`
	// Source is "api" (a stored version) or "config" (the config file).
	Source string `json:"source"`
	// Scope is "gateway" (the whole document) or "tenant" (only the rules
	// that can apply to the caller's tenant).
	Scope string `json:"scope"`
	// Document is the YAML text: as submitted for a stored version read
	// whole, otherwise the canonical form of the rules shown.
	Document string `json:"document"`
	// Policies holds the same rules in JSON form, every default written out.
	Policies         json.RawMessage `json:"policies"`
	Rules            int             `json:"rules"`
	DefaultRetention string          `json:"default_retention"`
	Warnings         []PolicyWarning `json:"warnings"`
	SHA256           string          `json:"sha256,omitempty"` // of the stored document
	UpdatedAt        *time.Time      `json:"updated_at,omitempty"`
	UpdatedBy        string          `json:"updated_by,omitempty"`
}

// PolicyETag is the entity tag of a policy version.
func PolicyETag(version int) string { return `"policy-` + strconv.Itoa(version) + `"` }

func (h *Policies) get(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if _, err := ParseQuery(r); err != nil {
		writeRequestError(w, r, err)
		return
	}
	if !Authorize(w, r, p, auth.PoliciesRead, auth.Resource{Tenant: p.Tenant, Collection: true}) {
		return
	}
	set, version := h.opts.Holder.Policy()
	doc, err := h.document(r.Context(), p, set, version)
	if err != nil {
		h.internal(w, r, "load policy document", err)
		return
	}
	w.Header().Set("ETag", doc.ETag)
	w.Header().Set("Cache-Control", "no-store")
	if policyWantsYAML(r) {
		writePolicyYAML(w, http.StatusOK, doc.Document)
		return
	}
	WriteJSON(w, http.StatusOK, doc)
}

// wholeDocument reports whether p reads and writes the whole document.
func (h *Policies) wholeDocument(p auth.Principal) bool {
	return h.opts.OperatorTenant == "" || p.Tenant == h.opts.OperatorTenant
}

// document describes the set in force for p.
func (h *Policies) document(ctx context.Context, p auth.Principal, set *policy.Set, version int) (PolicyDocument, error) {
	doc := PolicyDocument{
		Version: version, ETag: PolicyETag(version), Source: "config", Scope: "gateway",
		DefaultRetention: policy.FormatRetention(set.DefaultRetention()), Warnings: []PolicyWarning{},
	}
	var row meta.PolicyVersion
	if version > 0 {
		doc.Source = "api"
		if err := h.opts.DB.WithContext(ctx).Where("version = ?", version).Take(&row).Error; err != nil {
			return doc, fmt.Errorf("policy version %d: %w", version, err)
		}
		at := row.CreatedAt.UTC()
		doc.UpdatedAt, doc.UpdatedBy = &at, row.Actor
		doc.SHA256 = policySHA256([]byte(row.Document))
	}
	shown := set
	if !h.wholeDocument(p) {
		doc.Scope = "tenant"
		var rules []policy.Rule
		for _, r := range set.Rules() {
			if r.Match.Tenant == "" || r.Match.Tenant == p.Tenant {
				rules = append(rules, r)
			}
		}
		s, err := policy.NewSet(rules...)
		if err != nil {
			return doc, fmt.Errorf("tenant view of policy version %d: %w", version, err)
		}
		shown = s.WithDefaultRetention(set.DefaultRetention())
	}
	if doc.Scope == "gateway" && version > 0 {
		doc.Document = row.Document
	} else {
		y, err := shown.YAML()
		if err != nil {
			return doc, err
		}
		doc.Document = string(y)
	}
	js, err := json.Marshal(shown)
	if err != nil {
		return doc, fmt.Errorf("encode policy: %w", err)
	}
	var wrapper struct {
		Policies json.RawMessage `json:"policies"`
	}
	if err := json.Unmarshal(js, &wrapper); err != nil {
		return doc, fmt.Errorf("encode policy: %w", err)
	}
	doc.Policies = wrapper.Policies
	doc.Rules = shown.Len()
	for _, wn := range shown.Warnings() {
		doc.Warnings = append(doc.Warnings, PolicyWarning{Line: wn.Line, Column: wn.Column, Rule: wn.Rule, Message: wn.Message})
	}
	doc.Warnings = append(doc.Warnings, h.engineWarnings(shown)...)
	return doc, nil
}

// engineWarnings warns about rules that name a transcription engine this
// gateway has no configuration for: their transcripts fail unless a
// worker elsewhere has it.
func (h *Policies) engineWarnings(set *policy.Set) []PolicyWarning {
	var ws []PolicyWarning
	if h.opts.EngineConfigured == nil {
		return ws
	}
	for _, r := range set.Rules() {
		if r.Transcribe && r.TranscriptionEngine != "" && !h.opts.EngineConfigured(r.TranscriptionEngine) {
			ws = append(ws, PolicyWarning{Line: r.Line, Column: r.Column, Rule: r.Name, Message: fmt.Sprintf(
				"transcription_engine %s is not configured on this gateway (transcription.%s): its transcripts fail with engine_unavailable unless a worker elsewhere has it",
				r.TranscriptionEngine, r.TranscriptionEngine)})
		}
	}
	return ws
}

// policyProblem is a problem document for a rejected policy document,
// with the position and reason as extension members.
type policyProblem struct {
	Problem
	Line   int                  `json:"line,omitempty"`
	Column int                  `json:"column,omitempty"`
	Rule   string               `json:"rule,omitempty"`
	Field  string               `json:"field,omitempty"`
	Reason string               `json:"reason"`
	Errors []policyProblemEntry `json:"errors"`
}

type policyProblemEntry struct {
	Field  string `json:"field,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason"`
}

func writePolicyProblem(w http.ResponseWriter, r *http.Request, pe *policy.ParseError) {
	pp := policyProblem{
		Problem: Problem{Type: ProblemTypeBase + "invalid-policy", Title: http.StatusText(http.StatusBadRequest),
			Status: http.StatusBadRequest, Detail: pe.Error() + "; the policy in force is unchanged", Instance: r.URL.Path},
		Line: pe.Line, Column: pe.Column, Rule: pe.Rule, Field: pe.Field, Reason: pe.Reason,
		Errors: []policyProblemEntry{{Field: pe.Field, Line: pe.Line, Column: pe.Column, Rule: pe.Rule, Reason: pe.Reason}},
	}
	b, _ := json.Marshal(pp)
	hd := w.Header()
	hd.Set("Content-Type", "application/problem+json")
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusBadRequest)
	w.Write(b)
}

// errPolicyConflict means another version was stored since the caller's
// If-Match (or, without one, in the middle of the transaction).
var errPolicyConflict = errors.New("api: policy version conflict")

func (h *Policies) put(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if _, err := ParseQuery(r); err != nil {
		writeRequestError(w, r, err)
		return
	}
	if !Authorize(w, r, p, auth.PoliciesWrite, auth.Resource{Tenant: p.Tenant, Collection: true}) {
		return
	}
	if !h.wholeDocument(p) {
		WriteProblem(w, r, http.StatusForbidden, "policy-scope", fmt.Sprintf(
			"the policy document is gateway-wide; it is managed by administrators of tenant %q", h.opts.OperatorTenant))
		return
	}
	body, err := readPolicyBody(r)
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	set, err := policy.Parse(body)
	var pe *policy.ParseError
	if errors.As(err, &pe) {
		writePolicyProblem(w, r, pe)
		return
	}
	if err != nil {
		writeRequestError(w, r, &RequestError{Kind: "invalid-policy", Reason: err.Error()})
		return
	}
	set = set.WithDefaultRetention(h.opts.DefaultRetention)
	ifMatch := strings.TrimSpace(r.Header.Get("If-Match"))

	var version, previous int
	for attempt := 0; ; attempt++ {
		version, previous, err = h.store(r.Context(), r, p, body, set, ifMatch)
		if !errors.Is(err, errPolicyConflict) || ifMatch != "" || attempt == 2 {
			break
		}
	}
	switch {
	case errors.Is(err, errPolicyConflict):
		_, cur := h.opts.Holder.Policy()
		if latest, lerr := latestPolicyVersion(r.Context(), h.opts.DB); lerr == nil {
			cur = latest
		}
		w.Header().Set("ETag", PolicyETag(cur))
		WriteProblem(w, r, http.StatusPreconditionFailed, "policy-version-conflict",
			fmt.Sprintf("the policy document changed (version %d is current); fetch it, merge and retry with If-Match: %s", cur, PolicyETag(cur)))
		return
	case err != nil:
		h.internal(w, r, "store policy version", err)
		return
	}
	h.opts.Holder.Install(set, version)
	h.log.Info("policy updated", "version", version, "previous", previous, "rules", set.Len(),
		"warnings", len(set.Warnings()), "actor", p.Actor())
	doc, err := h.document(r.Context(), p, set, version)
	if err != nil {
		h.internal(w, r, "describe policy", err)
		return
	}
	w.Header().Set("ETag", doc.ETag)
	WriteJSON(w, http.StatusOK, doc)
}

// store writes the new version, its audit entry and its policy.updated
// event in one transaction.
func (h *Policies) store(ctx context.Context, r *http.Request, p auth.Principal, body []byte, set *policy.Set, ifMatch string) (version, previous int, err error) {
	now := h.opts.Clock().UTC().Truncate(time.Microsecond)
	sum := policySHA256(body)
	err = h.opts.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		latest, err := latestPolicyVersion(ctx, tx)
		if err != nil {
			return err
		}
		if ifMatch != "" && ifMatch != "*" && !policyETagMatches(ifMatch, PolicyETag(latest)) {
			return errPolicyConflict
		}
		previous, version = latest, latest+1
		row := meta.PolicyVersion{Version: version, Document: string(body), Actor: p.Actor(), CreatedAt: now}
		if err := tx.Create(&row).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errPolicyConflict
			}
			return err
		}
		warnings := make([]string, 0, len(set.Warnings()))
		for _, w := range set.Warnings() {
			warnings = append(warnings, w.String())
		}
		if _, err := audit.AppendTx(tx, audit.Entry{
			Tenant: p.Tenant, Actor: p.Actor(), Role: string(p.Role), Action: audit.ActionPolicyUpdate,
			Target: "policy:" + strconv.Itoa(version), Source: h.srv.SourceAddress(r), Outcome: audit.OutcomeSuccess,
			Details: map[string]any{
				"version": version, "previous_version": previous, "sha256": sum,
				"rules": set.Len(), "warnings": warnings, "bytes": len(body),
			},
			Time: now,
		}); err != nil {
			return err
		}
		return events.Emit(tx, events.Event{
			Tenant: p.Tenant, Kind: events.PolicyUpdated, Subject: "policy:" + strconv.Itoa(version),
			Data: events.PolicyData{Version: version, SHA256: sum, Rules: set.Len(), Actor: p.Actor(), At: now},
		})
	})
	return version, previous, err
}

// latestPolicyVersion returns the highest stored version (0: none).
func latestPolicyVersion(ctx context.Context, db *gorm.DB) (int, error) {
	var rows []meta.PolicyVersion
	if err := db.WithContext(ctx).Select("version").Order("version DESC").Limit(1).Find(&rows).Error; err != nil {
		return 0, fmt.Errorf("latest policy version: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	return rows[0].Version, nil
}

// policyETagMatches compares an If-Match list with an entity tag (strong
// comparison; a weak tag never matches).
func policyETagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		if strings.TrimSpace(t) == etag {
			return true
		}
	}
	return false
}

// readPolicyBody reads a PUT body: YAML (application/yaml, text/yaml,
// application/x-yaml) or JSON (application/json), at most the router's
// body limit.
func readPolicyBody(r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		ok := err == nil && (mt == "application/yaml" || mt == "text/yaml" || mt == "application/x-yaml" ||
			mt == "text/x-yaml" || mt == "application/json" || strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+yaml"))
		if !ok {
			return nil, &RequestError{Status: http.StatusUnsupportedMediaType, Kind: "unsupported-media-type",
				Reason: "the body must be a policy document as application/yaml or application/json"}
		}
	}
	if r.Body == nil {
		return nil, &RequestError{Reason: "a policy document is required"}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &RequestError{Status: http.StatusRequestEntityTooLarge, Kind: "body-too-large",
				Reason: fmt.Sprintf("the body exceeds %d bytes", mbe.Limit)}
		}
		return nil, &RequestError{Reason: "reading the body failed"}
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, &RequestError{Reason: "a policy document is required (to remove every rule send `policies: []`)"}
	}
	return body, nil
}

// policyWantsYAML reports whether the request prefers a YAML answer.
func policyWantsYAML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml":
			return true
		case "application/json", "application/*", "*/*":
			return false
		}
	}
	return false
}

func writePolicyYAML(w http.ResponseWriter, status int, doc string) {
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("Content-Length", strconv.Itoa(len(doc)))
	w.WriteHeader(status)
	w.Write([]byte(doc))
}

func (h *Policies) internal(w http.ResponseWriter, r *http.Request, op string, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return
	}
	h.log.Error(op, "method", r.Method, "path", r.URL.Path, "err", err)
	WriteProblem(w, r, http.StatusInternalServerError, "internal", "internal error")
}

func policySHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
