package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"gorm.io/gorm"
)

// GET /v1/me answers every role its own principal and permissions, and
// 401 without a valid credential (audited like the router's 401s).
func TestMe(t *testing.T) {
	g := start(t)
	tests := []struct {
		role auth.Role
		dept string
		perm string
		not  string
	}{
		{auth.RoleAdmin, "", "policies:write", ""},
		{auth.RoleCompliance, "", "holds:write", "policies:write"},
		{auth.RoleSupervisor, "sales", "media:read", "holds:read"},
		{auth.RoleAuditor, "", "audit:read", "search"},
		{auth.RoleIngest, "", "ingest", "search"},
	}
	for _, tc := range tests {
		t.Run(string(tc.role), func(t *testing.T) {
			tok, id := newToken(t, g, "default", tc.role, tc.dept, time.Hour)
			r := do(t, "GET", g.URL()+"/v1/me", tok, nil)
			if r.Status != 200 || r.Header.Get("Cache-Control") != "private, no-store" {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			var me api.Me
			r.json(t, &me)
			if me.Tenant != "default" || me.Role != string(tc.role) || me.Department != tc.dept || me.Actor != "token:"+id ||
				me.Source != "token" || me.ExpiresAt == nil || time.Until(*me.ExpiresAt) < 50*time.Minute {
				t.Errorf("%+v", me)
			}
			perms := strings.Join(me.Permissions, " ")
			if !strings.Contains(perms, tc.perm) || (tc.not != "" && strings.Contains(perms, tc.not)) {
				t.Errorf("permissions %v: want %s, not %s", me.Permissions, tc.perm, tc.not)
			}
		})
	}
	for _, bad := range []string{"", "cst_" + strings.Repeat("A", 43), "nonsense"} {
		r := do(t, "GET", g.URL()+"/v1/me", bad, nil)
		p := r.problem(t, 401)
		if p.Type != api.ProblemTypeBase+"unauthorized" || r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("token %q: %+v %v", bad, p, r.Header)
		}
	}
	var n int64
	g.DB.Model(&meta.AuditEntry{}).Where("action = ? AND target = ?", "auth.reject", "route:GET /v1/me").Count(&n)
	if n < 3 {
		t.Errorf("%d auth.reject entries for /v1/me, want 3", n)
	}
}

func mediaTicket(t *testing.T, g interface{ URL() string }, token, recID string, want int) api.MediaTicket {
	t.Helper()
	r := do(t, "POST", g.URL()+"/v1/recordings/"+recID+"/media-ticket", token, nil)
	if r.Status != want {
		t.Fatalf("media ticket: %d %s, want %d", r.Status, r.Body, want)
	}
	var mt api.MediaTicket
	if want == 201 {
		r.json(t, &mt)
	}
	return mt
}

// A media ticket streams its one recording, with Range, as the caller who
// asked, without an Authorization header; each request is audited as the
// caller's media read.
func TestMediaTicket(t *testing.T) {
	g := start(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	rec := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s-ticket", Participant: "alice", Data: data})
	other := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s-ticket", Participant: "bob", Data: data[:1000]})
	tok, tokID := newToken(t, g, "default", auth.RoleSupervisor, "sales", time.Hour)

	mt := mediaTicket(t, g, tok, rec.ID, 201)
	if !strings.HasPrefix(mt.URL, "/v1/media/") || mt.RecordingID != rec.ID || time.Until(mt.ExpiresAt) > api.DefaultMediaTicketTTL || time.Until(mt.ExpiresAt) < 9*time.Minute {
		t.Fatalf("%+v", mt)
	}
	whole := do(t, "GET", g.URL()+mt.URL, "", nil)
	if whole.Status != 200 || !bytes.Equal(whole.Body, data) || whole.Header.Get("Content-Type") != "audio/ogg" || whole.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("whole: %d %d bytes %v", whole.Status, len(whole.Body), whole.Header)
	}
	part := do(t, "GET", g.URL()+mt.URL, "", nil, "Range: bytes=40000-40099")
	if part.Status != 206 || !bytes.Equal(part.Body, data[40000:40100]) || part.Header.Get("Content-Range") != "bytes 40000-40099/65536" {
		t.Fatalf("range: %d %q %s", part.Status, part.Header.Get("Content-Range"), part.Body)
	}
	head := do(t, "HEAD", g.URL()+mt.URL, "", nil)
	if head.Status != 200 || head.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("HEAD: %d %v", head.Status, head.Header)
	}
	// The audit log names the caller, not the ticket.
	var reads []meta.AuditEntry
	g.DB.Where("action = ? AND target = ?", "media.read", "recording:"+rec.ID).Order("seq").Find(&reads)
	if len(reads) != 3 || reads[0].Actor != "token:"+tokID || reads[1].Details.V["range"] != "bytes=40000-40099" {
		t.Errorf("media.read entries: %+v", reads)
	}
	var issued int64
	g.DB.Model(&meta.AuditEntry{}).Where("action = ? AND target = ? AND actor = ? AND outcome = ?", api.ActionMediaTicket, "recording:"+rec.ID, "token:"+tokID, "success").Count(&issued)
	if issued != 1 {
		t.Errorf("%d media.ticket entries", issued)
	}

	// One recording only: the ticket cannot be pointed at another one.
	ticket := strings.TrimPrefix(mt.URL, "/v1/media/")
	payload, sig, _ := strings.Cut(ticket, ".")
	b, _ := base64.RawURLEncoding.DecodeString(payload)
	var claims map[string]any
	json.Unmarshal(b, &claims)
	claims["rec"] = other.ID
	b, _ = json.Marshal(claims)
	forged := base64.RawURLEncoding.EncodeToString(b) + "." + sig
	for name, tk := range map[string]string{
		"forged recording": forged,
		"no signature":     payload,
		"bad signature":    payload + "." + base64.RawURLEncoding.EncodeToString(make([]byte, ed25519.SignatureSize)),
		"garbage":          "x.y",
		"too long":         strings.Repeat("a", 3000) + "." + sig,
	} {
		r := do(t, "GET", g.URL()+"/v1/media/"+tk, "", nil)
		if p := r.problem(t, 404); p.Type != api.ProblemTypeBase+"not-found" {
			t.Errorf("%s: %+v", name, p)
		}
	}
	// A ticket does not open other routes, and a bearer token is not a ticket.
	if r := do(t, "GET", g.URL()+"/v1/recordings/"+rec.ID+"/media?ticket="+ticket, "", nil); r.Status != 401 {
		t.Errorf("ticket as a query of the media route: %d", r.Status)
	}
	if r := do(t, "GET", g.URL()+"/v1/media/"+tok, "", nil); r.Status != 404 {
		t.Errorf("token as a ticket: %d", r.Status)
	}
	var rejected int64
	g.DB.Model(&meta.AuditEntry{}).Where("action = ? AND target = ?", "auth.reject", "route:GET /v1/media/{ticket}").Count(&rejected)
	if rejected != 6 {
		t.Errorf("%d auth.reject entries for bad tickets, want 6", rejected)
	}

	// Revoking the token ends its tickets at once.
	admin := g.AdminToken
	if r := do(t, "DELETE", g.URL()+"/v1/tokens/"+tokID, admin, nil); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if p := do(t, "GET", g.URL()+mt.URL, "", nil).problem(t, 410); p.Type != api.ProblemTypeBase+"media-link-expired" {
		t.Errorf("after revocation: %+v", p)
	}
}

// Issuing follows the media endpoint's checks: 403 for roles without
// media:read, 404 for another department, tenant, a policy's access rule
// or a missing recording (all audited as denied or error), 400 for a bad
// id.
func TestMediaTicketScope(t *testing.T) {
	g := start(t)
	data := []byte("OggS-not-really-but-bytes")
	sales := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s-a", Participant: "p", Data: data})
	restricted := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s-r", Participant: "p", Data: data,
		Decision: &policy.Decision{Rule: "r", Access: policy.Access{Roles: []string{"compliance"}}}})
	foreign := seedRecording(t, g, recSpec{Tenant: "acme", Dept: "sales", Session: "s-f", Participant: "p", Data: data})
	sup, _ := newToken(t, g, "default", auth.RoleSupervisor, "sales", time.Hour)
	supOther, _ := newToken(t, g, "default", auth.RoleSupervisor, "support", time.Hour)
	auditor, _ := newToken(t, g, "default", auth.RoleAuditor, "", time.Hour)
	compliance, _ := newToken(t, g, "default", auth.RoleCompliance, "", time.Hour)
	tests := []struct {
		name, token, rec string
		want             int
	}{
		{"supervisor own department", sup, sales.ID, 201},
		{"supervisor other department", supOther, sales.ID, 404},
		{"auditor", auditor, sales.ID, 403},
		{"other tenant", compliance, foreign.ID, 404},
		{"access rule excludes supervisors", sup, restricted.ID, 404},
		{"access rule admits compliance", compliance, restricted.ID, 201},
		{"missing", compliance, "rec_missing", 404},
		{"bad id", compliance, ".bad", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mt := mediaTicket(t, g, tc.token, tc.rec, tc.want)
			if tc.want == 201 {
				if r := do(t, "GET", g.URL()+mt.URL, "", nil); r.Status != 200 || !bytes.Equal(r.Body, data) {
					t.Errorf("ticket: %d %q", r.Status, r.Body)
				}
			}
		})
	}
	var denied int64
	g.DB.Model(&meta.AuditEntry{}).Where("action = ? AND outcome <> ?", api.ActionMediaTicket, "success").Count(&denied)
	if denied != 4 { // other department, other tenant, access rule, missing (403 and 400 are refused before)
		t.Errorf("%d refused media.ticket entries, want 4", denied)
	}
}

// A ticket expires; an OIDC caller's ticket never outlives its JWT.
func TestMediaTicketExpiry(t *testing.T) {
	srv := api.NewServer(api.Options{Authenticator: fixedAuth{auth.Principal{Subject: "u", Tenant: "t", Role: auth.RoleCompliance,
		Source: auth.SourceOIDC, ExpiresAt: time.Now().Add(90 * time.Second)}}})
	var served int
	srv.Handle(api.Route{Method: "GET", Pattern: "/v1/recordings/{id}/media", Perm: auth.MediaRead,
		Handler: func(w http.ResponseWriter, r *http.Request, p auth.Principal) {
			served++
			api.WriteJSON(w, 200, map[string]string{"id": r.PathValue("id"), "actor": p.Actor()})
		}})
	_, key, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	clock := func() time.Time { return now }
	db := openTestDB(t)
	mt := api.NewMediaTickets(srv, api.MediaTicketOptions{DB: db, Key: key, Clock: clock})
	if err := mt.Register(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	seedMetaRecording(t, db, "t", "rec_1")
	r := do(t, "POST", ts.URL+"/v1/recordings/rec_1/media-ticket", "jwt", nil)
	var tk api.MediaTicket
	r.json(t, &tk)
	if r.Status != 201 || tk.ExpiresAt.After(now.Add(91*time.Second)) {
		t.Fatalf("%d %s: the ticket outlives the JWT", r.Status, r.Body)
	}
	if r := do(t, "GET", ts.URL+tk.URL, "", nil); r.Status != 200 || !strings.Contains(string(r.Body), `"actor":"oidc:u"`) || !strings.Contains(string(r.Body), `"id":"rec_1"`) {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	now = now.Add(91 * time.Second)
	if p := do(t, "GET", ts.URL+tk.URL, "", nil).problem(t, 410); !strings.Contains(p.Detail, "expired") {
		t.Errorf("expired ticket: %+v", p)
	}
	if served != 1 {
		t.Errorf("media handler ran %d times", served)
	}
}

// Register needs the media route.
func TestMediaTicketNeedsMediaRoute(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	if err := api.NewMediaTickets(api.NewServer(api.Options{}), api.MediaTicketOptions{Key: key}).Register(); err == nil {
		t.Fatal("registered without the media route")
	}
}

// fixedAuth authenticates every bearer as one principal.
type fixedAuth struct{ p auth.Principal }

func (f fixedAuth) Authenticate(context.Context, string) (auth.Principal, error) { return f.p, nil }

func openTestDB(t *testing.T) *gorm.DB { return metatest.SQLite(t) }

func seedMetaRecording(t *testing.T, db *gorm.DB, tenant, id string) {
	t.Helper()
	now := time.Now().UTC()
	if err := db.Create(&meta.Recording{ID: id, TenantID: tenant, SessionID: "s", ParticipantID: "p", Status: meta.StatusComplete,
		StartedAt: now, CreatedAt: now, UpdatedAt: now}).Error; err != nil {
		t.Fatal(err)
	}
}

// Problems of a ticket request name the media route, not the ticket.
func TestMediaTicketProblemHidesTicket(t *testing.T) {
	g := start(t)
	rec := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s-gone", Participant: "p", Data: []byte("data")})
	mt := mediaTicket(t, g, g.AdminToken, rec.ID, 201)
	if err := g.DB.Model(&meta.Recording{}).Where("id = ?", rec.ID).Update("status", meta.StatusRecording).Error; err != nil {
		t.Fatal(err)
	}
	r := do(t, "GET", g.URL()+mt.URL, "", nil)
	p := r.problem(t, 409)
	if p.Instance != "/v1/recordings/"+rec.ID+"/media" || strings.Contains(string(r.Body), strings.TrimPrefix(mt.URL, "/v1/media/")) {
		t.Errorf("problem %+v", p)
	}
}
