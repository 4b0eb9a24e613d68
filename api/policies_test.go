package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
)

const salesOff = `policies:
  - name: sales-off
    match: {tenant: default, department: sales}
    record: "off"
  - name: other-tenant
    match: {tenant: acme}
    record: optional
    retention: 30d
  - name: everything
    record: required
    consent: notice
    transcribe: true
    retention: 3650d
`

// counts of what a policy change writes.
type policyWrites struct{ versions, events, audits int64 }

func countPolicyWrites(t testing.TB, g *gatewaytest.Gateway) policyWrites {
	t.Helper()
	var w policyWrites
	g.DB.Model(&meta.PolicyVersion{}).Count(&w.versions)
	g.DB.Model(&meta.OutboxEvent{}).Where("kind = ?", events.PolicyUpdated).Count(&w.events)
	g.DB.Model(&meta.AuditEntry{}).Where("action = ?", "policy.update").Count(&w.audits)
	return w
}

func TestPolicies(t *testing.T) {
	g := start(t)
	url := g.URL() + "/v1/policies"
	compliance, _ := newToken(t, g, "default", auth.RoleCompliance, "", time.Hour)

	// The config file's (empty) document is in force: version 0.
	var doc api.PolicyDocument
	r := do(t, "GET", url, g.AdminToken, nil)
	if r.Status != 200 {
		t.Fatalf("GET = %d %s", r.Status, r.Body)
	}
	r.json(t, &doc)
	if doc.Version != 0 || doc.Source != "config" || doc.Scope != "gateway" || r.Header.Get("ETag") != `"policy-0"` || doc.DefaultRetention != "2555d" {
		t.Fatalf("GET before any PUT = %+v, ETag %q", doc, r.Header.Get("ETag"))
	}

	// A valid document becomes the new version in force.
	r = do(t, "PUT", url, g.AdminToken, []byte(salesOff), "Content-Type: application/yaml")
	if r.Status != 200 {
		t.Fatalf("PUT = %d %s", r.Status, r.Body)
	}
	r.json(t, &doc)
	if doc.Version != 1 || doc.Rules != 3 || doc.Source != "api" || doc.Document != salesOff || r.Header.Get("ETag") != `"policy-1"` {
		t.Fatalf("PUT answer = %+v", doc)
	}
	if v := g.Policies.Current(); v.Version != 1 {
		t.Fatalf("version in force = %d, want 1", v.Version)
	}
	d := g.Policies.Current().Set.Decide(policy.Input{Tenant: "default", Department: "sales"})
	if d.Rule != "sales-off" || d.Record != policy.RecordOff {
		t.Fatalf("decision for sales = %+v", d)
	}
	d = g.Policies.Current().Set.Decide(policy.Input{Tenant: "default", Department: "support"})
	if d.Rule != "everything" || d.Retention != 3650*24*time.Hour || !d.Transcribe {
		t.Fatalf("decision for support = %+v", d)
	}
	// A new session gets the new decision.
	if hasRoute(g, "POST", "/v1/sessions") {
		var ses struct {
			Decision      policy.Decision `json:"decision"`
			PolicyVersion int             `json:"policy_version"`
		}
		r := do(t, "POST", g.URL()+"/v1/sessions", g.AdminToken, []byte(`{"id":"after-put","department":"sales"}`))
		if r.Status != 201 && r.Status != 200 {
			t.Fatalf("POST /v1/sessions = %d %s", r.Status, r.Body)
		}
		r.json(t, &ses)
		if ses.Decision.Rule != "sales-off" || ses.Decision.Record != policy.RecordOff || ses.PolicyVersion != 1 {
			t.Fatalf("new session after PUT: decision %+v, version %d", ses.Decision, ses.PolicyVersion)
		}
	} else {
		t.Log("POST /v1/sessions is not registered in this build; the decision was checked on the set in force")
	}

	// Written once: version row, policy.updated event, audit entry.
	if w := countPolicyWrites(t, g); w != (policyWrites{1, 1, 1}) {
		t.Fatalf("after one PUT: %+v, want one of each", w)
	}
	var ev meta.OutboxEvent
	g.DB.Where("kind = ?", events.PolicyUpdated).Take(&ev)
	var data events.PolicyData
	json.Unmarshal(ev.Data, &data)
	if ev.TenantID != "default" || data.Version != 1 || data.Rules != 3 || data.SHA256 != doc.SHA256 || !strings.HasPrefix(data.Actor, "token:") {
		t.Fatalf("policy.updated event %+v data %+v", ev, data)
	}
	var entry meta.AuditEntry
	g.DB.Where("action = ?", "policy.update").Take(&entry)
	if entry.Target != "policy:1" || entry.Outcome != "success" || entry.Role != "admin" || entry.Details.V["sha256"] != doc.SHA256 {
		t.Fatalf("audit entry %+v", entry)
	}

	// GET shows it; as YAML too.
	r = do(t, "GET", url, compliance, nil)
	r.json(t, &doc)
	if r.Status != 200 || doc.Version != 1 || doc.Document != salesOff || doc.UpdatedBy == "" {
		t.Fatalf("GET after PUT = %d %+v", r.Status, doc)
	}
	r = do(t, "GET", url, g.AdminToken, nil, "Accept: application/yaml")
	if r.Status != 200 || string(r.Body) != salesOff || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/yaml") {
		t.Fatalf("GET as YAML = %d %q %q", r.Status, r.Header.Get("Content-Type"), r.Body)
	}

	// Malformed documents are rejected whole with line, column and
	// reason; the policy in force and the database are unchanged.
	bad := []struct {
		name, body     string
		line, column   int
		reasonContains string
	}{
		{"bad enum", "policies:\n  - name: a\n    record: sometimes\n", 3, 13, "sometimes"},
		{"unknown field", "policies:\n  - name: a\n    match: {dept: sales}\n", 3, 13, "unknown field"},
		{"bad retention", "policies:\n  - name: a\n    retention: 2190\n", 3, 16, "unit"},
		{"duplicate names", "policies:\n  - name: a\n  - name: a\n", 3, 0, "duplicate"},
		{"syntax", "policies:\n  - name: a\n    record: [required\n", 3, 0, "syntax"},
		{"bad JSON", `{"policies": [{"name": "a", "record": 1}]}`, 1, 0, ""},
	}
	before := countPolicyWrites(t, g)
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "PUT", url, g.AdminToken, []byte(tt.body), "Content-Type: application/yaml")
			p := r.problem(t, 400)
			var ext struct {
				Line, Column int
				Reason       string
				Errors       []struct {
					Line, Column int
					Reason       string
				}
			}
			r.json(t, &ext)
			if ext.Line != tt.line || (tt.column > 0 && ext.Column != tt.column) || !strings.Contains(ext.Reason, tt.reasonContains) {
				t.Fatalf("problem = %s; want line %d column %d and a reason with %q", r.Body, tt.line, tt.column, tt.reasonContains)
			}
			if len(ext.Errors) != 1 || ext.Errors[0].Line != tt.line || ext.Errors[0].Reason == "" {
				t.Fatalf("problem errors = %+v", ext.Errors)
			}
			if !strings.Contains(p.Detail, fmt.Sprintf("line %d", tt.line)) || !strings.Contains(p.Detail, "unchanged") {
				t.Fatalf("problem detail %q", p.Detail)
			}
		})
	}
	if v := g.Policies.Current().Version; v != 1 {
		t.Fatalf("after rejected documents version %d is in force, want 1", v)
	}
	if got := countPolicyWrites(t, g); got != before {
		t.Fatalf("rejected documents wrote something: %+v, before %+v", got, before)
	}
	for _, tt := range []struct {
		name, ct, body string
		status         int
	}{
		{"empty body", "application/yaml", "  \n", 400},
		{"text/plain", "text/plain", salesOff, 415},
	} {
		r := do(t, "PUT", url, g.AdminToken, []byte(tt.body), "Content-Type: "+tt.ct)
		r.problem(t, tt.status)
	}

	// The same structure in JSON; optimistic concurrency with If-Match.
	jsonDoc := `{"policies": [{"name": "all", "record": "optional", "retention": "365d"}]}`
	r = do(t, "PUT", url, g.AdminToken, []byte(jsonDoc), `If-Match: "policy-1"`)
	r.json(t, &doc)
	if r.Status != 200 || doc.Version != 2 || g.Policies.Current().Version != 2 {
		t.Fatalf("PUT JSON with If-Match = %d %s", r.Status, r.Body)
	}
	r = do(t, "PUT", url, g.AdminToken, []byte(salesOff), "Content-Type: application/yaml", `If-Match: "policy-1"`)
	r.problem(t, 412)
	if r.Header.Get("ETag") != `"policy-2"` {
		t.Fatalf("412 ETag = %q", r.Header.Get("ETag"))
	}
	if g.Policies.Current().Version != 2 {
		t.Fatal("a stale If-Match changed the policy")
	}

	// Warnings are returned for accepted documents.
	shadowed := "policies:\n  - name: all\n    record: optional\n  - name: never\n    match: {department: x}\n"
	r = do(t, "PUT", url, g.AdminToken, []byte(shadowed), "Content-Type: application/yaml")
	r.json(t, &doc)
	if r.Status != 200 || len(doc.Warnings) != 1 || doc.Warnings[0].Rule != "never" || doc.Warnings[0].Line != 4 {
		t.Fatalf("PUT with a shadowed rule = %d %+v", r.Status, doc.Warnings)
	}
	if w := countPolicyWrites(t, g); w != (policyWrites{3, 3, 3}) {
		t.Fatalf("after three accepted PUTs: %+v", w)
	}

	// Roles: compliance reads, only admin writes; the others get 403.
	for _, role := range []auth.Role{auth.RoleSupervisor, auth.RoleAuditor, auth.RoleIngest} {
		tok, _ := newToken(t, g, "default", role, "sales", time.Hour)
		do(t, "GET", url, tok, nil).problem(t, 403)
		do(t, "PUT", url, tok, []byte(salesOff), "Content-Type: application/yaml").problem(t, 403)
	}
	do(t, "PUT", url, compliance, []byte(salesOff), "Content-Type: application/yaml").problem(t, 403)
	do(t, "GET", url, "", nil).problem(t, 401)

	// Another tenant's admin reads the rules that apply to it and cannot
	// replace the gateway-wide document.
	r = do(t, "PUT", url, g.AdminToken, []byte(salesOff), "Content-Type: application/yaml")
	if r.Status != 200 {
		t.Fatalf("PUT = %d", r.Status)
	}
	acme, _ := newToken(t, g, "acme", auth.RoleAdmin, "", time.Hour)
	r = do(t, "GET", url, acme, nil)
	r.json(t, &doc)
	if r.Status != 200 || doc.Scope != "tenant" || doc.Rules != 2 || strings.Contains(doc.Document, "sales-off") ||
		!strings.Contains(doc.Document, "other-tenant") {
		t.Fatalf("other tenant's view = %d %+v", r.Status, doc)
	}
	do(t, "PUT", url, acme, []byte(salesOff), "Content-Type: application/yaml").problem(t, 403)
	if g.Policies.Current().Version != 4 {
		t.Fatalf("version in force %d, want 4", g.Policies.Current().Version)
	}
}

func hasRoute(g *gatewaytest.Gateway, method, pattern string) bool {
	return slices.ContainsFunc(g.API.Routes(), func(rt api.Route) bool { return rt.Method == method && rt.Pattern == pattern })
}

// TestPolicyReloadAcrossInstances: two gateways on one PostgreSQL database
// and one NATS; a version stored through one is in force on the other
// within seconds (the policy.updated event; the 15 s poll is the fallback).
func TestPolicyReloadAcrossInstances(t *testing.T) {
	a, b := twoInstances(t)

	start := time.Now()
	r := do(t, "PUT", a.URL()+"/v1/policies", a.AdminToken, []byte(salesOff), "Content-Type: application/yaml")
	if r.Status != 200 {
		t.Fatalf("PUT on A = %d %s", r.Status, r.Body)
	}
	checkFor(t, 2*time.Duration(20)*time.Second, 50*time.Millisecond, func() error {
		if v := b.Policies.Current().Version; v != 1 {
			return fmt.Errorf("instance B has version %d", v)
		}
		return nil
	})
	t.Logf("instance B installed version 1 %v after the PUT on A", time.Since(start).Round(time.Millisecond))
	if d := b.Policies.Current().Set.Decide(policy.Input{Tenant: "default", Department: "sales"}); d.Record != policy.RecordOff {
		t.Fatalf("instance B decides %+v", d)
	}
	if v := metricValue(t, b, "custodian_policy_version"); v != 1 {
		t.Fatalf("custodian_policy_version on B = %v", v)
	}
	// The PUT on B builds on A's version.
	r = do(t, "PUT", b.URL()+"/v1/policies", a.AdminToken, []byte("policies: []\n"), "Content-Type: application/yaml", `If-Match: "policy-1"`)
	if r.Status != 200 {
		t.Fatalf("PUT on B = %d %s", r.Status, r.Body)
	}
	checkFor(t, 40*time.Second, 50*time.Millisecond, func() error {
		if v := a.Policies.Current().Version; v != 2 {
			return fmt.Errorf("instance A has version %d", v)
		}
		return nil
	})
	var n int64
	a.DB.WithContext(context.Background()).Model(&meta.OutboxEvent{}).Where("kind = ?", events.PolicyUpdated).Count(&n)
	if n != 2 {
		t.Fatalf("%d policy.updated events, want 2", n)
	}
}

// twoInstances starts two gateways on one PostgreSQL database (a fresh
// schema) and one NATS (A's embedded server, listening on loopback; B
// connects to it), sharing the key-encryption keys as instances of one
// deployment do. It skips the test without CUSTODIAN_TEST_POSTGRES_DSN.
func twoInstances(t *testing.T, mutate ...func(*config.Config)) (a, b *gatewaytest.Gateway) {
	t.Helper()
	dsn := metatest.PostgresDSN(t)
	if dsn == "" {
		t.Skipf("%s not set", metatest.PostgresEnv)
	}
	natsAddr := freeAddr(t)
	a = gatewaytest.Start(t, append(mutate, func(c *config.Config) {
		c.Database.DSN = dsn
		c.NATS.ListenAddr = natsAddr
	})...)
	cfgB := gatewaytest.Config(t)
	for _, m := range mutate {
		m(&cfgB)
	}
	cfgB.Database.DSN = dsn
	cfgB.NATS.URL = "nats://" + natsAddr
	kr, err := os.ReadFile(filepath.Join(a.Config.DataDir, "keys", "keyring.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(cfgB.DataDir, "keys"), 0o700)
	if err := os.WriteFile(filepath.Join(cfgB.DataDir, "keys", "keyring.json"), kr, 0o600); err != nil {
		t.Fatal(err)
	}
	b = gatewaytest.StartConfig(t, cfgB)
	if b.InstanceID == a.InstanceID {
		t.Fatal("instances share an id")
	}
	return a, b
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestPolicyEngineWarning: a rule naming a transcription engine this
// gateway has no configuration for is accepted with a warning (its
// transcripts would fail unless a worker elsewhere has the engine); the
// offline engine needs no configuration and gets none.
func TestPolicyEngineWarning(t *testing.T) {
	g := start(t)
	url := g.URL() + "/v1/policies"
	body := "policies:\n  - name: clinic\n    match: {department: clinic}\n    transcribe: true\n    transcription_engine: aws\n" +
		"  - name: everything\n    transcribe: true\n    transcription_engine: offline\n"
	r := do(t, "PUT", url, g.AdminToken, []byte(body), "Content-Type: application/yaml")
	var doc api.PolicyDocument
	r.json(t, &doc)
	if r.Status != 200 || len(doc.Warnings) != 1 || doc.Warnings[0].Rule != "clinic" || doc.Warnings[0].Line != 2 ||
		!strings.Contains(doc.Warnings[0].Message, "transcription_engine aws is not configured") {
		t.Fatalf("PUT naming an unconfigured engine = %d %+v", r.Status, doc.Warnings)
	}
	if d := g.Policies.Current().Set.Decide(policy.Input{Tenant: "default", Department: "clinic"}); d.TranscriptionEngine != "aws" {
		t.Errorf("decision engine %q, want aws", d.TranscriptionEngine)
	}
	r = do(t, "GET", url, g.AdminToken, nil)
	doc = api.PolicyDocument{}
	r.json(t, &doc)
	if len(doc.Warnings) != 1 || doc.Warnings[0].Rule != "clinic" {
		t.Errorf("GET warnings %+v", doc.Warnings)
	}
}
