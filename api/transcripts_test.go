package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/render"
)

func TestRecordingTranscript(t *testing.T) {
	g := start(t)
	rec := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s1", Participant: "agent-7", Data: []byte("media"), StartOffsetMS: 2000})
	seedTranscript(t, g, rec, sampleTranscript("Alice", 3500, "my card is [REDACTED:CARD_NUMBER] thanks"))
	u := g.URL() + "/v1/recordings/" + rec.ID + "/transcript"

	r := do(t, "GET", u, g.AdminToken, nil)
	if r.Status != 200 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v %s", r.Status, r.Header, r.Body)
	}
	var tr transcribe.Transcript
	r.json(t, &tr)
	if tr.RecordingID != rec.ID || tr.SessionID != "s1" || tr.ParticipantID != "agent-7" || tr.Speaker != "Alice" ||
		len(tr.Segments) != 1 || tr.Segments[0].StartMS != 3500 || len(tr.Segments[0].Words) != 5 ||
		tr.Segments[0].Text != "my card is [REDACTED:CARD_NUMBER] thanks" || len(tr.Redactions) != 1 {
		t.Fatalf("json: %s", r.Body)
	}
	r = do(t, "GET", u+"?format=vtt", g.AdminToken, nil)
	want := "WEBVTT\n\n1\n00:00:01.500 --> 00:00:03.500\n<v Alice>my card is [REDACTED:CARD_NUMBER] thanks\n"
	if r.Status != 200 || string(r.Body) != want || r.Header.Get("Content-Type") != "text/vtt; charset=utf-8" {
		t.Fatalf("vtt (on the recording's timeline): %d %q", r.Status, r.Body)
	}
	r = do(t, "GET", u+"?format=txt", g.AdminToken, nil)
	if r.Status != 200 || string(r.Body) != "[00:00:01.500] Alice: my card is [REDACTED:CARD_NUMBER] thanks\n" {
		t.Fatalf("txt: %d %q", r.Status, r.Body)
	}
	do(t, "GET", u+"?format=srt", g.AdminToken, nil).problem(t, 400)
	do(t, "GET", u+"?format=json&format=vtt", g.AdminToken, nil).problem(t, 400)
	do(t, "GET", u+"?fmt=json", g.AdminToken, nil).problem(t, 400)

	// Reads are audited with the format.
	var entries []meta.AuditEntry
	g.DB.Where("action = ? AND target = ?", "transcript.read", "recording:"+rec.ID).Order("seq").Find(&entries)
	if len(entries) != 3 || entries[1].Details.V["format"] != "vtt" || entries[0].Outcome != "success" {
		t.Fatalf("audit entries: %+v", entries)
	}

	// States.
	none := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s1", Participant: "b", Data: []byte("m")})
	do(t, "GET", g.URL()+"/v1/recordings/"+none.ID+"/transcript", g.AdminToken, nil).problem(t, 404)
	pend := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s1", Participant: "c", Data: []byte("m")})
	seedTranscript(t, g, pend, sampleTranscript("C", 0, "hi"))
	g.DB.Model(&meta.Transcript{}).Where("recording_id = ?", pend.ID).Update("status", meta.TranscriptRunning)
	do(t, "GET", g.URL()+"/v1/recordings/"+pend.ID+"/transcript", g.AdminToken, nil).problem(t, 409)
	g.DB.Model(&meta.Transcript{}).Where("recording_id = ?", pend.ID).Update("status", meta.TranscriptDeleted)
	do(t, "GET", g.URL()+"/v1/recordings/"+pend.ID+"/transcript", g.AdminToken, nil).problem(t, 410)

	// A transcript object replaced behind the database's back (an older
	// or forged version under the same key) is refused.
	rolled := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s1", Participant: "d", Data: []byte("m")})
	seedTranscript(t, g, rolled, sampleTranscript("D", 0, "the real words"))
	if _, err := g.Store.PutObject(context.Background(), "default", rolled.ID, api.TranscriptObject,
		[]byte(`{"segments":[{"start_ms":0,"end_ms":1,"text":"forged"}]}`), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	p := do(t, "GET", g.URL()+"/v1/recordings/"+rolled.ID+"/transcript", g.AdminToken, nil).problem(t, 500)
	if !strings.Contains(p.Detail, "integrity") {
		t.Fatalf("detail %q", p.Detail)
	}
	// A shredded key: 410.
	sh := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s1", Participant: "e", Data: []byte("m")})
	seedTranscript(t, g, sh, sampleTranscript("E", 0, "words"))
	g.Store.Shred(context.Background(), "default", sh.ID)
	do(t, "GET", g.URL()+"/v1/recordings/"+sh.ID+"/transcript", g.AdminToken, nil).problem(t, 410)
}

func TestSessionTranscript(t *testing.T) {
	g := start(t)
	agent := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "call-1", Participant: "agent", Data: []byte("a")})
	cust := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "call-1", Participant: "cust", Data: []byte("b")})
	noText := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "call-1", Participant: "silent", Data: []byte("c")})
	_ = noText
	ta := transcribe.Transcript{Speaker: "Agent Smith", Engine: "offline", Language: "en-US", Segments: []transcribe.Segment{
		{StartMS: 0, EndMS: 1000, Text: "thank you for calling"}, {StartMS: 6000, EndMS: 7000, Text: "anything else"}}}
	tc := transcribe.Transcript{Speaker: "", Engine: "offline", Language: "en-US", Segments: []transcribe.Segment{
		{StartMS: 1500, EndMS: 5000, Text: "my number is [REDACTED:PHONE]"}}, Redactions: []transcribe.Redaction{{StartMS: 3000, EndMS: 5000, Type: "PHONE"}}}
	seedTranscript(t, g, agent, ta)
	seedTranscript(t, g, cust, tc)
	// Another department's session of another supervisor.
	seedRecording(t, g, recSpec{Tenant: "default", Dept: "support", Session: "call-2", Participant: "x", Data: []byte("d")})
	// The same session id in another tenant.
	other := seedRecording(t, g, recSpec{Tenant: "acme", Dept: "sales", Session: "call-1", Participant: "spy", Data: []byte("e")})
	seedTranscript(t, g, other, sampleTranscript("Spy", 500, "secret other tenant words"))

	sup, _ := newToken(t, g, "default", auth.RoleSupervisor, "sales", time.Hour)
	u := g.URL() + "/v1/sessions/call-1/transcript"
	r := do(t, "GET", u, sup, nil)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	var m render.Merged
	r.json(t, &m)
	var got []string
	for _, s := range m.Segments {
		got = append(got, s.Speaker+"|"+s.Text)
	}
	want := []string{"Agent Smith|thank you for calling", "cust|my number is [REDACTED:PHONE]", "Agent Smith|anything else"}
	if strings.Join(got, ";") != strings.Join(want, ";") || len(m.Sources) != 2 || m.SessionID != "call-1" ||
		len(m.Redactions) != 1 || m.Redactions[0].ParticipantID != "cust" {
		t.Fatalf("merged: %s", r.Body)
	}
	if strings.Contains(string(r.Body), "secret other tenant") {
		t.Fatal("another tenant's transcript merged in")
	}
	r = do(t, "GET", u+"?format=vtt", sup, nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), "00:00:01.500 --> 00:00:05.000\n<v cust>my number is [REDACTED:PHONE]") {
		t.Fatalf("vtt: %s", r.Body)
	}
	r = do(t, "GET", u+"?format=txt", sup, nil)
	if r.Status != 200 || !strings.HasPrefix(string(r.Body), "[00:00:00.000] Agent Smith: thank you for calling\n[00:00:01.500] cust:") {
		t.Fatalf("txt: %s", r.Body)
	}
	supB, _ := newToken(t, g, "default", auth.RoleSupervisor, "support", time.Hour)
	do(t, "GET", u, supB, nil).problem(t, 404)
	do(t, "GET", g.URL()+"/v1/sessions/call-2/transcript", sup, nil).problem(t, 404)
	do(t, "GET", g.URL()+"/v1/sessions/nope/transcript", sup, nil).problem(t, 404)
	// A session without transcripts yet: 200 with no segments.
	r = do(t, "GET", g.URL()+"/v1/sessions/call-2/transcript", supB, nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"segments":[]`) {
		t.Fatalf("empty session transcript: %d %s", r.Status, r.Body)
	}
}

// The unredacted copy is a separate object behind a separate permission.
func TestUnredactedTranscript(t *testing.T) {
	g := start(t)
	rec := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "pci", Participant: "customer", Data: []byte("OggS media")})
	red := seedTranscript(t, g, rec, sampleTranscript("customer", 0, "my card is [REDACTED:CARD_NUMBER]"))
	sup, _ := newToken(t, g, "default", auth.RoleSupervisor, "sales", time.Hour)
	comp, _ := newToken(t, g, "default", auth.RoleCompliance, "", time.Hour)
	url := g.URL() + "/v1/recordings/" + rec.ID + "/transcript/unredacted"

	// no copy kept: 404 for those allowed, 403 for supervisors
	do(t, "GET", url, comp, nil).problem(t, 404)
	do(t, "GET", url, sup, nil).problem(t, 403)

	body, _ := json.Marshal(sampleTranscript("customer", 0, "my card is four one one one"))
	info, err := g.Store.PutObject(t.Context(), rec.TenantID, rec.ID, api.UnredactedObject, body, storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g.DB.Model(&meta.Transcript{}).Where("recording_id = ?", red.RecordingID).
		Updates(map[string]any{"unredacted_key": info.Key, "unredacted_sha256": info.CipherSHA256})
	r := do(t, "GET", url+"?format=txt", comp, nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), "four one one one") {
		t.Fatalf("compliance read of the unredacted copy = %d %q", r.Status, r.Body)
	}
	do(t, "GET", url, sup, nil).problem(t, 403)
	// the redacted transcript is unchanged
	r = do(t, "GET", g.URL()+"/v1/recordings/"+rec.ID+"/transcript?format=txt", sup, nil)
	if r.Status != 200 || strings.Contains(string(r.Body), "four one one one") {
		t.Fatalf("redacted transcript = %d %q", r.Status, r.Body)
	}
	var n int64
	g.DB.Model(&meta.AuditEntry{}).Where("action = ? AND outcome = ?", "transcript.read_unredacted", "success").Count(&n)
	if n != 1 {
		t.Fatalf("%d successful transcript.read_unredacted audit entries, want 1", n)
	}
	// a rolled-back or replaced object fails the hash check
	g.DB.Model(&meta.Transcript{}).Where("recording_id = ?", red.RecordingID).Update("unredacted_sha256", strings.Repeat("0", 64))
	do(t, "GET", url, comp, nil).problem(t, 500)
}
