package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/search"
)

// srchCall is a recording with a transcript, seeded as the recorder and
// the transcription worker would leave it (transcript.completed emitted
// with the row), so the gateway's search replica indexes it.
type srchCall struct {
	tenant, dept, session, participant, speaker, text string
	startOffsetMS                                     int64
	decision                                          *policy.Decision
}

type srchSeeded struct {
	rec meta.Recording
	tr  transcribe.Transcript
}

func srchSeed(tb testing.TB, g *gatewaytest.Gateway, c srchCall) srchSeeded {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := g.DB.Where(meta.Tenant{ID: c.tenant}).FirstOrCreate(&meta.Tenant{ID: c.tenant, Name: c.tenant, CreatedAt: now}).Error; err != nil {
		tb.Fatal(err)
	}
	s := meta.Session{TenantID: c.tenant, ID: c.session, Department: c.dept, Status: meta.SessionEnded,
		RecordingStatus: meta.LiveNotRecording, StartedAt: now, CreatedAt: now, UpdatedAt: now}
	if c.decision != nil {
		b, _ := json.Marshal(c.decision)
		var m map[string]any
		json.Unmarshal(b, &m)
		s.Decision = meta.NewJSON(m)
	}
	if err := g.DB.Where(meta.Session{TenantID: c.tenant, ID: c.session}).FirstOrCreate(&s).Error; err != nil {
		tb.Fatal(err)
	}
	id := meta.NewID("rec")
	w, err := g.Store.NewWriter(ctx, c.tenant, id, storage.WriterOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.WritePart(ctx, []byte(strings.Repeat("media bytes ", 100))); err != nil {
		tb.Fatal(err)
	}
	m, err := w.Close(ctx, true)
	if err != nil {
		tb.Fatal(err)
	}
	rec := meta.Recording{ID: id, TenantID: c.tenant, SessionID: c.session, ParticipantID: c.participant,
		Department: c.dept, Status: meta.StatusComplete, ContentType: "audio/ogg", StartedAt: now, EndedAt: &now,
		StartOffsetMS: c.startOffsetMS, DurationMS: 60000, CreatedAt: now, UpdatedAt: now}
	m.Apply(&rec)
	if err := g.DB.Create(&rec).Error; err != nil {
		tb.Fatal(err)
	}
	tr := transcribe.Transcript{RecordingID: id, SessionID: c.session, ParticipantID: c.participant,
		Speaker: c.speaker, Engine: "offline", Language: "en-US"}
	seg := transcribe.Segment{StartMS: c.startOffsetMS + 700}
	at := seg.StartMS
	for _, w := range strings.Fields(c.text) {
		seg.Words = append(seg.Words, transcribe.Word{StartMS: at, EndMS: at + 300, Word: w, Confidence: 0.9})
		seg.EndMS = at + 300
		at += 350
	}
	seg.Text = c.text
	tr.Segments = []transcribe.Segment{seg}
	b, _ := json.Marshal(tr)
	info, err := g.Store.PutObject(ctx, c.tenant, id, search.TranscriptObject, b, storage.PutOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	row := meta.Transcript{RecordingID: id, TenantID: c.tenant, SessionID: c.session, ParticipantID: c.participant,
		Department: c.dept, Status: meta.TranscriptCompleted, Engine: "offline", ObjectKey: info.Key,
		CipherSHA256: info.CipherSHA256, WordCount: len(seg.Words), CompletedAt: &now, CreatedAt: now, UpdatedAt: now}
	err = g.DB.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		return events.Emit(tx, events.Event{Tenant: c.tenant, Kind: events.TranscriptCompleted, Subject: id,
			Data: events.TranscriptData{RecordingID: id, SessionID: c.session, ParticipantID: c.participant, Engine: "offline"}})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return srchSeeded{rec: rec, tr: tr}
}

func srchToken(tb testing.TB, g *gatewaytest.Gateway, tenant string, role auth.Role, dept string) string {
	tb.Helper()
	plain, _, err := auth.CreateToken(context.Background(), g.DB, auth.Spec{Tenant: tenant, Role: role, Department: dept,
		Name: "search test", CreatedBy: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	return plain
}

// srchGet calls GET /v1/search with params.
func srchGet(tb testing.TB, g *gatewaytest.Gateway, token string, params url.Values) (int, []byte) {
	tb.Helper()
	req, _ := http.NewRequest("GET", g.URL()+"/v1/search?"+params.Encode(), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func srchOK(tb testing.TB, g *gatewaytest.Gateway, token string, params url.Values) api.SearchResponse {
	tb.Helper()
	status, b := srchGet(tb, g, token, params)
	if status != http.StatusOK {
		tb.Fatalf("search %v: status %d: %s", params, status, b)
	}
	var out api.SearchResponse
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatal(err)
	}
	return out
}

func srchIDs(r api.SearchResponse) []string {
	var out []string
	for _, h := range r.Hits {
		out = append(out, h.RecordingID)
	}
	return out
}

func srchWait(tb testing.TB, g *gatewaytest.Gateway, token, q string, n int) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := srchOK(tb, g, token, url.Values{"q": {q}, "limit": {"100"}})
		if len(r.Hits) == n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("q=%q: %d hits after 30 s, want %d", q, len(r.Hits), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSearchScopeThroughHTTP(t *testing.T) {
	g := gatewaytest.Start(t)
	const tenant = "default"
	admin := g.AdminToken
	// support says "refund" five times: it ranks above sales everywhere
	var sales, support []string
	for i := range 3 {
		s := srchSeed(t, g, srchCall{tenant: tenant, dept: "sales", session: fmt.Sprint("sales-", i), participant: "c",
			speaker: "Dana", text: "I would like a refund for the late fee"})
		sales = append(sales, s.rec.ID)
		s = srchSeed(t, g, srchCall{tenant: tenant, dept: "support", session: fmt.Sprint("support-", i), participant: "c",
			speaker: "Kim", text: "refund refund refund refund refund please"})
		support = append(support, s.rec.ID)
	}
	// sales recording whose policy lets only compliance read it
	restricted := srchSeed(t, g, srchCall{tenant: tenant, dept: "sales", session: "sales-restricted", participant: "c",
		speaker: "Lee", text: "refund the premium account",
		decision: &policy.Decision{Rule: "vip", Access: policy.Access{Roles: []string{"compliance"}}}})
	other := srchSeed(t, g, srchCall{tenant: "other", dept: "sales", session: "o-1", participant: "c",
		speaker: "Zed", text: "refund refund refund refund refund refund refund refund"})
	otherAdmin := srchToken(t, g, "other", auth.RoleAdmin, "")
	srchWait(t, g, admin, "refund", 7)
	srchWait(t, g, otherAdmin, "refund", 1)

	supSales := srchToken(t, g, tenant, auth.RoleSupervisor, "sales")
	supSupport := srchToken(t, g, tenant, auth.RoleSupervisor, "support")
	compliance := srchToken(t, g, tenant, auth.RoleCompliance, "")

	top := srchOK(t, g, admin, url.Values{"q": {"refund"}, "limit": {"1"}})
	if !slices.Contains(support, top.Hits[0].RecordingID) {
		t.Fatalf("premise: support ranks first for the admin, got %s", top.Hits[0].RecordingID)
	}
	walk := func(token string, params url.Values) ([]string, uint64) {
		var ids []string
		var total uint64
		for {
			r := srchOK(t, g, token, params)
			total = r.Total
			ids = append(ids, srchIDs(r)...)
			if r.NextCursor == "" {
				return ids, total
			}
			params.Set("cursor", r.NextCursor)
		}
	}
	for _, sort := range []string{"relevance", "time", "time_asc"} {
		ids, total := walk(supSales, url.Values{"q": {"refund"}, "limit": {"1"}, "sort": {sort}})
		slices.Sort(ids)
		want := slices.Clone(sales)
		slices.Sort(want)
		if !slices.Equal(ids, want) || total != 3 {
			t.Fatalf("sort %s: sales supervisor saw %v (total %d), want %v", sort, ids, total, want)
		}
	}
	ids, total := walk(supSupport, url.Values{"q": {"refund"}, "limit": {"2"}})
	slices.Sort(ids)
	want := slices.Clone(support)
	slices.Sort(want)
	if !slices.Equal(ids, want) || total != 3 {
		t.Fatalf("support supervisor saw %v (total %d)", ids, total)
	}
	// the department filter cannot widen a supervisor's scope
	if r := srchOK(t, g, supSales, url.Values{"q": {"refund"}, "department": {"support"}}); len(r.Hits) != 0 {
		t.Fatalf("department filter widened the scope: %v", srchIDs(r))
	}
	// the policy's access rule: compliance reads the restricted recording, a sales supervisor does not
	if ids := srchIDs(srchOK(t, g, compliance, url.Values{"q": {"premium"}})); !slices.Equal(ids, []string{restricted.rec.ID}) {
		t.Fatalf("compliance: %v", ids)
	}
	if ids := srchIDs(srchOK(t, g, supSales, url.Values{"q": {"premium"}})); len(ids) != 0 {
		t.Fatalf("sales supervisor found a recording the policy keeps from supervisors: %v", ids)
	}
	// tenants never see each other
	ids, _ = walk(admin, url.Values{"q": {"refund"}, "limit": {"100"}})
	if slices.Contains(ids, other.rec.ID) || len(ids) != 7 {
		t.Fatalf("default admin: %v", ids)
	}
	if ids := srchIDs(srchOK(t, g, otherAdmin, url.Values{"q": {"refund OR premium"}, "limit": {"100"}})); !slices.Equal(ids, []string{other.rec.ID}) {
		t.Fatalf("other tenant's admin: %v", ids)
	}
	// roles without search, and no token
	for _, tok := range []string{srchToken(t, g, tenant, auth.RoleAuditor, ""), srchToken(t, g, tenant, auth.RoleIngest, "")} {
		if status, _ := srchGet(t, g, tok, url.Values{"q": {"refund"}}); status != http.StatusForbidden {
			t.Fatalf("status %d, want 403", status)
		}
	}
	if status, _ := srchGet(t, g, "", url.Values{"q": {"refund"}}); status != http.StatusUnauthorized {
		t.Fatalf("no token: status %d, want 401", status)
	}
}

func TestSearchHitJumpsToTheMoment(t *testing.T) {
	g := gatewaytest.Start(t)
	s := srchSeed(t, g, srchCall{tenant: "default", dept: "sales", session: "jump", participant: "cust", speaker: "Dana",
		startOffsetMS: 2500, text: "hello I would like to cancel my account because the service was interrupted"})
	srchWait(t, g, g.AdminToken, "interrupted", 1)
	r := srchOK(t, g, g.AdminToken, url.Values{"q": {`"cancel my account"`}})
	if len(r.Hits) != 1 {
		t.Fatalf("hits %v", srchIDs(r))
	}
	h := r.Hits[0]
	var start, end int64 = -1, -1
	for i, w := range s.tr.Segments[0].Words {
		if w.Word == "cancel" {
			start, end = w.StartMS, s.tr.Segments[0].Words[i+2].EndMS
			break
		}
	}
	if h.StartMS != start || h.EndMS != end {
		t.Fatalf("moment %d–%d, want the words' %d–%d", h.StartMS, h.EndMS, start, end)
	}
	if h.MediaOffsetMS != start-2500 {
		t.Fatalf("media offset %d, want %d", h.MediaOffsetMS, start-2500)
	}
	wantURL := "/v1/recordings/" + s.rec.ID + "/media#t=" + strconv.FormatFloat(float64(start-2500)/1000, 'f', -1, 64)
	if h.MediaURL != wantURL || h.Speaker != "Dana" || h.SessionID != "jump" || h.ParticipantID != "cust" || h.Score <= 0 {
		t.Fatalf("hit %+v, want media_url %s", h, wantURL)
	}
	if !strings.Contains(h.SnippetHTML, "<mark>cancel my account</mark>") || len(h.Highlights) != 1 ||
		string([]rune(h.Snippet)[h.Highlights[0].Start:h.Highlights[0].End]) != "cancel my account" {
		t.Fatalf("snippet %q %v %q", h.Snippet, h.Highlights, h.SnippetHTML)
	}
	// The media URL (without its fragment) serves the recording with Range, so a player seeks.
	u, _ := url.Parse(g.URL() + h.MediaURL)
	u.Fragment = ""
	req, _ := http.NewRequest("GET", u.String(), nil)
	req.Header.Set("Authorization", "Bearer "+g.AdminToken)
	req.Header.Set("Range", "bytes=100-199")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || len(body) != 100 {
		t.Fatalf("media range: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestSearchIsAuditedWithoutTheQueryText(t *testing.T) {
	g := gatewaytest.Start(t)
	srchSeed(t, g, srchCall{tenant: "default", dept: "sales", session: "aud", participant: "c", speaker: "D",
		text: "please cancel my zanzibarite account"})
	srchWait(t, g, g.AdminToken, "zanzibarite", 1)
	var before int64
	g.DB.Model(&meta.AuditEntry{}).Where("action = ?", audit.ActionSearch).Count(&before)
	for _, q := range []string{`"cancel my zanzibarite account"`, `"cancel   my zanzibarite account"`, "zanzibarite -refund"} {
		srchOK(t, g, g.AdminToken, url.Values{"q": {q}, "department": {"sales"}})
	}
	srchGet(t, g, g.AdminToken, url.Values{"q": {`"zanzibarite unterminated`}})
	var rows []meta.AuditEntry
	if err := g.DB.Where("action = ?", audit.ActionSearch).Order("seq").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	rows = rows[before:]
	if len(rows) != 4 {
		t.Fatalf("%d search audit entries, want 4", len(rows))
	}
	for _, r := range rows {
		b, _ := json.Marshal(r)
		if strings.Contains(strings.ToLower(string(b)), "zanzibarite") || strings.Contains(string(b), "cancel") {
			t.Fatalf("audit entry holds the query text: %s", b)
		}
		if !strings.HasPrefix(r.Target, "query:hmac-sha256:") || r.Actor == "" {
			t.Fatalf("audit entry %+v", r)
		}
	}
	if rows[0].Target != rows[1].Target {
		t.Fatal("the same query (whitespace aside) must have the same digest")
	}
	if rows[0].Target == rows[2].Target {
		t.Fatal("different queries have the same digest")
	}
	if rows[0].Outcome != audit.OutcomeSuccess || rows[3].Outcome != audit.OutcomeError {
		t.Fatalf("outcomes %s %s", rows[0].Outcome, rows[3].Outcome)
	}
	if f, _ := rows[0].Details.V["filters"].(map[string]any); f["department"] != "sales" {
		t.Fatalf("details %v", rows[0].Details.V)
	}
	if status, b := srchGet(t, g, g.AdminToken, url.Values{"q": {"x"}}); status != http.StatusOK {
		t.Fatalf("%d %s", status, b)
	}
}

func TestSearchRejectsBadRequests(t *testing.T) {
	g := gatewaytest.Start(t)
	srchSeed(t, g, srchCall{tenant: "default", dept: "sales", session: "bad", participant: "c", speaker: "D", text: "thank you"})
	srchSeed(t, g, srchCall{tenant: "default", dept: "sales", session: "bad2", participant: "c", speaker: "D", text: "thank you again"})
	srchWait(t, g, g.AdminToken, "thank", 2)
	r := srchOK(t, g, g.AdminToken, url.Values{"q": {"thank OR you"}, "limit": {"1"}})
	tests := []struct {
		params url.Values
		field  string
	}{
		{url.Values{}, "q"},
		{url.Values{"q": {"  "}}, "q"},
		{url.Values{"q": {`"thank`}}, "q"},
		{url.Values{"q": {"-thank"}}, "q"},
		{url.Values{"q": {"thank OR"}}, "q"},
		{url.Values{"q": {"!!!"}}, "q"},
		{url.Values{"q": {"thank"}, "bogus": {"1"}}, "bogus"},
		{url.Values{"q": {"thank", "you"}}, "q"},
		{url.Values{"q": {"thank"}, "limit": {"0"}}, "limit"},
		{url.Values{"q": {"thank"}, "limit": {"101"}}, "limit"},
		{url.Values{"q": {"thank"}, "sort": {"random"}}, "sort"},
		{url.Values{"q": {"thank"}, "from": {"yesterday"}}, "from"},
		{url.Values{"q": {"thank"}, "from": {"2026-02-01T00:00:00Z"}, "to": {"2026-01-01T00:00:00Z"}}, "to"},
		{url.Values{"q": {"thank"}, "session_id": {"../x"}}, "session_id"},
		{url.Values{"q": {"thank"}, "cursor": {"garbage"}}, "cursor"},
		{url.Values{"q": {"thank"}, "cursor": {r.NextCursor}}, "cursor"}, // another query's cursor
	}
	for _, tt := range tests {
		status, b := srchGet(t, g, g.AdminToken, tt.params)
		var p api.Problem
		json.Unmarshal(b, &p)
		if status != http.StatusBadRequest || p.Status != 400 || len(p.Errors) != 1 || p.Errors[0].Field != tt.field {
			t.Fatalf("%v: status %d %s, want 400 naming %s", tt.params, status, b, tt.field)
		}
	}
	// the cursor of a page continues that query
	r2 := srchOK(t, g, g.AdminToken, url.Values{"q": {"thank OR you"}, "limit": {"1"}, "cursor": {r.NextCursor}})
	if len(r2.Hits) != 1 || r2.Hits[0].RecordingID == r.Hits[0].RecordingID || r2.NextCursor != "" {
		t.Fatalf("second page %v after %v", srchIDs(r2), srchIDs(r))
	}
}
