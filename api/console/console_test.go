package console_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/console"
	"github.com/custodian/custodian/config"
)

// newServer returns a router with a stand-in for the rest of the gateway
// (a /v1 route, WHIP, health) and the console.
func newServer(t *testing.T, opts console.Options) (*httptest.Server, *console.Console) {
	t.Helper()
	srv := api.NewServer(api.Options{})
	ok := func(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
		api.WriteJSON(w, 200, map[string]string{"route": r.Pattern})
	}
	for _, p := range []string{"/v1/recordings/{id}", "/healthz", "/readyz", "/metrics", "/v1/openapi.yaml"} {
		srv.Handle(api.Route{Method: "GET", Pattern: p, Handler: ok})
	}
	srv.Handle(api.Route{Method: "POST", Pattern: "/whip/{session}/{participant}", Handler: ok})
	c, err := console.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.Register(srv)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts, c
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func get(t *testing.T, url string, header ...string) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	tr := &http.Transport{DisableCompression: true}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

// The console answers its page for / and its client routes, its files
// under /assets/, and leaves every other path to the router: the API,
// WHIP and health routes are not shadowed and unknown paths keep the
// problem+json 404.
func TestRoutes(t *testing.T) {
	ts, _ := newServer(t, console.Options{})
	tests := []struct {
		path   string
		status int
		ctype  string
		route  string // for stand-in routes
	}{
		{"/", 200, "text/html", ""},
		{"/search", 200, "text/html", ""},
		{"/signin", 200, "text/html", ""},
		{"/callback?code=x&state=y", 200, "text/html", ""},
		{"/holds", 200, "text/html", ""},
		{"/policies", 200, "text/html", ""},
		{"/audit", 200, "text/html", ""},
		{"/exports", 200, "text/html", ""},
		{"/sessions", 200, "text/html", ""},
		{"/sessions/call-4711", 200, "text/html", ""},
		{"/assets/js/main.js", 200, "text/javascript", ""},
		{"/assets/js/pages/session.js", 200, "text/javascript", ""},
		{"/assets/console.css", 200, "text/css", ""},
		{"/healthz", 200, "application/json", "GET /healthz"},
		{"/readyz", 200, "application/json", "GET /readyz"},
		{"/metrics", 200, "application/json", "GET /metrics"},
		{"/v1/openapi.yaml", 200, "application/json", "GET /v1/openapi.yaml"},
		{"/v1/recordings/rec_1", 200, "application/json", "GET /v1/recordings/{id}"},
		{"/v1/nope", 404, "application/problem+json", ""},
		{"/v1", 404, "application/problem+json", ""},
		{"/v1/recordings/rec_1/nope", 404, "application/problem+json", ""},
		{"/whip/s/p", 404, "application/problem+json", ""},
		{"/nope", 404, "application/problem+json", ""},
		{"/index.html", 404, "application/problem+json", ""},
		{"/sessions/a/b", 404, "application/problem+json", ""},
		{"/sessions/.hidden", 404, "application/problem+json", ""},
		{"/assets/nope.js", 404, "application/problem+json", ""},
		{"/assets/index.html", 404, "application/problem+json", ""},
		{"/assets/../go.mod", 404, "application/problem+json", ""},
	}
	resp, err := http.Post(ts.URL+"/whip/s/p", "application/sdp", strings.NewReader("v=0"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte("POST /whip/")) {
		t.Errorf("POST /whip/s/p: %d %s", resp.StatusCode, b)
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			a := get(t, ts.URL+tc.path)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if !strings.HasPrefix(a.header.Get("Content-Type"), tc.ctype) {
				t.Errorf("Content-Type %q, want %q", a.header.Get("Content-Type"), tc.ctype)
			}
			if tc.route != "" && !bytes.Contains(a.body, []byte(tc.route)) {
				t.Errorf("answered by %s, want route %s", a.body, tc.route)
			}
			if tc.status == 404 {
				var p api.Problem
				if err := json.Unmarshal(a.body, &p); err != nil || p.Status != 404 || p.Type != api.ProblemTypeBase+"not-found" {
					t.Errorf("404 body %s", a.body)
				}
			}
		})
	}
}

// Each client route preloads the page modules it shows first.
func TestPreloads(t *testing.T) {
	ts, _ := newServer(t, console.Options{})
	for path, want := range map[string][]string{
		"/":                {"signin"},
		"/search":          {"signin", "search"},
		"/sessions/call-1": {"signin", "session", "sessions"},
		"/audit":           {"signin", "audit"},
		"/callback?code=x": nil,
	} {
		a := get(t, ts.URL+path)
		got := regexp.MustCompile(`modulepreload" href="/assets/js/pages/([a-z]+)\.js"`).FindAllStringSubmatch(string(a.body), -1)
		var names []string
		for _, m := range got {
			names = append(names, m[1])
		}
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Errorf("%s preloads %v, want %v", path, names, want)
		}
		for _, core := range []string{"main", "dom", "auth", "api"} {
			if !strings.Contains(string(a.body), `modulepreload" href="/assets/js/`+core+`.js"`) {
				t.Errorf("%s does not preload %s.js", path, core)
			}
		}
	}
}

// Every console response carries the security headers; the page's CSP
// allows no inline script, no other origin (without OIDC) and no framing.
func TestSecurityHeaders(t *testing.T) {
	ts, _ := newServer(t, console.Options{})
	for _, p := range []string{"/", "/sessions/x", "/assets/js/main.js"} {
		a := get(t, ts.URL+p)
		for k, want := range map[string]string{
			"X-Frame-Options":        "DENY",
			"X-Content-Type-Options": "nosniff",
			"Referrer-Policy":        "no-referrer",
			"Cache-Control":          "no-cache",
		} {
			if got := a.header.Get(k); got != want {
				t.Errorf("%s: %s %q, want %q", p, k, got, want)
			}
		}
	}
	csp := get(t, ts.URL+"/").header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self';",
		"frame-ancestors 'none'", "base-uri 'none'", "object-src 'none'", "require-trusted-types-for 'script'"} {
		if !strings.Contains(csp+";", d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows something unsafe", csp)
	}
}

// The page and the files hold no inline script, no inline style, no
// external URL and no HTML parsing from strings.
func TestAssetsAreSelfContained(t *testing.T) {
	dir := "assets"
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := string(b)
		if strings.HasSuffix(p, ".html") {
			for _, m := range regexp.MustCompile(`<script[^>]*>`).FindAllString(s, -1) {
				if !strings.Contains(m, "src=") {
					t.Errorf("%s: inline script %s", p, m)
				}
			}
			if strings.Contains(s, " style=") || strings.Contains(s, "<style") || regexp.MustCompile(`\son[a-z]+=`).MatchString(s) {
				t.Errorf("%s: inline style or event handler", p)
			}
		}
		if external.MatchString(s) {
			t.Errorf("%s: refers to another origin: %s", p, external.FindString(s))
		}
		if strings.HasSuffix(p, ".js") {
			// Every module imported exists.
			for _, m := range regexp.MustCompile(`(?:from |import\()'(\.[^']+)'`).FindAllStringSubmatch(s, -1) {
				if _, err := os.Stat(filepath.Join(filepath.Dir(p), m[1])); err != nil {
					t.Errorf("%s imports %s: %v", p, m[1], err)
				}
			}
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
				if strings.Contains(s, bad) {
					t.Errorf("%s uses %s", p, bad)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Files are served gzip-compressed to clients that accept it, plain to
// others, revalidated by ETag; the whole first load stays far below the
// 300 KiB budget.
func TestCompressionAndETag(t *testing.T) {
	ts, _ := newServer(t, console.Options{})
	page := get(t, ts.URL+"/", "Accept-Encoding", "gzip")
	if page.header.Get("Content-Encoding") != "gzip" || page.header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("page: Content-Encoding %q Vary %q", page.header.Get("Content-Encoding"), page.header.Get("Vary"))
	}
	gunzip(t, page.body)
	// Everything the console loads: every embedded file but the page.
	var files []string
	filepath.WalkDir("assets", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && p != "assets/index.html" {
			files = append(files, "/"+p)
		}
		return err
	})
	total := len(page.body)
	seen := map[string]bool{}
	for _, f := range files {
		m := []string{"", f}
		seen[f] = true
		gz := get(t, ts.URL+m[1], "Accept-Encoding", "gzip, deflate, br")
		plain := get(t, ts.URL+m[1])
		if gz.status != 200 || plain.status != 200 {
			t.Fatalf("%s: %d %d", m[1], gz.status, plain.status)
		}
		if plain.header.Get("Content-Encoding") != "" {
			t.Errorf("%s: compressed for a client without Accept-Encoding", m[1])
		}
		body := gz.body
		if gz.header.Get("Content-Encoding") == "gzip" {
			body = gunzip(t, gz.body)
		} else if len(plain.body) > 1024 {
			t.Errorf("%s (%d bytes) not compressed", m[1], len(plain.body))
		}
		if !bytes.Equal(body, plain.body) {
			t.Errorf("%s: gzip and plain bodies differ", m[1])
		}
		if n, _ := fmtAtoi(gz.header.Get("Content-Length")); n != len(gz.body) {
			t.Errorf("%s: Content-Length %s for %d bytes", m[1], gz.header.Get("Content-Length"), len(gz.body))
		}
		etag := gz.header.Get("ETag")
		if nm := get(t, ts.URL+m[1], "If-None-Match", etag, "Accept-Encoding", "gzip"); nm.status != 304 || len(nm.body) != 0 {
			t.Errorf("%s: If-None-Match %s answered %d", m[1], etag, nm.status)
		}
		if q0 := get(t, ts.URL+m[1], "Accept-Encoding", "gzip;q=0, identity"); q0.header.Get("Content-Encoding") != "" {
			t.Errorf("%s: gzip sent although refused with q=0", m[1])
		}
		total += len(gz.body)
	}
	if len(seen) < 10 {
		t.Fatalf("only %d files: %v", len(seen), seen)
	}
	t.Logf("first load: %d files, %d bytes compressed", len(seen)+1, total)
	if total > 300<<10 {
		t.Errorf("first load %d bytes, budget 300 KiB", total)
	}
}

func fmtAtoi(s string) (int, error) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, io.ErrUnexpectedEOF
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// With OIDC configured the page names the issuer and client (escaped as
// attribute values), the CSP allows the issuer's origin for the token
// exchange, and after discovery the token endpoint's origin and the
// endpoints themselves.
func TestOIDCConfiguration(t *testing.T) {
	idp := httptest.NewServer(http.NewServeMux())
	defer idp.Close()
	tokenHost := httptest.NewServer(http.NewServeMux())
	defer tokenHost.Close()
	var issuer string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "authorization_endpoint": issuer + "/authorize",
			"token_endpoint": tokenHost.URL + "/oauth/token"})
	})
	is := httptest.NewServer(mux)
	defer is.Close()
	issuer = is.URL
	ts, c := newServer(t, console.Options{OIDC: config.OIDC{Issuer: issuer, ClientID: `console"<x>`}})
	a := get(t, ts.URL+"/")
	body := string(a.body)
	if !strings.Contains(body, `<meta name="custodian-oidc-issuer" content="`+issuer+`">`) ||
		!strings.Contains(body, `content="console&#34;&lt;x&gt;"`) {
		t.Fatalf("page does not name the issuer and (escaped) client:\n%s", body)
	}
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' "+issuer+";") {
		t.Errorf("CSP before discovery: %q", csp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	a = get(t, ts.URL+"/")
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' "+issuer+" "+tokenHost.URL+";") {
		t.Errorf("CSP after discovery: %q", csp)
	}
	if !strings.Contains(string(a.body), `<meta name="custodian-oidc-token-endpoint" content="`+tokenHost.URL+`/oauth/token">`) {
		t.Errorf("page lacks the discovered token endpoint")
	}
}

// An issuer that is not a URL is a configuration error.
func TestBadIssuer(t *testing.T) {
	if _, err := console.New(console.Options{OIDC: config.OIDC{Issuer: "login.example.com", ClientID: "c"}}); err == nil {
		t.Fatal("New accepted an issuer without a scheme")
	}
}

// Discovery that names another issuer is not used; Discover keeps trying
// until its context ends.
func TestDiscoveryWrongIssuer(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": "https://evil.example", "authorization_endpoint": "https://evil.example/a", "token_endpoint": "https://evil.example/t"})
	})
	is := httptest.NewServer(mux)
	defer is.Close()
	ts, c := newServer(t, console.Options{OIDC: config.OIDC{Issuer: is.URL, ClientID: "c"}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c.Discover(ctx)
	a := get(t, ts.URL+"/")
	if strings.Contains(string(a.body), "evil") || strings.Contains(a.header.Get("Content-Security-Policy"), "evil") {
		t.Fatalf("a discovery document naming another issuer was used")
	}
}

func BenchmarkPage(b *testing.B) {
	srv := api.NewServer(api.Options{})
	c, err := console.New(console.Options{})
	if err != nil {
		b.Fatal(err)
	}
	c.Register(srv)
	req := httptest.NewRequest("GET", "/assets/js/pages/session.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
