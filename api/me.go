package api

import (
	"net/http"
	"time"

	"github.com/custodian/custodian/api/auth"
)

// Me is the answer of GET /v1/me: the principal of the bearer credential
// that asks. The review console shows it and hides what the role may not
// use; the API still checks every request on its own.
type Me struct {
	Tenant      string     `json:"tenant"`
	Role        string     `json:"role"`
	Department  string     `json:"department,omitempty"`
	Name        string     `json:"name,omitempty"`
	Actor       string     `json:"actor"`  // as in audit entries: token:ID or oidc:SUBJECT
	Source      string     `json:"source"` // token | oidc
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	Permissions []string   `json:"permissions"`
}

// RegisterMe adds GET /v1/me to srv. Every role may call it, so the route
// has no permission of the role table: the handler authenticates the
// credential itself, with the router's 401 answers (and their audit
// entries through the server's RejectFunc).
func RegisterMe(srv *Server) {
	rt := Route{Method: "GET", Pattern: "/v1/me",
		Summary: "the caller's tenant, role, department and permissions (any authenticated role)"}
	rt.Handler = func(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
		p, ok := srv.authenticate(w, r, rt)
		if !ok {
			return
		}
		w.Header().Set("Cache-Control", "private, no-store")
		WriteJSON(w, http.StatusOK, meOf(p))
	}
	srv.Handle(rt)
}

func meOf(p auth.Principal) Me {
	m := Me{Tenant: p.Tenant, Role: string(p.Role), Department: p.Department, Name: p.Name,
		Actor: p.Actor(), Source: p.Source, Permissions: []string{}}
	if !p.ExpiresAt.IsZero() {
		t := p.ExpiresAt.UTC()
		m.ExpiresAt = &t
	}
	for _, perm := range p.Role.Permissions() {
		m.Permissions = append(m.Permissions, string(perm))
	}
	return m
}
