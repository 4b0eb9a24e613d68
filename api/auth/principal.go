package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sources of a principal.
const (
	SourceToken = "token"
	SourceOIDC  = "oidc"
)

// Principal is an authenticated caller.
type Principal struct {
	TokenID    string    `json:"token_id,omitempty"` // opaque tokens
	Subject    string    `json:"subject,omitempty"`  // OIDC "sub"
	Name       string    `json:"name,omitempty"`
	Tenant     string    `json:"tenant"`
	Role       Role      `json:"role"`
	Department string    `json:"department,omitempty"`
	Source     string    `json:"source"`              // token | oidc
	ExpiresAt  time.Time `json:"expires_at,omitzero"` // zero: never
}

// Actor names p in audit entries and CreatedBy fields: "token:ID" or
// "oidc:SUBJECT". It never contains a secret.
func (p Principal) Actor() string {
	if p.Source == SourceOIDC {
		return "oidc:" + p.Subject
	}
	return "token:" + p.TokenID
}

// Authentication errors. Each of them means 401 at the HTTP layer
// (IsUnauthenticated); the distinction is for logs and audit.
var (
	// ErrNoToken: no bearer credential was presented.
	ErrNoToken = errors.New("auth: no bearer token")
	// ErrUnknownToken: the credential is not a token this gateway issued
	// (or is malformed, or is a JWT while OIDC is not configured).
	ErrUnknownToken = errors.New("auth: unknown token")
	// ErrExpired: the token or JWT is past its expiry.
	ErrExpired = errors.New("auth: token expired")
	// ErrRevoked: the token was revoked.
	ErrRevoked = errors.New("auth: token revoked")
	// ErrInvalidToken: a JWT failed verification (signature, key id,
	// issuer, audience, algorithm) or its claims are unusable.
	ErrInvalidToken = errors.New("auth: invalid token")
)

// ErrIssuerUnavailable means the OIDC issuer's discovery document could
// not be fetched: a 503, not a 401, since the credential may be good.
var ErrIssuerUnavailable = errors.New("auth: oidc issuer unavailable")

// IsUnauthenticated reports whether err means the credential is missing or
// not acceptable (HTTP 401), as opposed to a failure of the gateway.
func IsUnauthenticated(err error) bool {
	return errors.Is(err, ErrNoToken) || errors.Is(err, ErrUnknownToken) || errors.Is(err, ErrExpired) ||
		errors.Is(err, ErrRevoked) || errors.Is(err, ErrInvalidToken)
}

// ClaimError says why the claims of a verified JWT cannot make a
// principal (e.g. no known role). It matches ErrInvalidToken.
type ClaimError struct {
	Claim  string
	Reason string
}

func (e *ClaimError) Error() string {
	return fmt.Sprintf("auth: oidc claim %q: %s", e.Claim, e.Reason)
}

// Unwrap makes a ClaimError match ErrInvalidToken.
func (e *ClaimError) Unwrap() error { return ErrInvalidToken }

// BearerToken extracts the credential from an Authorization header value
// ("Bearer X", scheme case-insensitive). ok is false when there is none.
func BearerToken(header string) (token string, ok bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(rest)
	return token, token != ""
}
