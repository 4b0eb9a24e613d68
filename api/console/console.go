package console

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/storage/meta"
)

//go:embed assets
var embedded embed.FS

// Pages are the console's client routes of one path segment; each answers
// the application's page (the application routes in the browser). The
// session page is /sessions/{id}.
var Pages = []string{"signin", "callback", "search", "sessions", "holds", "policies", "audit", "exports"}

// Options configure the console.
type Options struct {
	// OIDC is the identity provider the console signs users in with
	// (authorization code flow with PKCE in the browser; Issuer and
	// ClientID are used). An empty Issuer offers bearer tokens only.
	OIDC config.OIDC
	// HTTPClient fetches the issuer's discovery document (default: a
	// client with a 10 s timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Console serves the embedded application.
type Console struct {
	opts   Options
	log    *slog.Logger
	files  map[string]*asset // by path under assets/, e.g. "js/main.js"
	tmpl   *template.Template
	index  atomic.Pointer[map[string]*page] // by client route ("" for /)
	issuer *url.URL
}

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	gz    []byte // gzip-compressed body; nil when it would not be smaller
	etag  string
	ctype string
}

// page is the rendered application page with the security policy that
// goes with it.
type page struct {
	asset *asset
	csp   string
}

// Endpoints are what the console's browser code needs from the issuer's
// discovery document.
type Endpoints struct {
	Authorization string `json:"authorization_endpoint"`
	Token         string `json:"token_endpoint"`
}

// New loads the embedded files and renders the page.
func New(opts Options) (*Console, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	c := &Console{opts: opts, log: opts.Logger.With("component", "console"), files: map[string]*asset{}}
	if opts.OIDC.Issuer != "" {
		u, err := url.Parse(opts.OIDC.Issuer)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("console: oidc issuer %q is not an absolute URL", opts.OIDC.Issuer)
		}
		c.issuer = u
	}
	root, err := fs.Sub(embedded, "assets")
	if err != nil {
		return nil, fmt.Errorf("console: assets: %w", err)
	}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		if p == "index.html" {
			c.tmpl, err = template.New("index").Parse(string(b))
			return err
		}
		c.files[p] = newAsset(p, b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: load assets: %w", err)
	}
	if c.tmpl == nil {
		return nil, errors.New("console: assets: index.html missing")
	}
	if err := c.render(Endpoints{}); err != nil {
		return nil, err
	}
	return c, nil
}

func newAsset(name string, b []byte) *asset {
	sum := sha256.Sum256(b)
	a := &asset{body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, ctype: contentType(name)}
	if len(b) > 256 && compressible(a.ctype) {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		if buf.Len() < len(b) {
			a.gz = buf.Bytes()
		}
	}
	return a
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json":
		return "application/json"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.Contains(ctype, "javascript") ||
		strings.Contains(ctype, "json") || strings.Contains(ctype, "svg")
}

// indexData fills index.html.
type indexData struct {
	Issuer, ClientID                 string
	AuthorizationEndpoint, TokenEndp string
	Preload                          []string // page modules the route shows first
}

// preloads are the page modules each client route needs first: its own
// and, as a user who is not signed in goes there, the sign-in page's. The
// other pages are imported when shown (and while the browser is idle).
var preloads = map[string][]string{
	"":         {"signin"},
	"signin":   {"signin"},
	"callback": nil,
	"search":   {"signin", "search"},
	"sessions": {"signin", "sessions"},
	"session":  {"signin", "session", "sessions"},
	"holds":    {"signin", "holds"},
	"policies": {"signin", "policies"},
	"audit":    {"signin", "audit"},
	"exports":  {"signin", "exports"},
}

// render builds the page (and its CSP) with what is known of the issuer.
func (c *Console) render(ep Endpoints) error {
	pages := make(map[string]*page, len(preloads))
	csp := c.policy(ep)
	for route, mods := range preloads {
		d := indexData{AuthorizationEndpoint: ep.Authorization, TokenEndp: ep.Token}
		if c.issuer != nil {
			d.Issuer, d.ClientID = c.opts.OIDC.Issuer, c.opts.OIDC.ClientID
		}
		for _, m := range mods {
			name := "js/pages/" + m + ".js"
			if c.files[name] == nil {
				return fmt.Errorf("console: render index: no module %s", name)
			}
			d.Preload = append(d.Preload, "/assets/"+name)
		}
		var buf bytes.Buffer
		if err := c.tmpl.Execute(&buf, d); err != nil {
			return fmt.Errorf("console: render index: %w", err)
		}
		pages[route] = &page{asset: newAsset("index.html", buf.Bytes()), csp: csp}
	}
	c.index.Store(&pages)
	return nil
}

// policy returns the Content-Security-Policy of the page: nothing inline,
// nothing from elsewhere except the issuer's endpoints the sign-in calls,
// no framing.
func (c *Console) policy(ep Endpoints) string {
	connect := []string{"'self'"}
	for _, raw := range []string{c.opts.OIDC.Issuer, ep.Token} {
		if o := origin(raw); o != "" && !slices.Contains(connect, o) {
			connect = append(connect, o)
		}
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data:",
		"media-src 'self'",
		"connect-src " + strings.Join(connect, " "),
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
		"object-src 'none'",
		"require-trusted-types-for 'script'",
		"trusted-types 'none'",
	}, "; ")
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Discover fetches the issuer's discovery document until it succeeds or
// ctx ends, then renders the page with its endpoints (the browser then
// needs no cross-origin discovery, and the CSP names the token endpoint's
// origin when it differs from the issuer's). Without an issuer it returns
// at once.
func (c *Console) Discover(ctx context.Context) error {
	if c.issuer == nil {
		return nil
	}
	for wait := time.Second; ; wait = min(2*wait, time.Minute) {
		ep, err := c.discover(ctx)
		if err == nil {
			return c.render(ep)
		}
		c.log.Warn("console: oidc discovery failed; the browser will try itself", "issuer", c.opts.OIDC.Issuer, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (c *Console) discover(ctx context.Context) (Endpoints, error) {
	u := strings.TrimSuffix(c.opts.OIDC.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return Endpoints{}, err
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return Endpoints{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Endpoints{}, fmt.Errorf("discovery answered %s", resp.Status)
	}
	var doc struct {
		Issuer string `json:"issuer"`
		Endpoints
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return Endpoints{}, fmt.Errorf("discovery document: %w", err)
	}
	if doc.Issuer != c.opts.OIDC.Issuer {
		return Endpoints{}, fmt.Errorf("discovery names issuer %q", doc.Issuer)
	}
	for _, e := range []string{doc.Authorization, doc.Token} {
		if origin(e) == "" {
			return Endpoints{}, fmt.Errorf("discovery endpoint %q is not an absolute URL", e)
		}
	}
	return doc.Endpoints, nil
}

// Register adds the console's routes to srv: GET / and the client routes
// (the page), GET /assets/{path...} (the files). All are public: the page
// holds no data, and every API call it makes carries the user's
// credential.
func (c *Console) Register(srv *api.Server) {
	srv.Handle(api.Route{Method: "GET", Pattern: "/{$}", Handler: c.servePage,
		Summary: "the review console"})
	srv.Handle(api.Route{Method: "GET", Pattern: "/{page}", Handler: c.servePage,
		Summary: "the review console's client routes (other paths: 404)"})
	srv.Handle(api.Route{Method: "GET", Pattern: "/sessions/{id}", Handler: c.servePage,
		Summary: "the review console's session page"})
	srv.Handle(api.Route{Method: "GET", Pattern: "/assets/{path...}", Handler: c.serveAsset,
		Summary: "the review console's embedded files"})
}

func (c *Console) servePage(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	if p := r.PathValue("page"); p != "" && !slices.Contains(Pages, p) {
		api.WriteProblem(w, r, http.StatusNotFound, "not-found", "no such resource")
		return
	}
	if id := r.PathValue("id"); id != "" && !meta.ValidID(id) {
		api.WriteProblem(w, r, http.StatusNotFound, "not-found", "no such resource")
		return
	}
	route := r.PathValue("page")
	if r.PathValue("id") != "" {
		route = "session"
	}
	pg := (*c.index.Load())[route]
	securityHeaders(w, r)
	w.Header().Set("Content-Security-Policy", pg.csp)
	serve(w, r, pg.asset)
}

func (c *Console) serveAsset(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	a := c.files[r.PathValue("path")]
	if a == nil {
		api.WriteProblem(w, r, http.StatusNotFound, "not-found", "no such resource")
		return
	}
	securityHeaders(w, r)
	serve(w, r, a)
}

// securityHeaders are set on every console response.
func securityHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
	if r.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

// serve answers with a (pre-compressed) asset, revalidated by ETag on
// every load: a new binary serves new files at once.
func serve(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	body := a.body
	if a.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			body = a.gz
		}
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip (a
// q=0 refuses it).
func acceptsGzip(v string) bool {
	for part := range strings.SplitSeq(v, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.TrimSpace(name) != "*" {
			continue
		}
		params = strings.ReplaceAll(params, " ", "")
		if q, ok := strings.CutPrefix(params, "q="); ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
				return false
			}
		}
		return true
	}
	return false
}

func etagMatch(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
