package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/custodian/custodian/api/auth"
)

// Handler serves a request of an authenticated principal. Routes without a
// permission (health, metrics, console assets) get the zero Principal.
type Handler func(w http.ResponseWriter, r *http.Request, p auth.Principal)

// Route is one entry of the router. Every route of the gateway is
// registered through Server.Handle so the set can be listed (OpenAPI
// conformance, the authorization matrix test).
type Route struct {
	Method  string // GET, POST, PUT, PATCH, DELETE, OPTIONS
	Pattern string // net/http pattern path, e.g. /v1/recordings/{id}
	// Perm is the permission the caller's role must have; "" means the
	// route is public (health, metrics, OpenAPI, console assets).
	Perm    auth.Permission
	Handler Handler
	// Summary documents the route (OpenAPI, logs).
	Summary string
	// Raw routes get the body unlimited (media upload paths); others are
	// limited to Options.MaxBodyBytes.
	Raw bool
}

// Authenticator turns a bearer credential into a principal
// (auth.Authenticator implements it).
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (auth.Principal, error)
}

// Options configure a Server.
type Options struct {
	Authenticator Authenticator
	Logger        *slog.Logger
	MaxBodyBytes  int64
	CORSOrigins   []string
	TrustProxy    bool
	// OnRequest observes every request (metrics): route pattern, status, duration.
	OnRequest func(method, pattern string, status int, d time.Duration)
}

// Server is the HTTP router of the gateway: API, WHIP, console, health.
type Server struct {
	opts     Options
	log      *slog.Logger
	mux      *http.ServeMux
	routes   []Route
	onReject atomic.Pointer[RejectFunc]
}

// RejectFunc observes a request the router refused before its handler
// ran: status 401 (err says why: auth.ErrExpired, auth.ErrRevoked, ...) or
// 403 (the role of p lacks rt.Perm). It runs before the answer is written
// and must not write to the response (the audit log uses it).
type RejectFunc func(r *http.Request, rt Route, p auth.Principal, status int, err error)

// OnReject sets the function told about every refused request (nil: none).
func (s *Server) OnReject(fn RejectFunc) {
	if fn == nil {
		s.onReject.Store(nil)
		return
	}
	s.onReject.Store(&fn)
}

func (s *Server) rejected(r *http.Request, rt Route, p auth.Principal, status int, err error) {
	if fn := s.onReject.Load(); fn != nil {
		(*fn)(r, rt, p, status, err)
	}
}

// NewServer returns an empty router.
func NewServer(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	s := &Server{opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, r, http.StatusNotFound, "not-found", "no such resource")
	})
	return s
}

// Handle registers a route. Registering the same method and pattern twice
// panics (a programming error).
func (s *Server) Handle(rt Route) {
	if rt.Perm != "" && !slices.Contains(auth.AllPermissions(), rt.Perm) {
		panic(fmt.Sprintf("api: route %s %s: unknown permission %q", rt.Method, rt.Pattern, rt.Perm))
	}
	s.routes = append(s.routes, rt)
	s.mux.Handle(rt.Method+" "+rt.Pattern, s.wrap(rt))
}

// Routes lists every registered route in registration order.
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cors(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

type principalKey struct{}

// PrincipalFrom returns the authenticated principal of a request.
func PrincipalFrom(ctx context.Context) (auth.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(auth.Principal)
	return p, ok
}

// statusWriter records the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "method", rt.Method, "route", rt.Pattern, "panic", fmt.Sprint(v))
				if sw.status == 0 {
					WriteProblem(sw, r, http.StatusInternalServerError, "internal", "internal error")
				}
			}
			if s.opts.OnRequest != nil {
				s.opts.OnRequest(rt.Method, rt.Pattern, sw.status, time.Since(start))
			}
		}()
		sw.Header().Set("X-Content-Type-Options", "nosniff")
		if !rt.Raw && r.Body != nil {
			r.Body = http.MaxBytesReader(sw, r.Body, s.opts.MaxBodyBytes)
		}
		var p auth.Principal
		if rt.Perm != "" {
			var ok bool
			if p, ok = s.authenticate(sw, r, rt); !ok {
				return
			}
			if !p.Role.Has(rt.Perm) {
				s.rejected(r, rt, p, http.StatusForbidden, nil)
				WriteProblem(sw, r, http.StatusForbidden, "forbidden", fmt.Sprintf("role %s may not %s", p.Role, rt.Perm))
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		}
		rt.Handler(sw, r, p)
	})
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, rt Route) (auth.Principal, bool) {
	if s.opts.Authenticator == nil {
		WriteProblem(w, r, http.StatusServiceUnavailable, "unavailable", "authentication is not configured")
		return auth.Principal{}, false
	}
	bearer, ok := auth.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		s.rejected(r, rt, auth.Principal{}, http.StatusUnauthorized, auth.ErrNoToken)
		w.Header().Set("WWW-Authenticate", `Bearer realm="custodian"`)
		WriteProblem(w, r, http.StatusUnauthorized, "unauthorized", "a bearer token is required")
		return auth.Principal{}, false
	}
	p, err := s.opts.Authenticator.Authenticate(r.Context(), bearer)
	if err != nil {
		if auth.IsUnauthenticated(err) {
			s.rejected(r, rt, auth.Principal{}, http.StatusUnauthorized, err)
			w.Header().Set("WWW-Authenticate", `Bearer realm="custodian", error="invalid_token"`)
			WriteProblem(w, r, http.StatusUnauthorized, "unauthorized", unauthDetail(err))
			return auth.Principal{}, false
		}
		s.log.Error("authentication failed", "err", err)
		WriteProblem(w, r, http.StatusServiceUnavailable, "unavailable", "authentication is temporarily unavailable")
		return auth.Principal{}, false
	}
	return p, true
}

func unauthDetail(err error) string {
	switch {
	case errors.Is(err, auth.ErrExpired):
		return "the token has expired"
	case errors.Is(err, auth.ErrRevoked):
		return "the token has been revoked"
	default:
		return "the token is not valid"
	}
}

// Authorize is the one item-level check of every handler: it answers the
// request itself (403 or 404 problem) and returns false when p may not act
// on res.
func Authorize(w http.ResponseWriter, r *http.Request, p auth.Principal, perm auth.Permission, res auth.Resource) bool {
	switch d := auth.Authorize(p, perm, res); d {
	case auth.Allow:
		return true
	case auth.NotFound:
		WriteProblem(w, r, http.StatusNotFound, "not-found", "no such resource")
	default:
		WriteProblem(w, r, d.HTTPStatus(), "forbidden", "not allowed")
	}
	return false
}

// SourceAddress returns the client address for audit entries.
func (s *Server) SourceAddress(r *http.Request) string {
	return SourceAddress(r, s.opts.TrustProxy)
}

// SourceAddress returns the client address of r, taking the first
// X-Forwarded-For hop only when trustProxy is set.
func SourceAddress(r *http.Request, trustProxy bool) string {
	if trustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if ip := net.ParseIP(strings.TrimSpace(first)); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// cors answers preflight requests from configured origins and decorates
// responses to them. It returns true when the request was fully answered.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || !slices.Contains(s.opts.CORSOrigins, origin) && !slices.Contains(s.opts.CORSOrigins, "*") {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "Location, Link, ETag, Content-Range, Accept-Ranges, Retry-After")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match, Range")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}
