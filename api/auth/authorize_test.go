package auth

import (
	"fmt"
	"slices"
	"testing"

	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"gorm.io/gorm"
)

// matrix is the documented role × permission table (docs/auth.md), written
// out independently of the code's table: for admin, compliance,
// supervisor, auditor, ingest in that order, 'T' = whole tenant,
// 'D' = own department, '-' = never.
var matrix = map[Permission]string{
	SessionsRead:    "TTD--",
	SessionsWrite:   "TTD--",
	RecordingsRead:  "TTD--",
	MediaRead:       "TTD--",
	TranscriptsRead: "TTD--",
	// the unredacted copy: not for supervisors
	TranscriptsUnredacted: "TT---",
	Search:                "TTD--",
	HoldsRead:             "TT---",
	HoldsWrite:            "TT---",
	PoliciesRead:          "TT---",
	PoliciesWrite:         "T----",
	TokensRead:            "TT---",
	TokensWrite:           "TT---",
	AuditRead:             "TT-T-",
	ExportsRead:           "TT---",
	ExportsWrite:          "TT---",
	Ingest:                "T---T",
}

func TestMatrixCoversEveryPermission(t *testing.T) {
	if len(matrix) != len(AllPermissions()) {
		t.Fatalf("matrix has %d permissions, code has %d", len(matrix), len(AllPermissions()))
	}
	for _, p := range AllPermissions() {
		if _, ok := matrix[p]; !ok {
			t.Errorf("permission %s missing from the test matrix", p)
		}
	}
}

func TestAuthorizeMatrix(t *testing.T) {
	principals := map[Role]Principal{
		RoleAdmin:      {Tenant: "acme", Role: RoleAdmin},
		RoleCompliance: {Tenant: "acme", Role: RoleCompliance},
		RoleSupervisor: {Tenant: "acme", Role: RoleSupervisor, Department: "sales"},
		RoleAuditor:    {Tenant: "acme", Role: RoleAuditor},
		RoleIngest:     {Tenant: "acme", Role: RoleIngest},
	}
	resources := []struct {
		name     string
		res      Resource
		tenantOK bool // inside the caller's tenant
		deptOK   bool // inside a supervisor's department (or a collection)
	}{
		{"own tenant own department", Resource{Tenant: "acme", Department: "sales"}, true, true},
		{"own tenant other department", Resource{Tenant: "acme", Department: "support"}, true, false},
		{"own tenant no department", Resource{Tenant: "acme"}, true, false},
		{"own tenant collection", Resource{Tenant: "acme", Collection: true}, true, true},
		{"other tenant same department", Resource{Tenant: "globex", Department: "sales"}, false, true},
		{"other tenant collection", Resource{Tenant: "globex", Collection: true}, false, true},
		{"no tenant", Resource{Department: "sales"}, false, true},
	}
	n := 0
	for i, role := range Roles() {
		p := principals[role]
		for _, perm := range AllPermissions() {
			cell := matrix[perm][i]
			for _, r := range resources {
				want := Allow
				switch {
				case cell == '-':
					want = Forbidden
				case !r.tenantOK:
					want = NotFound
				case cell == 'D' && !r.deptOK:
					want = NotFound
				}
				if got := Authorize(p, perm, r.res); got != want {
					t.Errorf("%s %s on %s: %v, want %v", role, perm, r.name, got, want)
				}
				n++
			}
			if has := p.Role.Has(perm); has != (cell != '-') {
				t.Errorf("%s.Has(%s) = %v", role, perm, has)
			}
		}
	}
	t.Logf("%d cells", n)
}

func TestAuthorizeEdgeCases(t *testing.T) {
	salesOnly := &policy.Decision{Access: policy.Access{Roles: []string{"compliance", "supervisor"}, Departments: []string{"sales"}}}
	complianceOnly := &policy.Decision{Access: policy.Access{Roles: []string{"compliance"}}}
	open := &policy.Decision{}
	tests := []struct {
		name string
		p    Principal
		perm Permission
		res  Resource
		want Decision
	}{
		{"supervisor without department: item", Principal{Tenant: "a", Role: RoleSupervisor}, RecordingsRead, Resource{Tenant: "a"}, NotFound},
		{"supervisor without department: department item", Principal{Tenant: "a", Role: RoleSupervisor}, RecordingsRead, Resource{Tenant: "a", Department: "sales"}, NotFound},
		{"supervisor without department: collection", Principal{Tenant: "a", Role: RoleSupervisor}, Search, Resource{Tenant: "a", Collection: true}, Allow},
		{"principal without tenant", Principal{Role: RoleAdmin}, RecordingsRead, Resource{Tenant: "a"}, Forbidden},
		{"unknown role", Principal{Tenant: "a", Role: "root"}, RecordingsRead, Resource{Tenant: "a"}, Forbidden},
		{"empty role", Principal{Tenant: "a"}, SessionsRead, Resource{Tenant: "a"}, Forbidden},
		{"role check before tenant check", Principal{Tenant: "a", Role: RoleAuditor}, MediaRead, Resource{Tenant: "b"}, Forbidden},
		{"ingest with department: own", Principal{Tenant: "a", Role: RoleIngest, Department: "sales"}, Ingest, Resource{Tenant: "a", Department: "sales"}, Allow},
		{"ingest with department: other", Principal{Tenant: "a", Role: RoleIngest, Department: "sales"}, Ingest, Resource{Tenant: "a", Department: "hr"}, NotFound},
		{"ingest without department: any", Principal{Tenant: "a", Role: RoleIngest}, Ingest, Resource{Tenant: "a", Department: "hr"}, Allow},
		{"ingest other tenant", Principal{Tenant: "a", Role: RoleIngest}, Ingest, Resource{Tenant: "b"}, NotFound},
		{"ingest ignores policy access", Principal{Tenant: "a", Role: RoleIngest}, Ingest, Resource{Tenant: "a", Policy: complianceOnly}, Allow},
		{"policy: supervisor in listed department", Principal{Tenant: "a", Role: RoleSupervisor, Department: "sales"}, MediaRead, Resource{Tenant: "a", Department: "sales", Policy: salesOnly}, Allow},
		{"policy: supervisor role not listed", Principal{Tenant: "a", Role: RoleSupervisor, Department: "sales"}, MediaRead, Resource{Tenant: "a", Department: "sales", Policy: complianceOnly}, NotFound},
		{"policy: supervisor transcript not listed", Principal{Tenant: "a", Role: RoleSupervisor, Department: "sales"}, TranscriptsRead, Resource{Tenant: "a", Department: "sales", Policy: complianceOnly}, NotFound},
		{"policy: narrowing does not apply to session control", Principal{Tenant: "a", Role: RoleSupervisor, Department: "sales"}, SessionsWrite, Resource{Tenant: "a", Department: "sales", Policy: complianceOnly}, Allow},
		{"policy: cannot widen department scope", Principal{Tenant: "a", Role: RoleSupervisor, Department: "quality"}, MediaRead, Resource{Tenant: "a", Department: "sales", Policy: &policy.Decision{Access: policy.Access{Departments: []string{"quality"}}}}, NotFound},
		{"policy: compliance listed", Principal{Tenant: "a", Role: RoleCompliance}, MediaRead, Resource{Tenant: "a", Department: "x", Policy: complianceOnly}, Allow},
		{"policy: compliance not listed", Principal{Tenant: "a", Role: RoleCompliance}, MediaRead, Resource{Tenant: "a", Policy: &policy.Decision{Access: policy.Access{Roles: []string{"supervisor"}}}}, NotFound},
		{"policy: compliance export not listed", Principal{Tenant: "a", Role: RoleCompliance}, ExportsWrite, Resource{Tenant: "a", Policy: &policy.Decision{Access: policy.Access{Roles: []string{"admin"}}}}, NotFound},
		{"policy: admin always", Principal{Tenant: "a", Role: RoleAdmin}, MediaRead, Resource{Tenant: "a", Policy: &policy.Decision{Access: policy.Access{Roles: []string{"supervisor"}}}}, Allow},
		{"policy open", Principal{Tenant: "a", Role: RoleSupervisor, Department: "d"}, RecordingsRead, Resource{Tenant: "a", Department: "d", Policy: open}, Allow},
		{"policy does not rescue other tenant", Principal{Tenant: "a", Role: RoleAdmin}, MediaRead, Resource{Tenant: "b", Policy: open}, NotFound},
	}
	for _, tt := range tests {
		if got := Authorize(tt.p, tt.perm, tt.res); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDecisionHTTPStatus(t *testing.T) {
	for d, want := range map[Decision]int{Allow: 200, Forbidden: 403, NotFound: 404, Decision(0): 403, Decision(9): 403} {
		if got := d.HTTPStatus(); got != want {
			t.Errorf("%v.HTTPStatus() = %d, want %d", d, got, want)
		}
	}
	if Decision(0).Allowed() {
		t.Error("the zero Decision must not allow")
	}
}

func TestCovers(t *testing.T) {
	// covers[r] lists the roles r covers.
	covers := map[Role][]Role{
		RoleAdmin:      {RoleAdmin, RoleCompliance, RoleSupervisor, RoleAuditor, RoleIngest},
		RoleCompliance: {RoleCompliance, RoleSupervisor, RoleAuditor},
		RoleSupervisor: {RoleSupervisor},
		RoleAuditor:    {RoleAuditor},
		RoleIngest:     {RoleIngest},
	}
	for _, r := range Roles() {
		for _, o := range Roles() {
			if got, want := r.Covers(o), slices.Contains(covers[r], o); got != want {
				t.Errorf("%s.Covers(%s) = %v, want %v", r, o, got, want)
			}
		}
	}
	if Role("root").Covers(RoleAuditor) || RoleAdmin.Covers("root") {
		t.Error("unknown roles cover or are covered")
	}
}

func TestCanCreateToken(t *testing.T) {
	admin := Principal{Tenant: "acme", Role: RoleAdmin}
	comp := Principal{Tenant: "acme", Role: RoleCompliance}
	sup := Principal{Tenant: "acme", Role: RoleSupervisor, Department: "sales"}
	tests := []struct {
		p      Principal
		tenant string
		role   Role
		dept   string
		want   Decision
	}{
		{admin, "acme", RoleAdmin, "", Allow},
		{admin, "acme", RoleIngest, "", Allow},
		{admin, "acme", RoleSupervisor, "sales", Allow},
		{admin, "acme", RoleAuditor, "", Allow},
		{admin, "globex", RoleAuditor, "", Forbidden},
		{admin, "acme", "root", "", Forbidden},
		{comp, "acme", RoleCompliance, "", Allow},
		{comp, "acme", RoleSupervisor, "support", Allow},
		{comp, "acme", RoleAuditor, "", Allow},
		{comp, "acme", RoleAdmin, "", Forbidden},
		{comp, "acme", RoleIngest, "", Forbidden},
		{comp, "globex", RoleAuditor, "", Forbidden},
		{sup, "acme", RoleSupervisor, "sales", Forbidden},
		{Principal{Tenant: "acme", Role: RoleAuditor}, "acme", RoleAuditor, "", Forbidden},
		{Principal{Tenant: "acme", Role: RoleIngest}, "acme", RoleIngest, "", Forbidden},
		{Principal{Role: RoleAdmin}, "", RoleAuditor, "", Forbidden},
	}
	for _, tt := range tests {
		if got := CanCreateToken(tt.p, tt.tenant, tt.role, tt.dept); got != tt.want {
			t.Errorf("%s of %s creates %s/%s in %s: %v, want %v", tt.p.Role, tt.p.Tenant, tt.role, tt.dept, tt.tenant, got, tt.want)
		}
	}
	if got := CanRevokeToken(admin, "globex", RoleAuditor, ""); got != NotFound {
		t.Errorf("revoking another tenant's token: %v, want NotFound", got)
	}
	if got := CanRevokeToken(comp, "acme", RoleAdmin, ""); got != Forbidden {
		t.Errorf("compliance revoking an admin token: %v, want Forbidden", got)
	}
	if got := CanRevokeToken(comp, "acme", RoleAuditor, ""); got != Allow {
		t.Errorf("compliance revoking an auditor token: %v, want Allow", got)
	}
	if got := CanRevokeToken(sup, "acme", RoleSupervisor, "sales"); got != Forbidden {
		t.Errorf("supervisor revoking: %v, want Forbidden", got)
	}
}

func TestScope(t *testing.T) {
	tests := []struct {
		p    Principal
		want Visibility
	}{
		{Principal{Tenant: "a", Role: RoleAdmin, Department: "x"}, Visibility{Tenant: "a", AllDepartments: true}},
		{Principal{Tenant: "a", Role: RoleCompliance}, Visibility{Tenant: "a", AllDepartments: true}},
		{Principal{Tenant: "a", Role: RoleAuditor}, Visibility{Tenant: "a", AllDepartments: true}},
		{Principal{Tenant: "a", Role: RoleSupervisor, Department: "sales"}, Visibility{Tenant: "a", Departments: []string{"sales"}}},
		{Principal{Tenant: "a", Role: RoleSupervisor}, Visibility{Tenant: "a"}},
		{Principal{Tenant: "a", Role: RoleIngest, Department: "sales"}, Visibility{Tenant: "a", Departments: []string{"sales"}}},
	}
	for _, tt := range tests {
		got := Scope(tt.p)
		if got.Tenant != tt.want.Tenant || got.AllDepartments != tt.want.AllDepartments || !slices.Equal(got.Departments, tt.want.Departments) {
			t.Errorf("Scope(%+v) = %+v, want %+v", tt.p, got, tt.want)
		}
	}
	v := Scope(Principal{Tenant: "a", Role: RoleSupervisor, Department: "sales"})
	if !v.Contains("a", "sales") || v.Contains("a", "hr") || v.Contains("b", "sales") || v.Contains("a", "") {
		t.Error("Contains for a supervisor")
	}
	if (Visibility{}).Contains("", "") {
		t.Error("empty visibility contains something")
	}
}

// TestScopeWhere filters real session rows in SQLite and PostgreSQL.
func TestScopeWhere(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		for _, s := range []meta.Session{
			{TenantID: "a", ID: "s1", Department: "sales"},
			{TenantID: "a", ID: "s2", Department: "support"},
			{TenantID: "a", ID: "s3"},
			{TenantID: "b", ID: "s4", Department: "sales"},
		} {
			if err := db.Create(&s).Error; err != nil {
				t.Fatal(err)
			}
		}
		ids := func(p Principal) string {
			var rows []meta.Session
			if err := Scope(p).Where(db.Model(&meta.Session{}), "tenant_id", "department").Order("id").Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			out := ""
			for _, r := range rows {
				out += r.ID + " "
			}
			return out
		}
		for _, tt := range []struct {
			p    Principal
			want string
		}{
			{Principal{Tenant: "a", Role: RoleCompliance}, "s1 s2 s3 "},
			{Principal{Tenant: "a", Role: RoleSupervisor, Department: "sales"}, "s1 "},
			{Principal{Tenant: "a", Role: RoleSupervisor}, ""},
			{Principal{Tenant: "b", Role: RoleAdmin}, "s4 "},
			{Principal{Role: RoleAdmin}, ""},
		} {
			if got := ids(tt.p); got != tt.want {
				t.Errorf("%s/%s/%q sees %q, want %q", tt.p.Tenant, tt.p.Role, tt.p.Department, got, tt.want)
			}
		}
	})
	defer func() {
		if recover() == nil {
			t.Error("a malformed column name did not panic")
		}
	}()
	Visibility{Tenant: "a"}.Where(&gorm.DB{}, "tenant_id; DROP TABLE x", "department")
}

func TestBearerToken(t *testing.T) {
	for h, want := range map[string]string{
		"Bearer abc": "abc", "bearer abc": "abc", "BEARER  abc ": "abc", "Basic abc": "", "Bearer": "", "": "", "Bearer ": "",
	} {
		got, ok := BearerToken(h)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q, %v", h, got, ok)
		}
	}
}

func ExampleAuthorize() {
	sup := Principal{Tenant: "acme", Role: RoleSupervisor, Department: "sales"}
	fmt.Println(Authorize(sup, MediaRead, Resource{Tenant: "acme", Department: "sales"}))
	fmt.Println(Authorize(sup, MediaRead, Resource{Tenant: "acme", Department: "support"}))
	fmt.Println(Authorize(sup, PoliciesWrite, Resource{Tenant: "acme"}))
	// Output:
	// allow
	// not_found
	// forbidden
}

// TestRoleNamesMatchPolicy keeps the role names an access rule may use in
// step with the roles here.
func TestRoleNamesMatchPolicy(t *testing.T) {
	if policy.RoleAdmin != string(RoleAdmin) || policy.RoleCompliance != string(RoleCompliance) || policy.RoleSupervisor != string(RoleSupervisor) {
		t.Fatal("policy role names differ from auth roles")
	}
	// Every role that can read content can be named in access.roles, and
	// policy.CanAccess refuses the others.
	for _, r := range Roles() {
		readsContent := r.Has(MediaRead)
		if got := policy.CanAccess(policy.Decision{}, string(r), "d"); got != readsContent {
			t.Errorf("policy.CanAccess(%s) = %v, but MediaRead = %v", r, got, readsContent)
		}
	}
}
