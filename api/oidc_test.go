package api_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/storage/meta"
	"github.com/go-jose/go-jose/v4"
)

// issuer is an OpenID Connect issuer on loopback: discovery document and
// JWKS, tokens signed with an RSA key.
type issuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &issuer{key: k}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss.srv.URL, "jwks_uri": iss.srv.URL + "/jwks",
			"authorization_endpoint": iss.srv.URL + "/authorize", "token_endpoint": iss.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	iss.srv = httptest.NewServer(mux)
	t.Cleanup(iss.srv.Close)
	return iss
}

func (iss *issuer) token(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: iss.key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := obj.CompactSerialize()
	return s
}

func (iss *issuer) claims(role, dept string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": iss.srv.URL, "aud": "custodian", "sub": "ada@example.com", "name": "Ada",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "roles": []string{"other-app", role}, "tenant": "default", "department": dept}
}

func TestOIDCThroughAPI(t *testing.T) {
	iss := newIssuer(t)
	g := start(t, func(c *config.Config) {
		c.OIDC.Issuer = iss.srv.URL
		c.OIDC.ClientID = "custodian"
	})
	sales := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s1", Participant: "a", Data: []byte("sales media")})
	support := seedRecording(t, g, recSpec{Tenant: "default", Dept: "support", Session: "s2", Participant: "b", Data: []byte("support media")})
	seedRecording(t, g, recSpec{Tenant: "acme", Dept: "sales", Session: "s3", Participant: "c", Data: []byte("acme media")})

	sup := iss.token(t, "k1", iss.claims("supervisor", "sales"))
	r := do(t, "GET", g.URL()+"/v1/recordings", sup, nil)
	var l api.RecordingList
	r.json(t, &l)
	if r.Status != 200 || len(l.Recordings) != 1 || l.Recordings[0].ID != sales.ID {
		t.Fatalf("supervisor JWT list: %d %s", r.Status, r.Body)
	}
	if r := do(t, "GET", g.URL()+"/v1/recordings/"+sales.ID+"/media", sup, nil); r.Status != 200 || string(r.Body) != "sales media" {
		t.Fatalf("media with JWT: %d", r.Status)
	}
	do(t, "GET", g.URL()+"/v1/recordings/"+support.ID+"/media", sup, nil).problem(t, 404)
	do(t, "GET", g.URL()+"/v1/audit", sup, nil).problem(t, 403)
	var e meta.AuditEntry
	if err := g.DB.Where("action = ? AND outcome = ?", "media.read", "success").First(&e).Error; err != nil ||
		e.Actor != "oidc:ada@example.com" || e.Role != "supervisor" || e.TenantID != "default" {
		t.Fatalf("audit actor of a JWT read: %+v %v", e, err)
	}

	aud := iss.token(t, "k1", iss.claims("auditor", ""))
	if r := do(t, "GET", g.URL()+"/v1/audit/verify", aud, nil); r.Status != 200 {
		t.Fatalf("auditor JWT verify: %d %s", r.Status, r.Body)
	}
	do(t, "GET", g.URL()+"/v1/recordings", aud, nil).problem(t, 403)

	// Refused JWTs.
	wrongAud := iss.claims("admin", "")
	wrongAud["aud"] = "someone-else"
	expired := iss.claims("admin", "")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	expired["iat"] = time.Now().Add(-2 * time.Hour).Unix()
	for name, tok := range map[string]string{
		"wrong audience": iss.token(t, "k1", wrongAud),
		"expired":        iss.token(t, "k1", expired),
		"unknown key id": iss.token(t, "k9", iss.claims("admin", "")),
	} {
		if r := do(t, "GET", g.URL()+"/v1/recordings", tok, nil); r.Status != 401 {
			t.Errorf("%s: %d", name, r.Status)
		}
	}
}
