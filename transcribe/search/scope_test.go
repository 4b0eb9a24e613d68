package search

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/policy"
)

// A supervisor of one department never sees another department's hits,
// even when they rank higher: the department is a filter inside the
// index query, so pages, totals and cursors only ever hold their own.
func TestSupervisorNeverSeesOtherDepartments(t *testing.T) {
	x := openTestIndex(t, t.TempDir(), testKeys(t))
	var docs []Document
	for i := range 6 {
		// support's recordings say "refund" five times, sales' once: support ranks higher
		dept, n := "sales", 1
		if i%2 == 1 {
			dept, n = "support", 5
		}
		text := strings.Repeat("refund please ", n) + "thank you for calling"
		docs = append(docs, docSpec{rec: fmt.Sprintf("r%d-%s", i, dept), session: fmt.Sprint("s", i), participant: "p",
			dept: dept, at: corpusStart.Add(time.Duration(i) * time.Minute), text: text}.doc())
	}
	mustApply(t, x, "t1", docs, nil)
	q := mustQuery(t, "refund")

	all := mustSearch(t, x, Request{Access: adminOf("t1"), Query: q, Limit: 1})
	if len(all.Hits) != 1 || !strings.HasSuffix(all.Hits[0].RecordingID, "support") || all.Total != 6 {
		t.Fatalf("premise: support should rank first for an admin: %v total %d", hitIDs(all), all.Total)
	}
	sup := Access{Tenant: "t1", Departments: []string{"sales"}, Role: policy.RoleSupervisor, Department: "sales"}
	for _, sort := range []Sort{SortRelevance, SortTime, SortTimeAsc} {
		var seen []string
		cursor := ""
		for {
			res := mustSearch(t, x, Request{Access: sup, Query: q, Limit: 1, Sort: sort, Cursor: cursor})
			if res.Total != 3 {
				t.Fatalf("%s: supervisor total %d, want 3 (own department only)", sort, res.Total)
			}
			for _, h := range res.Hits {
				if h.Department != "sales" {
					t.Fatalf("%s: supervisor of sales got %s of %s", sort, h.RecordingID, h.Department)
				}
				seen = append(seen, h.RecordingID)
			}
			if res.NextCursor == "" {
				break
			}
			cursor = res.NextCursor
		}
		if len(seen) != 3 {
			t.Fatalf("%s: supervisor saw %v", sort, seen)
		}
	}
	// Asking for the other department explicitly finds nothing.
	if res := mustSearch(t, x, Request{Access: sup, Query: q, Department: "support"}); len(res.Hits) != 0 || res.Total != 0 {
		t.Fatalf("department filter widened the scope: %v", hitIDs(res))
	}
	// A supervisor without a department, or a role without content access, finds nothing.
	for _, a := range []Access{
		{Tenant: "t1", Role: policy.RoleSupervisor},
		{Tenant: "t1", Departments: []string{"sales"}, Role: policy.RoleSupervisor},
		{Tenant: "t1", AllDepartments: true, Role: "auditor"},
		{Tenant: "t1", AllDepartments: true, Role: "ingest"},
		{Tenant: "", AllDepartments: true, Role: policy.RoleAdmin},
	} {
		if res := mustSearch(t, x, Request{Access: a, Query: q}); len(res.Hits) != 0 || res.Total != 0 {
			t.Fatalf("access %+v found %v", a, hitIDs(res))
		}
	}
}

func TestOtherTenantsNeverAppear(t *testing.T) {
	x := openTestIndex(t, t.TempDir(), testKeys(t))
	mustApply(t, x, "t1", []Document{docSpec{tenant: "t1", rec: "rec-t1", session: "s", participant: "p", dept: "sales",
		at: corpusStart, text: "cancel my account"}.doc()}, nil)
	mustApply(t, x, "t2", []Document{docSpec{tenant: "t2", rec: "rec-t2", session: "s", participant: "p", dept: "sales",
		at: corpusStart, text: "cancel my account cancel cancel"}.doc()}, nil)
	for _, tenant := range []string{"t1", "t2"} {
		res := mustSearch(t, x, Request{Access: adminOf(tenant), Query: mustQuery(t, "cancel"), Limit: MaxLimit})
		if got := hitIDs(res); !slices.Equal(got, []string{"rec-" + tenant}) || res.Total != 1 {
			t.Fatalf("tenant %s found %v (total %d)", tenant, got, res.Total)
		}
	}
	// A document of another tenant is refused, not indexed in the wrong place.
	err := x.Apply(t.Context(), "t1", []Document{docSpec{tenant: "t2", rec: "rec-x", session: "s", participant: "p",
		dept: "sales", at: corpusStart, text: "cancel"}.doc()}, nil)
	if err == nil {
		t.Fatal("a t2 document was accepted into t1's index")
	}
}

// The policy's access rule is indexed with each recording and applied in
// the query: for every combination of rule and caller, the hits are
// exactly the recordings policy.CanAccess and the department scope allow.
func TestPolicyAccessRuleInsideQuery(t *testing.T) {
	x := openTestIndex(t, t.TempDir(), testKeys(t))
	rules := []*policy.Access{
		nil,
		{},
		{Roles: []string{policy.RoleCompliance}},
		{Roles: []string{policy.RoleSupervisor}},
		{Departments: []string{"sales"}},
		{Departments: []string{"support", "sales"}, Roles: []string{policy.RoleSupervisor, policy.RoleCompliance}},
		{Roles: []string{policy.RoleAdmin}},
		{Departments: []string{"support"}, Roles: []string{policy.RoleSupervisor}},
	}
	type rec struct {
		id   string
		dept string
		rule *policy.Access
	}
	var recs []rec
	var docs []Document
	for i, r := range rules {
		for _, dept := range []string{"sales", "support"} {
			id := fmt.Sprintf("acl-%d-%s", i, dept)
			recs = append(recs, rec{id, dept, r})
			docs = append(docs, docSpec{rec: id, session: "s", participant: "p", dept: dept, at: corpusStart,
				access: r, text: "the contract ends on the thirtieth of june"}.doc())
		}
	}
	mustApply(t, x, "t1", docs, nil)
	callers := []Access{
		{Tenant: "t1", AllDepartments: true, Role: policy.RoleAdmin},
		{Tenant: "t1", AllDepartments: true, Role: policy.RoleCompliance},
		{Tenant: "t1", Departments: []string{"sales"}, Role: policy.RoleSupervisor, Department: "sales"},
		{Tenant: "t1", Departments: []string{"support"}, Role: policy.RoleSupervisor, Department: "support"},
	}
	for _, c := range callers {
		var want []string
		for _, r := range recs {
			var d policy.Decision
			if r.rule != nil {
				d.Access = *r.rule
			}
			inScope := c.AllDepartments || slices.Contains(c.Departments, r.dept)
			if inScope && policy.CanAccess(d, c.Role, c.Department) {
				want = append(want, r.id)
			}
		}
		slices.Sort(want)
		res := mustSearch(t, x, Request{Access: c, Query: mustQuery(t, "thirtieth"), Limit: MaxLimit})
		got := hitIDs(res)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("%s/%s: hits %v\nwant (policy.CanAccess) %v", c.Role, c.Department, got, want)
		}
		if res.Total != uint64(len(want)) {
			t.Fatalf("%s/%s: total %d, want %d", c.Role, c.Department, res.Total, len(want))
		}
	}
}
