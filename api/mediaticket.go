package api

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/storage/meta"
	"gorm.io/gorm"
)

// Media tickets let a browser's <audio> and <video> elements, which cannot
// send an Authorization header, stream one recording: a caller with
// media:read asks POST /v1/recordings/{id}/media-ticket and gets a URL
// /v1/media/{ticket} that is valid for that recording only, for a short
// time, and only while the credential that asked is still valid. Requests
// on the URL are served by the media endpoint itself (HTTP Range, audit
// entry per request) as the principal that asked.

// ActionMediaTicket is the audit action of issuing a media ticket.
const ActionMediaTicket = "media.ticket"

// DefaultMediaTicketTTL is how long a media ticket is valid by default.
const DefaultMediaTicketTTL = 10 * time.Minute

// mediaTicketDomain separates ticket signatures from every other use of
// the gateway's signing key (audit checkpoints, export manifests).
const mediaTicketDomain = "custodian-media-ticket-v1\x00"

// maxTicketLen bounds the path segment parsed as a ticket.
const maxTicketLen = 2048

// Errors of media tickets.
var (
	// ErrTicketInvalid: the ticket is malformed or its signature does not
	// verify.
	ErrTicketInvalid = errors.New("api: invalid media ticket")
	// ErrTicketExpired: the ticket is past its expiry.
	ErrTicketExpired = errors.New("api: media ticket expired")
)

// MediaTicketOptions configure media tickets.
type MediaTicketOptions struct {
	DB *gorm.DB
	// Key signs and verifies tickets: the gateway's Ed25519 signing key,
	// the same on every instance, so any instance serves a ticket another
	// one issued.
	Key ed25519.PrivateKey
	// TTL is the lifetime of a ticket (default DefaultMediaTicketTTL). A
	// ticket never outlives the credential that asked for it.
	TTL    time.Duration
	Clock  func() time.Time
	Logger *slog.Logger
}

// MediaTickets issues and serves media tickets.
type MediaTickets struct {
	srv   *Server
	opts  MediaTicketOptions
	log   *slog.Logger
	media Handler
}

// NewMediaTickets returns the ticket endpoints; Register adds them to srv.
func NewMediaTickets(srv *Server, opts MediaTicketOptions) *MediaTickets {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultMediaTicketTTL
	}
	return &MediaTickets{srv: srv, opts: opts, log: opts.Logger.With("component", "media_tickets")}
}

// mediaPattern is the media route the tickets are served by.
const mediaPattern = "/v1/recordings/{id}/media"

// Register adds POST /v1/recordings/{id}/media-ticket and GET
// /v1/media/{ticket}. The media route (GET /v1/recordings/{id}/media) must
// be registered already: ticket requests are answered by its handler.
func (m *MediaTickets) Register() error {
	for _, rt := range m.srv.Routes() {
		if rt.Method == "GET" && rt.Pattern == mediaPattern {
			m.media = rt.Handler
		}
	}
	if m.media == nil {
		return fmt.Errorf("api: media tickets: route GET %s is not registered", mediaPattern)
	}
	if len(m.opts.Key) != ed25519.PrivateKeySize {
		return errors.New("api: media tickets: no signing key")
	}
	m.srv.Handle(Route{Method: "POST", Pattern: "/v1/recordings/{id}/media-ticket", Perm: auth.MediaRead, Handler: m.issue,
		Summary: "a short-lived URL that streams one recording's media without an Authorization header (for <audio>/<video>)"})
	serve := Route{Method: "GET", Pattern: "/v1/media/{ticket}",
		Summary: "a recording's media through a media ticket (HTTP Range, as the media endpoint)"}
	serve.Handler = func(w http.ResponseWriter, r *http.Request, _ auth.Principal) { m.serve(w, r, serve) }
	m.srv.Handle(serve)
	return nil
}

// ticketClaims is the signed content of a ticket.
type ticketClaims struct {
	Recording  string `json:"rec"`
	Tenant     string `json:"ten"`
	Role       string `json:"role"`
	Department string `json:"dept,omitempty"`
	Source     string `json:"src"`
	TokenID    string `json:"tid,omitempty"`
	Subject    string `json:"sub,omitempty"`
	Name       string `json:"name,omitempty"`
	Expires    int64  `json:"exp"` // Unix milliseconds
}

func (c ticketClaims) principal() auth.Principal {
	return auth.Principal{TokenID: c.TokenID, Subject: c.Subject, Name: c.Name, Tenant: c.Tenant,
		Role: auth.Role(c.Role), Department: c.Department, Source: c.Source}
}

// MediaTicket is the answer of POST /v1/recordings/{id}/media-ticket.
type MediaTicket struct {
	RecordingID string    `json:"recording_id"`
	URL         string    `json:"url"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func (m *MediaTickets) issue(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id, err := PathID(r, "id")
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	target := "recording:" + id
	ctx := r.Context()
	var rec meta.Recording
	err = m.opts.DB.WithContext(ctx).Where("id = ?", id).Take(&rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		m.record(r, p, target, audit.OutcomeError, map[string]any{"status": http.StatusNotFound})
		WriteProblem(w, r, http.StatusNotFound, "not-found", "no such resource")
		return
	}
	if err != nil {
		m.internal(w, r, "load recording", err)
		return
	}
	res := auth.Resource{Tenant: rec.TenantID}
	if rec.TenantID == p.Tenant {
		dec, err := newDecisions(m.opts.DB, rec.TenantID).forRecording(ctx, rec)
		if err != nil {
			m.internal(w, r, "load recording policy", err)
			return
		}
		res = recordingResource(rec, dec)
	}
	if d := auth.Authorize(p, auth.MediaRead, res); d != auth.Allow {
		m.record(r, p, target, audit.OutcomeDenied, map[string]any{"status": d.HTTPStatus()})
		Authorize(w, r, p, auth.MediaRead, res)
		return
	}
	exp := m.opts.Clock().Add(m.opts.TTL)
	if !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(exp) {
		exp = p.ExpiresAt
	}
	exp = exp.UTC().Truncate(time.Millisecond)
	ticket, err := m.sign(ticketClaims{Recording: rec.ID, Tenant: p.Tenant, Role: string(p.Role), Department: p.Department,
		Source: p.Source, TokenID: p.TokenID, Subject: p.Subject, Name: p.Name, Expires: exp.UnixMilli()})
	if err != nil {
		m.internal(w, r, "sign media ticket", err)
		return
	}
	if err := m.record(r, p, target, audit.OutcomeSuccess, map[string]any{"expires_at": exp.Format(time.RFC3339Nano)}); err != nil {
		WriteProblem(w, r, http.StatusServiceUnavailable, "audit-unavailable", "the ticket could not be recorded in the audit log; try again")
		return
	}
	w.Header().Set("Cache-Control", "private, no-store")
	WriteJSON(w, http.StatusCreated, MediaTicket{RecordingID: rec.ID, URL: "/v1/media/" + ticket, ExpiresAt: exp})
}

// serve answers a request on a ticket URL with the media endpoint's
// handler, as the principal the ticket was issued to.
func (m *MediaTickets) serve(w http.ResponseWriter, r *http.Request, rt Route) {
	c, err := m.verify(r.PathValue("ticket"))
	if err == nil {
		err = m.credentialValid(r, c)
	}
	if err != nil {
		if !auth.IsUnauthenticated(err) {
			m.internal(w, r, "check media ticket credential", err)
			return
		}
		// Audited like any refused credential (rate-limited auth.reject
		// with the reason). The answer is not a 401: the ticket is the
		// credential and there is no scheme to challenge. A ticket that
		// does not verify names nothing (404, as an unknown URL); one
		// that did verify is gone (410).
		m.srv.rejected(r, rt, auth.Principal{}, http.StatusUnauthorized, err)
		if errors.Is(err, ErrTicketInvalid) || errors.Is(err, auth.ErrUnknownToken) || errors.Is(err, auth.ErrInvalidToken) {
			WriteProblem(w, r, http.StatusNotFound, "not-found", "no such media link")
			return
		}
		WriteProblem(w, r, http.StatusGone, "media-link-expired", "the media link has expired or its credential was revoked; request a new one")
		return
	}
	p := c.principal()
	if !p.Role.Has(auth.MediaRead) {
		m.srv.rejected(r, rt, p, http.StatusForbidden, nil)
		WriteProblem(w, r, http.StatusForbidden, "forbidden", fmt.Sprintf("role %s may not %s", p.Role, auth.MediaRead))
		return
	}
	r2 := r.WithContext(contextWithPrincipal(r.Context(), p))
	// The media handler sees the media route's path: its logs and problem
	// documents never carry the ticket.
	u := *r.URL
	u.Path, u.RawPath = "/v1/recordings/"+c.Recording+"/media", ""
	r2.URL = &u
	r2.SetPathValue("id", c.Recording)
	// Referrer-Policy: the ticket is in the URL; keep it out of Referer.
	w.Header().Set("Referrer-Policy", "no-referrer")
	m.media(w, r2, p)
}

// credentialValid checks that the credential the ticket was issued to
// still is valid: a revoked or expired token ends its tickets at once.
// (An OIDC ticket never outlives its JWT, see issue.)
func (m *MediaTickets) credentialValid(r *http.Request, c ticketClaims) error {
	if c.Source != auth.SourceToken {
		return nil
	}
	var t meta.Token
	err := m.opts.DB.WithContext(r.Context()).Select("id", "tenant_id", "role", "revoked_at", "expires_at").
		Where("id = ?", c.TokenID).Take(&t).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return auth.ErrUnknownToken
	case err != nil:
		return fmt.Errorf("api: look up token of media ticket: %w", err)
	case t.RevokedAt != nil:
		return auth.ErrRevoked
	case t.ExpiresAt != nil && !m.opts.Clock().Before(*t.ExpiresAt):
		return auth.ErrExpired
	case t.TenantID != c.Tenant || t.Role != c.Role:
		return auth.ErrInvalidToken
	}
	return nil
}

func contextWithPrincipal(ctx context.Context, p auth.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func (m *MediaTickets) sign(c ticketClaims) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	sig := ed25519.Sign(m.opts.Key, []byte(mediaTicketDomain+payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// verify checks a ticket's form, signature and expiry. Its errors match
// ErrTicketInvalid or ErrTicketExpired and auth.ErrInvalidToken or
// auth.ErrExpired (so IsUnauthenticated holds for them).
func (m *MediaTickets) verify(ticket string) (ticketClaims, error) {
	var c ticketClaims
	invalid := func(why string) (ticketClaims, error) {
		return ticketClaims{}, fmt.Errorf("%w: %w: %s", ErrTicketInvalid, auth.ErrInvalidToken, why)
	}
	if len(ticket) > maxTicketLen {
		return invalid("too long")
	}
	payload, sigText, ok := strings.Cut(ticket, ".")
	if !ok {
		return invalid("no signature")
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigText)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return invalid("malformed signature")
	}
	pub := m.opts.Key.Public().(ed25519.PublicKey)
	if !ed25519.Verify(pub, []byte(mediaTicketDomain+payload), sig) {
		return invalid("bad signature")
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return invalid("malformed payload")
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return invalid("malformed payload")
	}
	if !meta.ValidID(c.Recording) || c.Tenant == "" || !auth.Role(c.Role).Valid() {
		return invalid("incomplete claims")
	}
	if !m.opts.Clock().Before(time.UnixMilli(c.Expires)) {
		return ticketClaims{}, fmt.Errorf("%w: %w", ErrTicketExpired, auth.ErrExpired)
	}
	return c, nil
}

func (m *MediaTickets) record(r *http.Request, p auth.Principal, target, outcome string, details map[string]any) error {
	_, err := audit.Append(r.Context(), m.opts.DB, audit.Entry{
		Tenant: p.Tenant, Actor: p.Actor(), Role: string(p.Role), Action: ActionMediaTicket, Target: target,
		Source: m.srv.SourceAddress(r), Outcome: outcome, Details: details, Time: m.opts.Clock(),
	})
	if err != nil {
		m.log.Error("audit append failed", "action", ActionMediaTicket, "target", target, "err", err)
	}
	return err
}

func (m *MediaTickets) internal(w http.ResponseWriter, r *http.Request, op string, err error) {
	m.log.Error(op, "method", r.Method, "path", r.Pattern, "err", err)
	WriteProblem(w, r, http.StatusInternalServerError, "internal", "internal error")
}
