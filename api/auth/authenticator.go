package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/custodian/custodian/storage/meta"
	"gorm.io/gorm"
)

// lastUsedEvery bounds how often a token's last_used_at is written.
const lastUsedEvery = time.Minute

// Authenticator turns bearer credentials into principals: opaque tokens
// from the tokens table and, when configured, OIDC JWTs.
type Authenticator struct {
	db   *gorm.DB
	oidc *OIDC
	now  func() time.Time
	log  *slog.Logger
}

// Option configures an Authenticator.
type Option func(*Authenticator)

// WithOIDC accepts JWTs verified by o besides opaque tokens.
func WithOIDC(o *OIDC) Option { return func(a *Authenticator) { a.oidc = o } }

// WithClock sets the clock used for token expiry and last-used times.
func WithClock(now func() time.Time) Option { return func(a *Authenticator) { a.now = now } }

// WithLogger sets the logger (never given a token).
func WithLogger(l *slog.Logger) Option { return func(a *Authenticator) { a.log = l } }

// NewAuthenticator returns an Authenticator over the metadata database.
func NewAuthenticator(db *gorm.DB, opts ...Option) *Authenticator {
	a := &Authenticator{db: db, now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Authenticate verifies a bearer credential (the token itself, or a whole
// "Bearer X" header value) and returns its principal. A credential shaped
// like a JWT goes to OIDC, anything else to the token store. Errors for
// which IsUnauthenticated is true mean 401: ErrNoToken, ErrUnknownToken,
// ErrExpired, ErrRevoked, ErrInvalidToken (and *ClaimError); others
// (database, ErrIssuerUnavailable) are the gateway's failure.
func (a *Authenticator) Authenticate(ctx context.Context, bearer string) (Principal, error) {
	bearer = strings.TrimSpace(bearer)
	if scheme, rest, _ := strings.Cut(bearer, " "); strings.EqualFold(scheme, "Bearer") {
		bearer = strings.TrimSpace(rest)
	}
	switch {
	case bearer == "":
		return Principal{}, ErrNoToken
	case looksLikeJWT(bearer):
		if a.oidc == nil {
			return Principal{}, fmt.Errorf("%w: a JWT, but no OIDC issuer is configured", ErrUnknownToken)
		}
		return a.oidc.Verify(ctx, bearer)
	case !looksLikeOpaque(bearer):
		return Principal{}, ErrUnknownToken
	}
	hash := HashToken(bearer)
	var t meta.Token
	if err := a.db.WithContext(ctx).Where("hash = ?", hash).Take(&t).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return Principal{}, ErrUnknownToken
		}
		return Principal{}, fmt.Errorf("auth: look up token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hash)) != 1 {
		return Principal{}, ErrUnknownToken
	}
	now := a.now().UTC()
	if t.RevokedAt != nil {
		return Principal{}, ErrRevoked
	}
	if t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
		return Principal{}, ErrExpired
	}
	if !Role(t.Role).Valid() {
		return Principal{}, fmt.Errorf("%w: token %s has unknown role %q", ErrUnknownToken, t.ID, t.Role)
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= lastUsedEvery {
		a.touch(ctx, t.ID, now)
	}
	p := Principal{
		TokenID: t.ID, Name: t.Name, Tenant: t.TenantID, Role: Role(t.Role),
		Department: t.Department, Source: SourceToken,
	}
	if t.ExpiresAt != nil {
		p.ExpiresAt = *t.ExpiresAt
	}
	return p, nil
}

// touch records a use of token id, at most once per lastUsedEvery even
// with several gateway instances (the condition is in the UPDATE). A
// failure is logged, never fatal to the request.
func (a *Authenticator) touch(ctx context.Context, id string, now time.Time) {
	err := a.db.WithContext(ctx).Model(&meta.Token{}).
		Where("id = ? AND (last_used_at IS NULL OR last_used_at <= ?)", id, now.Add(-lastUsedEvery)).
		Update("last_used_at", now).Error
	if err != nil {
		a.log.Warn("token last-used update failed", "token_id", id, "err", err)
	}
}
