package auth

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"

	"github.com/custodian/custodian/policy"
	"gorm.io/gorm"
)

// Role is what a principal is allowed to be.
type Role string

// Roles (SPEC section 9).
const (
	RoleAdmin      Role = "admin"      // everything in its tenant, including WHIP
	RoleCompliance Role = "compliance" // all content, holds, exports and audit of its tenant
	RoleSupervisor Role = "supervisor" // sessions and content of its own department
	RoleAuditor    Role = "auditor"    // the audit log only
	RoleIngest     Role = "ingest"     // WHIP only (own department when it has one)
)

// Roles lists every role, most privileged first.
func Roles() []Role {
	return []Role{RoleAdmin, RoleCompliance, RoleSupervisor, RoleAuditor, RoleIngest}
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { _, ok := permissions[r]; return ok }

// Permission is one kind of action on the API.
type Permission string

// Permissions. Each route of the HTTP API needs exactly one.
const (
	SessionsRead    Permission = "sessions:read"    // GET /v1/sessions, /v1/sessions/{id}
	SessionsWrite   Permission = "sessions:write"   // create, end, pause, resume, consent, pull
	RecordingsRead  Permission = "recordings:read"  // GET /v1/recordings, /v1/recordings/{id} (metadata)
	MediaRead       Permission = "media:read"       // GET /v1/recordings/{id}/media
	TranscriptsRead Permission = "transcripts:read" // GET .../transcript
	// TranscriptsUnredacted reads the unredacted copy a policy with
	// keep_unredacted keeps beside the redacted transcript.
	TranscriptsUnredacted Permission = "transcripts:unredacted" // GET .../transcript/unredacted
	Search                Permission = "search"                 // GET /v1/search
	HoldsRead             Permission = "holds:read"             // GET /v1/legal-holds
	HoldsWrite            Permission = "holds:write"            // POST, DELETE /v1/legal-holds
	PoliciesRead          Permission = "policies:read"          // GET /v1/policies
	PoliciesWrite         Permission = "policies:write"         // PUT /v1/policies
	TokensRead            Permission = "tokens:read"            // list tokens
	TokensWrite           Permission = "tokens:write"           // POST /v1/tokens, revoke (see CanCreateToken)
	AuditRead             Permission = "audit:read"             // GET /v1/audit, /v1/audit/verify
	ExportsRead           Permission = "exports:read"           // GET /v1/exports/{id}, download
	ExportsWrite          Permission = "exports:write"          // POST /v1/exports
	Ingest                Permission = "ingest"                 // WHIP POST, DELETE, PATCH
)

// AllPermissions lists every permission.
func AllPermissions() []Permission {
	return []Permission{
		SessionsRead, SessionsWrite, RecordingsRead, MediaRead, TranscriptsRead, TranscriptsUnredacted, Search,
		HoldsRead, HoldsWrite, PoliciesRead, PoliciesWrite, TokensRead, TokensWrite,
		AuditRead, ExportsRead, ExportsWrite, Ingest,
	}
}

// permissions is the role → permission table (docs/auth.md).
var permissions = map[Role][]Permission{
	RoleAdmin: AllPermissions(),
	RoleCompliance: {
		SessionsRead, SessionsWrite, RecordingsRead, MediaRead, TranscriptsRead, TranscriptsUnredacted, Search,
		HoldsRead, HoldsWrite, PoliciesRead, TokensRead, TokensWrite, AuditRead, ExportsRead, ExportsWrite,
	},
	RoleSupervisor: {SessionsRead, SessionsWrite, RecordingsRead, MediaRead, TranscriptsRead, Search},
	RoleAuditor:    {AuditRead},
	RoleIngest:     {Ingest},
}

// Permissions returns the permissions of r (none for an unknown role).
func (r Role) Permissions() []Permission { return slices.Clone(permissions[r]) }

// Has reports whether r has permission p.
func (r Role) Has(p Permission) bool { return slices.Contains(permissions[r], p) }

// departmentScoped reports whether a role only ever sees its own
// department. Ingest is scoped only when its token names a department.
func departmentScoped(r Role, department string) bool {
	return r == RoleSupervisor || (r == RoleIngest && department != "")
}

// Covers reports whether r may do everything o may, over at least the same
// items: every permission of o is one of r's, and r is not confined to a
// department when o is not. It decides which roles a principal may give
// to new tokens and which role an OIDC token with several roles gets.
func (r Role) Covers(o Role) bool {
	if !r.Valid() || !o.Valid() {
		return false
	}
	for _, p := range permissions[o] {
		if !r.Has(p) {
			return false
		}
	}
	return !(r == RoleSupervisor && o != RoleSupervisor)
}

// contentPermissions read recorded content; the policy's access rule
// (Resource.Policy) narrows them.
var contentPermissions = []Permission{RecordingsRead, MediaRead, TranscriptsRead, TranscriptsUnredacted, Search, ExportsWrite}

// Decision is the outcome of Authorize. The zero value is not Allow.
type Decision int

// Decisions.
const (
	_         Decision = iota
	Allow              // go ahead
	Forbidden          // the role lacks the permission: 403
	NotFound           // the item is outside the caller's scope: 404
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "allow"
	case Forbidden:
		return "forbidden"
	case NotFound:
		return "not_found"
	default:
		return fmt.Sprintf("decision(%d)", int(d))
	}
}

// Allowed reports whether d is Allow.
func (d Decision) Allowed() bool { return d == Allow }

// HTTPStatus is the status to answer when d is not Allow: 403 or 404
// (200 for Allow, 403 for anything unknown).
func (d Decision) HTTPStatus() int {
	switch d {
	case Allow:
		return http.StatusOK
	case NotFound:
		return http.StatusNotFound
	default:
		return http.StatusForbidden
	}
}

// Resource is what a request acts on.
type Resource struct {
	// Tenant owns the item. Always set it: for an item from its row, for
	// a collection or a new item to the caller's tenant. Empty is NotFound.
	Tenant string
	// Department owns the item ("" when it has none). For supervisors and
	// department-scoped ingest tokens it must equal theirs.
	Department string
	// Collection marks a list or search over the tenant: the department
	// check is left to Scope, which filters the query.
	Collection bool
	// Policy is the item's stored policy decision, when it has one. Its
	// access rule narrows the content permissions (policy.CanAccess).
	Policy *policy.Decision
}

// Authorize is the one check every handler makes. Order matters so that
// nothing can be learnt from the answer: first the role's permission
// (Forbidden, independent of any item), then the tenant, the department
// and the policy's access rule (NotFound, indistinguishable from a
// missing id).
func Authorize(p Principal, perm Permission, res Resource) Decision {
	if p.Tenant == "" || !p.Role.Has(perm) {
		return Forbidden
	}
	if res.Tenant == "" || res.Tenant != p.Tenant {
		return NotFound
	}
	if departmentScoped(p.Role, p.Department) && !res.Collection {
		if p.Department == "" || res.Department != p.Department {
			return NotFound
		}
	}
	if res.Policy != nil && slices.Contains(contentPermissions, perm) &&
		!policy.CanAccess(*res.Policy, string(p.Role), p.Department) {
		return NotFound
	}
	return Allow
}

// CanCreateToken decides whether p may create a token of role and
// department in tenant: p needs TokensWrite, the tenant must be p's own,
// p's role must cover the new role (Role.Covers: nobody hands out more
// than they have), and a department-scoped principal may only create
// tokens for its own department. An admin may create any role in its
// tenant; a compliance officer may create compliance, supervisor and
// auditor tokens. Validity of the spec itself (e.g. a supervisor needs a
// department) is CreateToken's check.
func CanCreateToken(p Principal, tenant string, role Role, department string) Decision {
	if p.Tenant == "" || !p.Role.Has(TokensWrite) {
		return Forbidden
	}
	if tenant != p.Tenant || !p.Role.Covers(role) {
		return Forbidden
	}
	if departmentScoped(p.Role, p.Department) && (department != p.Department || !departmentScoped(role, department)) {
		return Forbidden
	}
	return Allow
}

// CanRevokeToken decides whether p may revoke a token of tenant, role and
// department: NotFound for another tenant's token (ids are not probed),
// otherwise the creation rule.
func CanRevokeToken(p Principal, tenant string, role Role, department string) Decision {
	if p.Tenant == "" || !p.Role.Has(TokensWrite) {
		return Forbidden
	}
	if tenant != p.Tenant {
		return NotFound
	}
	return CanCreateToken(p, tenant, role, department)
}

// Visibility is the part of the database a principal's list queries may
// see: one tenant, and either all its departments or the listed ones.
type Visibility struct {
	Tenant         string
	AllDepartments bool
	Departments    []string // when !AllDepartments; empty: nothing
}

// Scope returns what p's list queries may see: its tenant, and only its
// own department for a supervisor (nothing for a supervisor without one)
// or a department-scoped ingest token. Combine with Authorize on the
// collection for the permission.
func Scope(p Principal) Visibility {
	v := Visibility{Tenant: p.Tenant}
	if !departmentScoped(p.Role, p.Department) {
		v.AllDepartments = true
		return v
	}
	if p.Department != "" {
		v.Departments = []string{p.Department}
	}
	return v
}

// Contains reports whether an item of tenant and department is visible.
func (v Visibility) Contains(tenant, department string) bool {
	if v.Tenant == "" || tenant != v.Tenant {
		return false
	}
	return v.AllDepartments || slices.Contains(v.Departments, department)
}

var columnRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// Where adds the visibility to a query: tenantColumn = tenant and, unless
// all departments are visible, departmentColumn IN (...) (or no row at
// all). Column names are code constants; a malformed one panics.
func (v Visibility) Where(db *gorm.DB, tenantColumn, departmentColumn string) *gorm.DB {
	if !columnRE.MatchString(tenantColumn) || !columnRE.MatchString(departmentColumn) {
		panic(fmt.Sprintf("auth: bad column name %q or %q", tenantColumn, departmentColumn))
	}
	if v.Tenant == "" {
		return db.Where("1 = 0")
	}
	db = db.Where(tenantColumn+" = ?", v.Tenant)
	switch {
	case v.AllDepartments:
		return db
	case len(v.Departments) == 0:
		return db.Where("1 = 0")
	default:
		return db.Where(departmentColumn+" IN ?", v.Departments)
	}
}
