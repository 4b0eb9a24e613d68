package search_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/gateway"
	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/search"
)

const speechDir = "../../testdata/speech"

func speech(tb testing.TB, names ...string) string {
	tb.Helper()
	var parts []string
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(speechDir, n+".txt"))
		if err != nil {
			tb.Fatal(err)
		}
		parts = append(parts, strings.TrimSpace(string(b)))
	}
	return strings.Join(parts, " ")
}

// transcriptOf turns text into a transcript with word times (about 150
// words a minute) from startMS on the session clock.
func transcriptOf(speaker, text string, startMS int64) transcribe.Transcript {
	t := transcribe.Transcript{Speaker: speaker, Engine: "offline", Language: "en-US"}
	seg := transcribe.Segment{StartMS: startMS}
	at := startMS
	for _, raw := range strings.Fields(text) {
		w := strings.TrimFunc(raw, func(r rune) bool { return unicode.IsPunct(r) && r != '\'' })
		if w == "" {
			continue
		}
		d := int64(180 + 45*len(w))
		seg.Words = append(seg.Words, transcribe.Word{StartMS: at, EndMS: at + d, Word: w, Confidence: 0.9})
		seg.EndMS = at + d
		at += d + 60
	}
	for _, w := range seg.Words {
		if seg.Text != "" {
			seg.Text += " "
		}
		seg.Text += w.Word
	}
	t.Segments = []transcribe.Segment{seg}
	return t
}

// call describes one recording with its transcript to seed.
type call struct {
	Tenant, Dept, Session, Participant, Speaker string
	Text                                        string
	StartOffsetMS                               int64
	StartedAt                                   time.Time
	Decision                                    *policy.Decision
	NoEvent                                     bool // write the rows without transcript.completed
}

// seedCall stores a recording (data key, one sealed part), its transcript
// object and rows, and emits transcript.completed in the same
// transaction as the transcript row, as the transcription worker does.
func seedCall(tb testing.TB, g *gateway.Gateway, c call) (meta.Recording, transcribe.Transcript) {
	tb.Helper()
	ctx := context.Background()
	if c.Tenant == "" {
		c.Tenant = gateway.DefaultTenant
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if c.StartedAt.IsZero() {
		c.StartedAt = now
	}
	ensureTenant(tb, g.DB, c.Tenant)
	var n int64
	g.DB.Model(&meta.Session{}).Where("tenant_id = ? AND id = ?", c.Tenant, c.Session).Count(&n)
	if n == 0 {
		s := meta.Session{TenantID: c.Tenant, ID: c.Session, Department: c.Dept, Status: meta.SessionEnded,
			RecordingStatus: meta.LiveNotRecording, StartedAt: c.StartedAt, CreatedAt: now, UpdatedAt: now}
		if c.Decision != nil {
			b, _ := json.Marshal(c.Decision)
			var m map[string]any
			json.Unmarshal(b, &m)
			s.Decision = meta.NewJSON(m)
		}
		if err := g.DB.Create(&s).Error; err != nil {
			tb.Fatal(err)
		}
	}
	p := meta.Participant{TenantID: c.Tenant, SessionID: c.Session, ID: c.Participant, Name: c.Speaker,
		Consent: "granted", CreatedAt: now, UpdatedAt: now}
	if err := g.DB.Where(meta.Participant{TenantID: c.Tenant, SessionID: c.Session, ID: c.Participant}).FirstOrCreate(&p).Error; err != nil {
		tb.Fatal(err)
	}
	id := meta.NewID("rec")
	w, err := g.Store.NewWriter(ctx, c.Tenant, id, storage.WriterOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.WritePart(ctx, []byte("OggS not really audio")); err != nil {
		tb.Fatal(err)
	}
	m, err := w.Close(ctx, true)
	if err != nil {
		tb.Fatal(err)
	}
	rec := meta.Recording{ID: id, TenantID: c.Tenant, SessionID: c.Session, ParticipantID: c.Participant,
		Department: c.Dept, Status: meta.StatusComplete, ContentType: "audio/ogg", StartedAt: c.StartedAt,
		EndedAt: &now, StartOffsetMS: c.StartOffsetMS, DurationMS: 60000, Transcribe: true, CreatedAt: now, UpdatedAt: now}
	m.Apply(&rec)
	if err := g.DB.Create(&rec).Error; err != nil {
		tb.Fatal(err)
	}
	tr := transcriptOf(c.Speaker, c.Text, c.StartOffsetMS+400)
	tr.RecordingID, tr.SessionID, tr.ParticipantID = id, c.Session, c.Participant
	b, _ := json.Marshal(tr)
	info, err := g.Store.PutObject(ctx, c.Tenant, id, search.TranscriptObject, b, storage.PutOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	words := 0
	for _, s := range tr.Segments {
		words += len(s.Words)
	}
	row := meta.Transcript{RecordingID: id, TenantID: c.Tenant, SessionID: c.Session, ParticipantID: c.Participant,
		Department: c.Dept, Status: meta.TranscriptCompleted, Engine: tr.Engine, Language: tr.Language,
		ObjectKey: info.Key, CipherSHA256: info.CipherSHA256, WordCount: words, CompletedAt: &now, CreatedAt: now, UpdatedAt: now}
	err = g.DB.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		if c.NoEvent {
			return nil
		}
		return events.Emit(tx, events.Event{Tenant: c.Tenant, Kind: events.TranscriptCompleted, Subject: id,
			Data: events.TranscriptData{RecordingID: id, SessionID: c.Session, ParticipantID: c.Participant,
				Engine: tr.Engine, Language: tr.Language, WordCount: words, CipherSHA256: info.CipherSHA256}})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rec, tr
}

func ensureTenant(tb testing.TB, db *gorm.DB, tenant string) {
	tb.Helper()
	t := meta.Tenant{ID: tenant, Name: tenant, CreatedAt: time.Now().UTC()}
	if err := db.Where(meta.Tenant{ID: tenant}).FirstOrCreate(&t).Error; err != nil {
		tb.Fatal(err)
	}
}

// shredCall deletes a recording the way retention does: key shredded,
// objects removed, rows tombstoned and recording.deleted emitted.
func shredCall(tb testing.TB, g *gateway.Gateway, rec meta.Recording) {
	tb.Helper()
	ctx := context.Background()
	if err := g.Store.Shred(ctx, rec.TenantID, rec.ID); err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC()
	err := g.DB.Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&meta.Recording{}).Where("id = ?", rec.ID).
			Updates(map[string]any{"status": meta.StatusDeleted, "deleted_at": now, "deleted_reason": "retention"}).Error; err != nil {
			return err
		}
		if err := tx.Model(&meta.Transcript{}).Where("recording_id = ?", rec.ID).
			Updates(map[string]any{"status": meta.TranscriptDeleted}).Error; err != nil {
			return err
		}
		return events.Emit(tx, events.Event{Tenant: rec.TenantID, Kind: events.RecordingDeleted, Subject: rec.ID,
			Data: events.RecordingData{RecordingID: rec.ID, SessionID: rec.SessionID, ParticipantID: rec.ParticipantID,
				Status: meta.StatusDeleted, StartedAt: rec.StartedAt, Reason: "retention"}})
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func adminAccess(tenant string) search.Access {
	return search.Access{Tenant: tenant, AllDepartments: true, Role: policy.RoleAdmin}
}

// find runs q as an admin of tenant on x and returns the recording ids.
func find(tb testing.TB, x *search.Index, tenant, q string) []string {
	tb.Helper()
	pq, err := search.ParseQuery(q)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := x.Search(context.Background(), search.Request{Access: adminAccess(tenant), Query: pq, Limit: search.MaxLimit})
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, h := range res.Hits {
		out = append(out, h.RecordingID)
	}
	return out
}

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until
