package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/storage/meta"
)

// signingAlgs are the JWT algorithms accepted: asymmetric only, so that a
// token can never be signed with a shared secret or not at all.
var signingAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA,
}

const (
	discoveryTimeout = 10 * time.Second
	// discoveryRetry is how long a failed discovery is remembered before
	// the next request tries again.
	discoveryRetry = 5 * time.Second
	// jwksMinInterval is the least time between two fetches of the JWKS.
	jwksMinInterval = 10 * time.Second
)

// OIDC verifies JWTs from one OpenID Connect issuer (config.OIDC) and maps
// their claims to a Principal. Discovery happens on first use (or Discover)
// and is retried after a failure; the issuer's keys are fetched from its
// jwks_uri and cached by go-oidc's RemoteKeySet, which refetches when a
// token names a key id it does not have.
type OIDC struct {
	cfg    config.OIDC
	client *http.Client
	now    func() time.Time
	log    *slog.Logger

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	lastTry  time.Time
	lastErr  error
}

// OIDCOption configures NewOIDC.
type OIDCOption func(*OIDC)

// WithHTTPClient sets the client for discovery and key fetches.
func WithHTTPClient(c *http.Client) OIDCOption { return func(o *OIDC) { o.client = c } }

// WithOIDCClock sets the clock for expiry checks.
func WithOIDCClock(now func() time.Time) OIDCOption { return func(o *OIDC) { o.now = now } }

// WithOIDCLogger sets the logger (never given a token).
func WithOIDCLogger(l *slog.Logger) OIDCOption { return func(o *OIDC) { o.log = l } }

// NewOIDC checks the configuration; it does no I/O. The issuer must be an
// https URL (http only on a loopback address, for tests and local
// issuers); client_id is the audience every token must carry. Empty claim
// names get the defaults roles, tenant, department.
func NewOIDC(cfg config.OIDC, opts ...OIDCOption) (*OIDC, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("auth: oidc issuer %q is not a URL", cfg.Issuer)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, fmt.Errorf("auth: oidc issuer %q must be https (http only on loopback)", cfg.Issuer)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("auth: oidc client_id (the expected audience) is required")
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = "roles"
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = "tenant"
	}
	if cfg.DepartmentClaim == "" {
		cfg.DepartmentClaim = "department"
	}
	if cfg.DefaultTenant != "" && !meta.ValidID(cfg.DefaultTenant) {
		return nil, fmt.Errorf("auth: oidc default_tenant %q is not a valid tenant id", cfg.DefaultTenant)
	}
	o := &OIDC{cfg: cfg, client: http.DefaultClient, now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(o)
	}
	return o, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Discover fetches the discovery document now (e.g. at start, to log a
// misconfiguration early). Verify does it on demand anyway.
func (o *OIDC) Discover(ctx context.Context) error {
	_, err := o.getVerifier(ctx)
	return err
}

func (o *OIDC) getVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	now := o.now()
	if o.lastErr != nil && now.Sub(o.lastTry) < discoveryRetry {
		return nil, o.lastErr
	}
	o.lastTry = now
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), discoveryTimeout)
	defer cancel()
	provider, err := oidc.NewProvider(oidc.ClientContext(dctx, o.client), o.cfg.Issuer)
	if err != nil {
		o.lastErr = fmt.Errorf("%w: discovery at %s: %v", ErrIssuerUnavailable, o.cfg.Issuer, err)
		o.log.Warn("oidc discovery failed", "issuer", o.cfg.Issuer, "err", err)
		return nil, o.lastErr
	}
	var disc struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := provider.Claims(&disc); err != nil || disc.JWKSURL == "" {
		o.lastErr = fmt.Errorf("%w: discovery at %s has no jwks_uri", ErrIssuerUnavailable, o.cfg.Issuer)
		return nil, o.lastErr
	}
	// The key set outlives this request: its context only carries the client.
	next := o.client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	keyClient := &http.Client{
		Transport: &jwksThrottle{next: next, url: disc.JWKSURL, now: o.now},
		Timeout:   discoveryTimeout,
	}
	keySet := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), keyClient), disc.JWKSURL)
	o.verifier = oidc.NewVerifier(o.cfg.Issuer, keySet, &oidc.Config{
		ClientID:             o.cfg.ClientID,
		SupportedSigningAlgs: signingAlgs,
		Now:                  o.now,
	})
	o.lastErr = nil
	o.log.Info("oidc issuer discovered", "issuer", o.cfg.Issuer, "jwks_uri", disc.JWKSURL)
	return o.verifier, nil
}

// Verify checks a JWT (signature with the issuer's keys, issuer, audience
// = client_id, expiry, algorithm) and maps its claims to a Principal.
func (o *OIDC) Verify(ctx context.Context, raw string) (Principal, error) {
	v, err := o.getVerifier(ctx)
	if err != nil {
		return Principal{}, err
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		var exp *oidc.TokenExpiredError
		if errors.As(err, &exp) {
			return Principal{}, fmt.Errorf("%w: jwt expired at %s", ErrExpired, exp.Expiry.UTC().Format(time.RFC3339))
		}
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, fmt.Errorf("%w: claims: %v", ErrInvalidToken, err)
	}
	return o.principal(tok.Subject, tok.Expiry, claims)
}

func (o *OIDC) principal(subject string, expiry time.Time, claims map[string]any) (Principal, error) {
	if subject == "" {
		return Principal{}, &ClaimError{Claim: "sub", Reason: "missing"}
	}
	role, err := roleFromClaim(o.cfg.RolesClaim, claimValue(claims, o.cfg.RolesClaim))
	if err != nil {
		return Principal{}, err
	}
	tenant, present, err := stringClaim(claims, o.cfg.TenantClaim)
	if err != nil {
		return Principal{}, err
	}
	if !present {
		if o.cfg.DefaultTenant == "" {
			return Principal{}, &ClaimError{Claim: o.cfg.TenantClaim, Reason: "missing and no default_tenant is configured"}
		}
		tenant = o.cfg.DefaultTenant
	}
	if !meta.ValidID(tenant) {
		return Principal{}, &ClaimError{Claim: o.cfg.TenantClaim, Reason: fmt.Sprintf("%q is not a valid tenant id", tenant)}
	}
	dept, _, err := stringClaim(claims, o.cfg.DepartmentClaim)
	if err != nil {
		return Principal{}, err
	}
	if role == RoleSupervisor && dept == "" {
		return Principal{}, &ClaimError{Claim: o.cfg.DepartmentClaim, Reason: "a supervisor needs a department"}
	}
	name := ""
	for _, c := range []string{"name", "preferred_username", "email"} {
		if s, ok := claims[c].(string); ok && s != "" {
			name = s
			break
		}
	}
	return Principal{
		Subject: subject, Name: name, Tenant: tenant, Role: role, Department: dept,
		Source: SourceOIDC, ExpiresAt: expiry,
	}, nil
}

// claimValue finds a claim by its name or, when absent and the name has
// dots, by walking nested objects ("realm_access.roles").
func claimValue(claims map[string]any, name string) any {
	if v, ok := claims[name]; ok {
		return v
	}
	if !strings.Contains(name, ".") {
		return nil
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// stringClaim reads a claim that must be a string (or a list of exactly
// one string, as some identity providers send attributes).
func stringClaim(claims map[string]any, name string) (value string, present bool, err error) {
	switch v := claimValue(claims, name).(type) {
	case nil:
		return "", false, nil
	case string:
		return v, v != "", nil
	case []any:
		if len(v) == 1 {
			if s, ok := v[0].(string); ok {
				return s, s != "", nil
			}
		}
		if len(v) == 0 {
			return "", false, nil
		}
	}
	return "", false, &ClaimError{Claim: name, Reason: "must be a string"}
}

// roleFromClaim picks the role of a roles claim, a string or a list.
// Values that are not Custodian roles (other applications' roles, groups)
// are ignored. Of several known roles, the one that covers all the others
// (Role.Covers: admin covers everything, compliance covers supervisor and
// auditor) is taken; when none does (e.g. supervisor and auditor) the
// token is rejected rather than guessed at.
func roleFromClaim(name string, v any) (Role, error) {
	var values []string
	switch v := v.(type) {
	case string:
		values = []string{v}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				values = append(values, s)
			}
		}
	case nil:
		return "", &ClaimError{Claim: name, Reason: "missing"}
	default:
		return "", &ClaimError{Claim: name, Reason: "must be a string or a list of strings"}
	}
	var known []Role
	for _, s := range values {
		if r := Role(s); r.Valid() && !containsRole(known, r) {
			known = append(known, r)
		}
	}
	if len(known) == 0 {
		return "", &ClaimError{Claim: name, Reason: "no known role (admin, compliance, supervisor, auditor, ingest)"}
	}
	for _, r := range known {
		all := true
		for _, o := range known {
			if !r.Covers(o) {
				all = false
				break
			}
		}
		if all {
			return r, nil
		}
	}
	return "", &ClaimError{Claim: name, Reason: fmt.Sprintf("roles %v: none covers the others; give the user one role", known)}
}

func containsRole(rs []Role, r Role) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// looksLikeJWT reports whether s has the shape of a compact JWS: three
// base64url segments whose first decodes to a JSON object with "alg".
func looksLikeJWT(s string) bool {
	_, ok := jwtKeyID(s)
	return ok
}

// jwtKeyID returns the "kid" of a compact JWS header; ok is false when s
// is not shaped like a JWT.
func jwtKeyID(s string) (kid string, ok bool) {
	if strings.Count(s, ".") != 2 {
		return "", false
	}
	head, _, _ := strings.Cut(s, ".")
	if len(head) > 4096 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", false
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil || h.Alg == "" {
		return "", false
	}
	return h.Kid, true
}

// jwksThrottle is the HTTP transport of the key set. go-oidc's
// RemoteKeySet refetches the JWKS whenever a token's key id is unknown or
// its signature fails, so forged tokens could make the gateway hammer the
// issuer; this transport answers JWKS requests from the last response for
// jwksMinInterval after each real fetch. A key rotated in at the issuer is
// therefore accepted at most jwksMinInterval after its first use.
type jwksThrottle struct {
	next http.RoundTripper
	url  string
	now  func() time.Time

	mu     sync.Mutex
	last   time.Time
	status int
	header http.Header
	body   []byte
}

// maxJWKSBytes bounds a JWKS response.
const maxJWKSBytes = 1 << 20

func (j *jwksThrottle) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.URL.String() != j.url {
		return j.next.RoundTrip(req)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.body != nil && j.now().Sub(j.last) < jwksMinInterval {
		return j.cached(req), nil
	}
	resp, err := j.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("jwks larger than %d bytes", maxJWKSBytes)
	}
	if resp.StatusCode == http.StatusOK {
		j.last, j.status, j.header, j.body = j.now(), resp.StatusCode, resp.Header.Clone(), body
		return j.cached(req), nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func (j *jwksThrottle) cached(req *http.Request) *http.Response {
	return &http.Response{
		Status: http.StatusText(j.status), StatusCode: j.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: j.header.Clone(), Body: io.NopCloser(bytes.NewReader(j.body)), ContentLength: int64(len(j.body)),
		Request: req,
	}
}
