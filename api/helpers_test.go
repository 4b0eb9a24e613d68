package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
)

// repoFile returns the path of a file relative to the repository root.
func repoFile(tb testing.TB, rel string) string {
	tb.Helper()
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", rel)
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(repoFile(tb, filepath.Join("testdata", name)))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// start starts a real gateway on embedded defaults.
func start(tb testing.TB, mutate ...func(*config.Config)) *gatewaytest.Gateway {
	tb.Helper()
	return gatewaytest.Start(tb, mutate...)
}

// newToken creates a token directly in the database and returns its
// plaintext and id.
func newToken(tb testing.TB, g *gatewaytest.Gateway, tenant string, role auth.Role, dept string, ttl time.Duration) (string, string) {
	tb.Helper()
	plain, row, err := auth.CreateToken(context.Background(), g.DB, auth.Spec{
		Tenant: tenant, Role: role, Department: dept, TTL: ttl, Name: "test " + string(role), CreatedBy: "test",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return plain, row.ID
}

// seedSession inserts a session row (with an optional stored policy
// decision) and a participant, if missing.
func seedSession(tb testing.TB, g *gatewaytest.Gateway, tenant, dept, sessionID string, dec *policy.Decision, participants ...string) {
	tb.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	s := meta.Session{TenantID: tenant, ID: sessionID, Department: dept, Status: meta.SessionEnded,
		RecordingStatus: meta.LiveNotRecording, StartedAt: now, CreatedAt: now, UpdatedAt: now}
	if dec != nil {
		b, _ := json.Marshal(dec)
		var m map[string]any
		json.Unmarshal(b, &m)
		s.Decision = meta.NewJSON(m)
	}
	var n int64
	g.DB.Model(&meta.Session{}).Where("tenant_id = ? AND id = ?", tenant, sessionID).Count(&n)
	if n == 0 {
		if err := g.DB.Create(&s).Error; err != nil {
			tb.Fatal(err)
		}
	}
	for _, pid := range participants {
		g.DB.Model(&meta.Participant{}).Where("tenant_id = ? AND session_id = ? AND id = ?", tenant, sessionID, pid).Count(&n)
		if n > 0 {
			continue
		}
		p := meta.Participant{TenantID: tenant, SessionID: sessionID, ID: pid, Name: pid, Consent: "granted",
			JoinedAt: &now, CreatedAt: now, UpdatedAt: now}
		if err := g.DB.Create(&p).Error; err != nil {
			tb.Fatal(err)
		}
	}
}

// recSpec describes a recording to seed.
type recSpec struct {
	Tenant, Dept, Session, Participant string
	Data                               []byte
	PartSize                           int // bytes per part (default 4096)
	Status                             string
	ContentType                        string
	StartOffsetMS                      int64
	Decision                           *policy.Decision // the session's
	// OwnDecision is the recording's own (participant-level) decision.
	OwnDecision *policy.Decision
}

// seedRecording writes a real encrypted recording (parts, manifest,
// data key) through the store and its row.
func seedRecording(tb testing.TB, g *gatewaytest.Gateway, s recSpec) meta.Recording {
	tb.Helper()
	ctx := context.Background()
	if s.PartSize == 0 {
		s.PartSize = 4096
	}
	if s.Status == "" {
		s.Status = meta.StatusComplete
	}
	if s.ContentType == "" {
		s.ContentType = "audio/ogg"
	}
	seedSession(tb, g, s.Tenant, s.Dept, s.Session, s.Decision, s.Participant)
	id := meta.NewID("rec")
	w, err := g.Store.NewWriter(ctx, s.Tenant, id, storage.WriterOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	for off := 0; off < len(s.Data); off += s.PartSize {
		if _, err := w.WritePart(ctx, s.Data[off:min(off+s.PartSize, len(s.Data))]); err != nil {
			tb.Fatal(err)
		}
	}
	m, err := w.Close(ctx, s.Status == meta.StatusComplete)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	retain := now.Add(365 * 24 * time.Hour)
	rec := meta.Recording{
		ID: id, TenantID: s.Tenant, SessionID: s.Session, ParticipantID: s.Participant, Department: s.Dept,
		Status: s.Status, ContentType: s.ContentType, Codecs: meta.NewJSON([]string{"opus"}),
		StartedAt: now, EndedAt: &now, StartOffsetMS: s.StartOffsetMS, DurationMS: 5000,
		Completeness: meta.NewJSON(map[string]any{"packets_expected": 250.0, "packets_received": 248.0, "packets_lost": 2.0}),
		RetainUntil:  &retain, CreatedAt: now, UpdatedAt: now, PolicyName: "test",
	}
	if s.OwnDecision != nil {
		b, _ := json.Marshal(s.OwnDecision)
		var dm map[string]any
		json.Unmarshal(b, &dm)
		rec.Decision = meta.NewJSON(dm)
	}
	m.Apply(&rec)
	if err := g.DB.Create(&rec).Error; err != nil {
		tb.Fatal(err)
	}
	return rec
}

// seedTranscript stores a transcript object and its row, as the
// transcription worker does.
func seedTranscript(tb testing.TB, g *gatewaytest.Gateway, rec meta.Recording, t transcribe.Transcript) meta.Transcript {
	tb.Helper()
	t.RecordingID, t.SessionID, t.ParticipantID = rec.ID, rec.SessionID, rec.ParticipantID
	b, err := json.Marshal(t)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := g.Store.PutObject(context.Background(), rec.TenantID, rec.ID, api.TranscriptObject, b, storage.PutOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	row := meta.Transcript{RecordingID: rec.ID, TenantID: rec.TenantID, SessionID: rec.SessionID, ParticipantID: rec.ParticipantID,
		Department: rec.Department, Status: meta.TranscriptCompleted, Engine: t.Engine, Language: t.Language,
		ObjectKey: info.Key, CipherSHA256: info.CipherSHA256, Redacted: true, WordCount: 3, CompletedAt: &now,
		CreatedAt: now, UpdatedAt: now}
	if err := g.DB.Create(&row).Error; err != nil {
		tb.Fatal(err)
	}
	return row
}

// sampleTranscript is a short transcript on the session clock.
func sampleTranscript(speaker string, startMS int64, text string) transcribe.Transcript {
	words := strings.Fields(text)
	tr := transcribe.Transcript{Speaker: speaker, Engine: "offline", Language: "en-US",
		Segments: []transcribe.Segment{{StartMS: startMS, EndMS: startMS + int64(len(words))*400, Text: text}}}
	for i, w := range words {
		tr.Segments[0].Words = append(tr.Segments[0].Words, transcribe.Word{
			StartMS: startMS + int64(i)*400, EndMS: startMS + int64(i+1)*400, Word: w, Confidence: 0.9})
	}
	if strings.Contains(text, "[REDACTED:") {
		tr.Redactions = []transcribe.Redaction{{StartMS: startMS, EndMS: startMS + 400, Type: "CARD_NUMBER"}}
	}
	return tr
}

// response is a finished HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decode %s: %v", r.Body, err)
	}
}

// problem asserts an application/problem+json answer of status.
func (r response) problem(tb testing.TB, status int) api.Problem {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		tb.Fatalf("Content-Type %q, want application/problem+json: %s", ct, r.Body)
	}
	var p api.Problem
	r.json(tb, &p)
	if p.Status != status || p.Type == "" {
		tb.Fatalf("problem document %+v", p)
	}
	return p
}

// do sends a request with a bearer token (none when empty) and optional
// headers ("Name: value").
func do(tb testing.TB, method, url, token string, body []byte, headers ...string) response {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until
