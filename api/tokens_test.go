package api_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/storage/meta"
)

func TestTokens(t *testing.T) {
	g := start(t)
	u := g.URL() + "/v1/tokens"
	tokens := func() int64 {
		var n int64
		g.DB.Model(&meta.Token{}).Count(&n)
		return n
	}

	r := do(t, "POST", u, g.AdminToken, []byte(`{"role":"supervisor","department":"sales","ttl":"2h","name":"night shift"}`))
	if r.Status != 201 || r.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.Header.Get("Location"), "/v1/tokens/tok_") {
		t.Fatalf("create: %d %v %s", r.Status, r.Header, r.Body)
	}
	var created api.CreatedToken
	r.json(t, &created)
	if !strings.HasPrefix(created.Token, "cst_") || created.Role != auth.RoleSupervisor || created.Department != "sales" ||
		created.Tenant != "default" || created.Status != auth.TokenActive || created.ExpiresAt == nil ||
		created.ExpiresAt.Sub(created.CreatedAt) != 2*time.Hour || created.Name != "night shift" {
		t.Fatalf("created %s", r.Body)
	}
	if r := do(t, "GET", g.URL()+"/v1/recordings", created.Token, nil); r.Status != 200 {
		t.Fatalf("new token does not work: %d", r.Status)
	}
	// The plaintext is never shown again, nor stored.
	var row meta.Token
	g.DB.First(&row, "id = ?", created.ID)
	if row.Hash != auth.HashToken(created.Token) || strings.Contains(row.Hash, created.Token) {
		t.Fatal("token not stored hashed")
	}

	comp, _ := newToken(t, g, "default", auth.RoleCompliance, "", time.Hour)
	// A compliance officer may create auditors, not admins or ingest.
	if r := do(t, "POST", u, comp, []byte(`{"role":"auditor"}`)); r.Status != 201 {
		t.Fatalf("compliance creates auditor: %d %s", r.Status, r.Body)
	}
	sup, _ := newToken(t, g, "default", auth.RoleSupervisor, "sales", time.Hour)
	before := tokens()
	do(t, "POST", u, comp, []byte(`{"role":"admin"}`)).problem(t, 403)
	do(t, "POST", u, comp, []byte(`{"role":"ingest"}`)).problem(t, 403)
	do(t, "POST", u, g.AdminToken, []byte(`{"role":"auditor","tenant":"acme"}`)).problem(t, 403)
	do(t, "POST", u, sup, []byte(`{"role":"supervisor","department":"sales"}`)).problem(t, 403)

	// Bad input changes nothing.
	big := `{"role":"auditor","name":"` + strings.Repeat("x", 2<<20) + `"}`
	for _, tt := range []struct {
		body   string
		ct     string
		status int
	}{
		{`{"role":`, "", 400},
		{`{"role":"auditor","rôle":"admin"}`, "", 400},
		{`{"role":"auditor"} {"role":"admin"}`, "", 400},
		{`{"role":"auditor","extra":1}`, "", 400},
		{`{"role":"king"}`, "", 400},
		{`{"role":"supervisor"}`, "", 400},
		{`{"role":"auditor","ttl":"forever"}`, "", 400},
		{`{"role":"auditor","ttl":"-5h"}`, "", 400},
		{`{"role":"auditor","name":"a\u0000b"}`, "", 400},
		{`{"role":5}`, "", 400},
		{`[]`, "", 400},
		{``, "", 400},
		{`{"role":"auditor"}`, "text/plain", 415},
		{big, "", 413},
	} {
		ct := tt.ct
		if ct == "" {
			ct = "application/json"
		}
		r := do(t, "POST", u, g.AdminToken, []byte(tt.body), "Content-Type: "+ct)
		if n := tokens(); n != before {
			t.Fatalf("%q created a token: %d %s", tt.body[:min(len(tt.body), 60)], r.Status, r.Body)
		}
		p := r.problem(t, tt.status)
		if tt.status == 400 && p.Detail == "" {
			t.Errorf("%q: no detail", tt.body[:min(len(tt.body), 40)])
		}
	}
	if n := tokens(); n != before {
		t.Fatalf("refused requests created %d tokens", n-before)
	}

	// List: no hashes, paginated, filtered.
	r = do(t, "GET", u+"?limit=2", comp, nil)
	var l api.TokenList
	r.json(t, &l)
	if r.Status != 200 || len(l.Tokens) != 2 || l.NextCursor == "" || bytes.Contains(r.Body, []byte(row.Hash)) {
		t.Fatalf("list: %s", r.Body)
	}
	seen := map[string]bool{}
	cursor := ""
	for {
		q := "?limit=2"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		var page api.TokenList
		do(t, "GET", u+q, comp, nil).json(t, &page)
		for _, ti := range page.Tokens {
			if seen[ti.ID] || ti.Tenant != "default" {
				t.Fatalf("token %s listed twice or of another tenant", ti.ID)
			}
			seen[ti.ID] = true
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	var n int64
	g.DB.Model(&meta.Token{}).Where("tenant_id = ?", "default").Count(&n)
	if int64(len(seen)) != n {
		t.Fatalf("listed %d of %d tokens", len(seen), n)
	}
	do(t, "GET", u+"?cursor=bm9wZQ", comp, nil).problem(t, 400)
	do(t, "GET", u, sup, nil).problem(t, 403)

	// Revoke.
	r = do(t, "DELETE", u+"/"+created.ID, comp, nil)
	var info auth.TokenInfo
	r.json(t, &info)
	if r.Status != 200 || info.Status != auth.TokenRevoked {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if p := do(t, "GET", g.URL()+"/v1/recordings", created.Token, nil).problem(t, 401); !strings.Contains(p.Detail, "revoked") {
		t.Fatalf("revoked token: %+v", p)
	}
	if r := do(t, "DELETE", u+"/"+created.ID, comp, nil); r.Status != 200 {
		t.Fatalf("revoking twice: %d", r.Status)
	}
	_, adminID := newToken(t, g, "default", auth.RoleAdmin, "", time.Hour)
	do(t, "DELETE", u+"/"+adminID, comp, nil).problem(t, 403)
	_, acmeID := newToken(t, g, "acme", auth.RoleAuditor, "", time.Hour)
	do(t, "DELETE", u+"/"+acmeID, g.AdminToken, nil).problem(t, 404)
	do(t, "DELETE", u+"/tok_missing", g.AdminToken, nil).problem(t, 404)
	do(t, "DELETE", u+"/..", g.AdminToken, nil)

	// Every change and refusal is in the audit log.
	for _, tt := range []struct{ action, outcome string }{
		{"token.create", "success"}, {"token.create", "denied"}, {"token.revoke", "success"}, {"token.revoke", "denied"},
		{"request.deny", "denied"}, {"auth.reject", "denied"},
	} {
		var c int64
		g.DB.Model(&meta.AuditEntry{}).Where("action = ? AND outcome = ?", tt.action, tt.outcome).Count(&c)
		if c == 0 {
			t.Errorf("no %s/%s audit entry", tt.action, tt.outcome)
		}
	}
	var e meta.AuditEntry
	g.DB.Where("action = ?", "auth.reject").First(&e)
	if e.Details.V["reason"] != "revoked" || e.Source != "127.0.0.1" {
		t.Errorf("auth.reject entry: %+v", e)
	}
}
