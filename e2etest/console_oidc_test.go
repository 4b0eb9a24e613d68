package e2etest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// testIssuer is an OpenID Connect provider on loopback for the console's
// single sign-on: discovery, JWKS, an authorization endpoint with a login
// form (the user types a name; no password) and a token endpoint that
// enforces the authorization code flow with PKCE (S256) for one public
// client and one redirect URI. Discovery and the token endpoint allow
// cross-origin requests, as identity providers do for browser clients.
type testIssuer struct {
	URL            string
	clientID       string
	redirectPrefix string // the only redirect URI accepted (set once the gateway listens)
	users          map[string]map[string]any

	key *rsa.PrivateKey

	mu        sync.Mutex
	codes     map[string]issuedCode
	exchanges int // codes exchanged with a valid verifier
}

type issuedCode struct {
	user, challenge, redirect, nonce string
	expires                          time.Time
}

func newTestIssuer(t *testing.T, clientID string) *testIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &testIssuer{clientID: clientID, key: key, users: map[string]map[string]any{}, codes: map[string]issuedCode{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer": iss.URL, "authorization_endpoint": iss.URL + "/authorize", "token_endpoint": iss.URL + "/token",
			"jwks_uri": iss.URL + "/jwks", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
			"code_challenge_methods_supported": []string{"S256"}, "grant_types_supported": []string{"authorization_code"},
			"token_endpoint_auth_methods_supported": []string{"none"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "console-test", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", iss.authorize)
	mux.HandleFunc("POST /authorize", iss.authorize)
	mux.HandleFunc("POST /token", iss.token)
	mux.HandleFunc("OPTIONS /token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Methods", "POST")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type, Accept")
		w.WriteHeader(http.StatusNoContent)
	})
	// The URL is known before the server starts, so no handler can read
	// iss.URL before it is written.
	srv := httptest.NewUnstartedServer(mux)
	iss.URL = "http://" + srv.Listener.Addr().String()
	srv.Start()
	t.Cleanup(srv.Close)
	return iss
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test identity provider</title></head>
<body style="font-family: sans-serif; max-width: 420px; margin: 60px auto">
<h1>Test identity provider</h1>
<p>Sign in to <strong>{{.ClientID}}</strong></p>
{{if .Error}}<p role="alert" style="color: #b91c1c">{{.Error}}</p>{{end}}
<form method="post" action="/authorize">
{{range $k, $v := .Params}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<label>User name <input name="username" autocomplete="username"></label>
<button type="submit">Sign in</button>
</form></body></html>`))

// authorize shows the login form (GET) and, for a known user, redirects
// back with a one-time code (POST).
func (iss *testIssuer) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := r.Form
	switch {
	case p.Get("response_type") != "code", p.Get("client_id") != iss.clientID:
		http.Error(w, "unsupported response type or unknown client", http.StatusBadRequest)
		return
	case p.Get("redirect_uri") == "" || p.Get("redirect_uri") != iss.redirectPrefix:
		// Never redirect to an unregistered URI.
		http.Error(w, "unregistered redirect_uri", http.StatusBadRequest)
		return
	case p.Get("code_challenge_method") != "S256" || len(p.Get("code_challenge")) != 43 || p.Get("state") == "" || p.Get("nonce") == "":
		http.Error(w, "PKCE (S256), state and nonce are required", http.StatusBadRequest)
		return
	}
	params := map[string]string{}
	for _, k := range []string{"response_type", "client_id", "redirect_uri", "scope", "code_challenge", "code_challenge_method", "state", "nonce"} {
		params[k] = p.Get(k)
	}
	user := p.Get("username")
	if r.Method == http.MethodGet || iss.users[user] == nil {
		msg := ""
		if r.Method == http.MethodPost {
			msg = "Unknown user."
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		loginPage.Execute(w, map[string]any{"ClientID": iss.clientID, "Params": params, "Error": msg})
		return
	}
	code := randomString(32)
	iss.mu.Lock()
	iss.codes[code] = issuedCode{user: user, challenge: p.Get("code_challenge"), redirect: p.Get("redirect_uri"),
		nonce: p.Get("nonce"), expires: time.Now().Add(time.Minute)}
	iss.mu.Unlock()
	u, _ := url.Parse(p.Get("redirect_uri"))
	u.RawQuery = url.Values{"code": {code}, "state": {p.Get("state")}}.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// token exchanges a code for an ID token and an access token (both JWTs
// for the client), checking the PKCE verifier.
func (iss *testIssuer) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "no-store")
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	f := r.PostForm
	iss.mu.Lock()
	c, ok := iss.codes[f.Get("code")]
	delete(iss.codes, f.Get("code")) // one use, whatever happens
	iss.mu.Unlock()
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	switch {
	case f.Get("grant_type") != "authorization_code":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	case !ok || time.Now().After(c.expires) || f.Get("client_id") != iss.clientID || f.Get("redirect_uri") != c.redirect:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	case base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "PKCE verification failed"})
		return
	}
	now := time.Now()
	claims := map[string]any{"iss": iss.URL, "aud": iss.clientID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range iss.users[c.user] {
		claims[k] = v
	}
	access := iss.sign(claims)
	claims["nonce"] = c.nonce
	id := iss.sign(claims)
	iss.mu.Lock()
	iss.exchanges++
	iss.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "id_token": id, "token_type": "Bearer", "expires_in": 3600})
}

func (iss *testIssuer) sign(claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: iss.key, KeyID: "console-test"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := signer.Sign(b)
	if err != nil {
		panic(err)
	}
	s, _ := obj.CompactSerialize()
	return s
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
