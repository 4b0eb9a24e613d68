package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/storage/meta/metatest"
	"github.com/go-jose/go-jose/v4"
)

// testIssuer is a real OpenID Connect issuer on loopback: discovery
// document and JWKS over HTTP, keys generated per test, tokens signed with
// go-jose.
type testIssuer struct {
	srv       *httptest.Server
	rsaKey    *rsa.PrivateKey
	ecKey     *ecdsa.PrivateKey
	jwksHits  atomic.Int64
	discHits  atomic.Int64
	failDisc  atomic.Bool
	mu        sync.Mutex
	published []jose.JSONWebKey
}

func newTestIssuer(tb testing.TB) *testIssuer {
	tb.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	iss := &testIssuer{rsaKey: rk, ecKey: ek}
	iss.published = []jose.JSONWebKey{
		{Key: &rk.PublicKey, KeyID: "rsa1", Algorithm: "RS256", Use: "sig"},
		{Key: &ek.PublicKey, KeyID: "ec1", Algorithm: "ES256", Use: "sig"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss.discHits.Add(1)
		if iss.failDisc.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.srv.URL,
			"jwks_uri":                              iss.srv.URL + "/jwks",
			"authorization_endpoint":                iss.srv.URL + "/authorize",
			"token_endpoint":                        iss.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		iss.jwksHits.Add(1)
		iss.mu.Lock()
		set := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), iss.published...)}
		iss.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	})
	iss.srv = httptest.NewServer(mux)
	tb.Cleanup(iss.srv.Close)
	return iss
}

func (iss *testIssuer) publish(k jose.JSONWebKey) {
	iss.mu.Lock()
	iss.published = append(iss.published, k)
	iss.mu.Unlock()
}

func (iss *testIssuer) claims(now time.Time) map[string]any {
	return map[string]any{
		"iss": iss.srv.URL, "aud": "custodian", "sub": "user-42", "name": "Ada",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"roles": []string{"supervisor"}, "tenant": "acme", "department": "sales",
	}
}

func sign(tb testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	tb.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func unsigned(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
}

func (iss *testIssuer) config() config.OIDC {
	c := config.Default().OIDC
	c.Issuer = iss.srv.URL
	c.ClientID = "custodian"
	return c
}

func TestOIDCVerify(t *testing.T) {
	iss := newTestIssuer(t)
	clk := &clock{t: time.Now()}
	o, err := NewOIDC(iss.config(), WithOIDCClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := clk.Now()
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)

	with := func(mod func(c map[string]any)) map[string]any {
		c := iss.claims(now)
		mod(c)
		return c
	}
	rs := func(c map[string]any) string { return sign(t, jose.RS256, iss.rsaKey, "rsa1", c) }

	tests := []struct {
		name    string
		token   string
		wantErr error
		want    Principal // checked when wantErr is nil
	}{
		{"RS256", rs(iss.claims(now)), nil,
			Principal{Subject: "user-42", Name: "Ada", Tenant: "acme", Role: RoleSupervisor, Department: "sales", Source: SourceOIDC}},
		{"ES256", sign(t, jose.ES256, iss.ecKey, "ec1", iss.claims(now)), nil,
			Principal{Subject: "user-42", Name: "Ada", Tenant: "acme", Role: RoleSupervisor, Department: "sales", Source: SourceOIDC}},
		{"roles as a string", rs(with(func(c map[string]any) { c["roles"] = "compliance" })), nil,
			Principal{Subject: "user-42", Name: "Ada", Tenant: "acme", Role: RoleCompliance, Department: "sales", Source: SourceOIDC}},
		{"highest covering role of several, unknown values ignored", rs(with(func(c map[string]any) {
			c["roles"] = []string{"offline_access", "supervisor", "compliance", "auditor"}
		})), nil, Principal{Subject: "user-42", Name: "Ada", Tenant: "acme", Role: RoleCompliance, Department: "sales", Source: SourceOIDC}},
		{"admin covers ingest", rs(with(func(c map[string]any) { c["roles"] = []string{"ingest", "admin"} })), nil,
			Principal{Subject: "user-42", Name: "Ada", Tenant: "acme", Role: RoleAdmin, Department: "sales", Source: SourceOIDC}},
		{"no tenant claim: default tenant", rs(with(func(c map[string]any) { delete(c, "tenant"); c["roles"] = "auditor" })), nil,
			Principal{Subject: "user-42", Name: "Ada", Tenant: "default", Role: RoleAuditor, Department: "sales", Source: SourceOIDC}},
		{"single-element list attributes", rs(with(func(c map[string]any) { c["tenant"] = []string{"acme"}; c["department"] = []string{"support"} })), nil,
			Principal{Subject: "user-42", Name: "Ada", Tenant: "acme", Role: RoleSupervisor, Department: "support", Source: SourceOIDC}},
		{"audience list containing the client id", rs(with(func(c map[string]any) { c["aud"] = []string{"other", "custodian"} })), nil,
			Principal{Subject: "user-42", Name: "Ada", Tenant: "acme", Role: RoleSupervisor, Department: "sales", Source: SourceOIDC}},

		{"wrong audience", rs(with(func(c map[string]any) { c["aud"] = "someone-else" })), ErrInvalidToken, Principal{}},
		{"no audience", rs(with(func(c map[string]any) { delete(c, "aud") })), ErrInvalidToken, Principal{}},
		{"expired", rs(with(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), ErrExpired, Principal{}},
		{"wrong issuer", rs(with(func(c map[string]any) { c["iss"] = "https://evil.example" })), ErrInvalidToken, Principal{}},
		{"bad signature: another key under a known key id", sign(t, jose.RS256, otherRSA, "rsa1", iss.claims(now)), ErrInvalidToken, Principal{}},
		{"tampered payload", tamper(rs(iss.claims(now))), ErrInvalidToken, Principal{}},
		{"HS256 with a shared secret", sign(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), "rsa1", iss.claims(now)), ErrInvalidToken, Principal{}},
		{"alg none", unsigned(t, iss.claims(now)), ErrInvalidToken, Principal{}},
		{"missing role claim", rs(with(func(c map[string]any) { delete(c, "roles") })), ErrInvalidToken, Principal{}},
		{"no known role", rs(with(func(c map[string]any) { c["roles"] = []string{"viewer", "Admin"} })), ErrInvalidToken, Principal{}},
		{"ambiguous roles", rs(with(func(c map[string]any) { c["roles"] = []string{"supervisor", "auditor"} })), ErrInvalidToken, Principal{}},
		{"roles claim of the wrong type", rs(with(func(c map[string]any) { c["roles"] = 7 })), ErrInvalidToken, Principal{}},
		{"supervisor without department", rs(with(func(c map[string]any) { delete(c, "department") })), ErrInvalidToken, Principal{}},
		{"tenant claim of the wrong type", rs(with(func(c map[string]any) { c["tenant"] = map[string]any{"id": "acme"} })), ErrInvalidToken, Principal{}},
		{"tenant claim not an id", rs(with(func(c map[string]any) { c["tenant"] = "../acme" })), ErrInvalidToken, Principal{}},
		{"no subject", rs(with(func(c map[string]any) { delete(c, "sub") })), ErrInvalidToken, Principal{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := o.Verify(ctx, tt.token)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !IsUnauthenticated(err) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Subject != tt.want.Subject || p.Name != tt.want.Name || p.Tenant != tt.want.Tenant || p.Role != tt.want.Role ||
				p.Department != tt.want.Department || p.Source != tt.want.Source || p.ExpiresAt.Unix() != now.Add(time.Hour).Unix() {
				t.Fatalf("principal %+v, want %+v", p, tt.want)
			}
			if p.Actor() != "oidc:user-42" {
				t.Errorf("actor %q", p.Actor())
			}
		})
	}
	var ce *ClaimError
	_, err = o.Verify(ctx, rs(with(func(c map[string]any) { delete(c, "roles") })))
	if !errors.As(err, &ce) || ce.Claim != "roles" {
		t.Errorf("missing role: %v is not a ClaimError naming roles", err)
	}
}

// tamper changes one character of the payload of a compact JWS.
func tamper(jws string) string {
	parts := strings.Split(jws, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	b = []byte(strings.Replace(string(b), `"acme"`, `"evil"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func TestOIDCKeys(t *testing.T) {
	iss := newTestIssuer(t)
	clk := &clock{t: time.Now()}
	o, err := NewOIDC(iss.config(), WithOIDCClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	claims := iss.claims(clk.Now())
	claims["exp"] = clk.Now().Add(24 * time.Hour).Unix()

	// Keys are fetched once and cached.
	for range 5 {
		if _, err := o.Verify(ctx, sign(t, jose.RS256, iss.rsaKey, "rsa1", claims)); err != nil {
			t.Fatal(err)
		}
	}
	if n := iss.jwksHits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times for 5 tokens, want 1", n)
	}
	if n := iss.discHits.Load(); n != 1 {
		t.Fatalf("discovery fetched %d times, want 1", n)
	}

	// A key rotated in at the issuer is picked up by refetching the JWKS,
	// but not within jwksMinInterval of the last fetch.
	rotated, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss.publish(jose.JSONWebKey{Key: &rotated.PublicKey, KeyID: "ec2", Algorithm: "ES256", Use: "sig"})
	rotatedTok := sign(t, jose.ES256, rotated, "ec2", claims)
	if _, err := o.Verify(ctx, rotatedTok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("rotated key right after a fetch: %v", err)
	}
	if n := iss.jwksHits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1 (throttled)", n)
	}
	clk.Add(jwksMinInterval)
	// go-oidc lets a request that arrives just as a refetch finishes share
	// that refetch's result, so the first try may still see the old set.
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		_, err := o.Verify(ctx, rotatedTok)
		return err
	})
	if n := iss.jwksHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times after rotation, want 2", n)
	}

	// Unknown key ids and bad signatures cannot make the gateway fetch the
	// JWKS more than once per jwksMinInterval.
	stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
	for i := range 10 {
		kid := "nope-" + string(rune('a'+i))
		if i%2 == 1 {
			kid = "rsa1" // known key id, wrong key: a bad signature
		}
		if _, err := o.Verify(ctx, sign(t, jose.RS256, stranger, kid, claims)); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("forged token %d: %v", i, err)
		}
	}
	if n := iss.jwksHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times for 10 forged tokens, want still 2", n)
	}
	// Known keys keep working meanwhile.
	if _, err := o.Verify(ctx, sign(t, jose.ES256, iss.ecKey, "ec1", claims)); err != nil {
		t.Fatal(err)
	}
	clk.Add(jwksMinInterval)
	for range 5 {
		if _, err := o.Verify(ctx, sign(t, jose.RS256, stranger, "nope-z", claims)); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("unknown key id: %v", err)
		}
	}
	if n := iss.jwksHits.Load(); n != 3 {
		t.Fatalf("JWKS fetched %d times after the interval, want 3", n)
	}
}

func TestOIDCDiscoveryFailure(t *testing.T) {
	iss := newTestIssuer(t)
	iss.failDisc.Store(true)
	clk := &clock{t: time.Now()}
	o, err := NewOIDC(iss.config(), WithOIDCClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := sign(t, jose.RS256, iss.rsaKey, "rsa1", iss.claims(clk.Now()))
	for range 3 {
		if _, err := o.Verify(ctx, tok); !errors.Is(err, ErrIssuerUnavailable) || IsUnauthenticated(err) {
			t.Fatalf("issuer down: %v (must not be a 401)", err)
		}
	}
	if n := iss.discHits.Load(); n != 1 {
		t.Fatalf("discovery tried %d times within the retry interval, want 1", n)
	}
	iss.failDisc.Store(false)
	clk.Add(discoveryRetry)
	if _, err := o.Verify(ctx, tok); err != nil {
		t.Fatalf("after the issuer is back: %v", err)
	}
	if err := o.Discover(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNewOIDCConfig(t *testing.T) {
	for _, c := range []config.OIDC{
		{Issuer: "", ClientID: "x"},
		{Issuer: "not a url", ClientID: "x"},
		{Issuer: "http://idp.example.com", ClientID: "x"},
		{Issuer: "https://idp.example.com"},
		{Issuer: "https://idp.example.com", ClientID: "x", DefaultTenant: "../t"},
	} {
		if _, err := NewOIDC(c); err == nil {
			t.Errorf("NewOIDC(%+v) accepted", c)
		}
	}
	for _, c := range []config.OIDC{
		{Issuer: "https://idp.example.com/realms/x", ClientID: "x"},
		{Issuer: "http://127.0.0.1:9999", ClientID: "x"},
		{Issuer: "http://localhost:9999", ClientID: "x"},
		{Issuer: "http://[::1]:9999", ClientID: "x"},
	} {
		if _, err := NewOIDC(c); err != nil {
			t.Errorf("NewOIDC(%+v): %v", c, err)
		}
	}
}

func TestOIDCNestedClaims(t *testing.T) {
	iss := newTestIssuer(t)
	cfg := iss.config()
	cfg.RolesClaim = "realm_access.roles"
	cfg.TenantClaim = "https://custodian.example/tenant"
	cfg.DefaultTenant = ""
	o, err := NewOIDC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := iss.claims(time.Now())
	delete(c, "roles")
	delete(c, "tenant")
	c["realm_access"] = map[string]any{"roles": []string{"uma_authorization", "admin"}}
	c["https://custodian.example/tenant"] = "acme"
	p, err := o.Verify(context.Background(), sign(t, jose.RS256, iss.rsaKey, "rsa1", c))
	if err != nil || p.Role != RoleAdmin || p.Tenant != "acme" {
		t.Fatalf("nested claims: %v %+v", err, p)
	}
	delete(c, "https://custodian.example/tenant")
	if _, err := o.Verify(context.Background(), sign(t, jose.RS256, iss.rsaKey, "rsa1", c)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("no tenant and no default: %v", err)
	}
}

// TestAuthenticatorRoutes sends JWTs to OIDC and opaque tokens to the store.
func TestAuthenticatorRoutes(t *testing.T) {
	iss := newTestIssuer(t)
	o, err := NewOIDC(iss.config())
	if err != nil {
		t.Fatal(err)
	}
	db := metatest.SQLite(t)
	ctx := context.Background()
	plain, _, err := CreateToken(ctx, db, Spec{Tenant: "acme", Role: RoleIngest})
	if err != nil {
		t.Fatal(err)
	}
	jwt := sign(t, jose.RS256, iss.rsaKey, "rsa1", iss.claims(time.Now()))

	a := NewAuthenticator(db, WithOIDC(o))
	if p, err := a.Authenticate(ctx, "Bearer "+jwt); err != nil || p.Source != SourceOIDC || p.Role != RoleSupervisor {
		t.Fatalf("JWT: %v %+v", err, p)
	}
	if p, err := a.Authenticate(ctx, plain); err != nil || p.Source != SourceToken || p.Role != RoleIngest {
		t.Fatalf("opaque: %v %+v", err, p)
	}
	noOIDC := NewAuthenticator(db)
	if _, err := noOIDC.Authenticate(ctx, jwt); !errors.Is(err, ErrUnknownToken) {
		t.Fatalf("JWT without OIDC configured: %v", err)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	for s, want := range map[string]bool{
		enc([]byte(`{"alg":"RS256","kid":"k"}`)) + ".e30.sig": true,
		enc([]byte(`{"typ":"JWT"}`)) + ".e30.sig":             false,
		"a.b.c":                                 false,
		"cst_abc":                               false,
		enc([]byte(`{"alg":"RS256"}`)) + ".e30": false,
		enc([]byte(`{"alg":"RS256"}`)) + ".e30.x.y": false,
	} {
		if got := looksLikeJWT(s); got != want {
			t.Errorf("looksLikeJWT(%q) = %v", s, got)
		}
	}
}

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until
