package recorder_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/audio"
	"github.com/custodian/custodian/transcribe/sphinx"
)

// TestPauseResume (PCI): speech keeps flowing during a pause; the stored
// media in the paused span is digital silence (decoded with ffmpeg), the
// timeline keeps the span, the report and the audit log show the gap, and
// a participant who joins while paused starts recording at the resume.
func TestPauseResume(t *testing.T) {
	g := startGateway(t, "")
	ingest := token(t, g, auth.RoleIngest, "")
	supervisor := token(t, g, auth.RoleSupervisor, "sales")
	admin := g.AdminToken
	audio, _ := media(t)
	const session = "pci-1"
	var created struct {
		ID             string
		RecordingState string `json:"recording_status"`
	}
	if st := apiDo(t, g, supervisor, "POST", "/v1/sessions", map[string]any{"id": session, "labels": map[string]string{"queue": "payments"}}, &created); st != http.StatusCreated || created.RecordingState != meta.LiveNotRecording {
		t.Fatalf("create session: %d %+v", st, created)
	}

	agent, start := publish(t, g, ingest, session, "agent", whip.Options{Audio: audio})
	time.Sleep(3 * time.Second)
	pauseBefore := time.Now()
	if st := apiDo(t, g, supervisor, "POST", "/v1/sessions/"+session+"/pause", nil, nil); st != http.StatusOK {
		t.Fatalf("pause: %d", st)
	}
	pauseAfter := time.Now()
	if d := getSession(t, g, admin, session); !d.Paused || d.RecordingStatus != meta.LiveRecording {
		t.Errorf("while paused: paused %v recording_status %s", d.Paused, d.RecordingStatus)
	}
	// Pausing twice changes nothing (no second audit entry).
	if st := apiDo(t, g, supervisor, "POST", "/v1/sessions/"+session+"/pause", nil, nil); st != http.StatusOK {
		t.Fatalf("second pause: %d", st)
	}
	time.Sleep(time.Second)
	customer, _ := publish(t, g, ingest, session, "customer", whip.Options{Audio: audio})
	time.Sleep(2 * time.Second)
	resumeBefore := time.Now()
	if st := apiDo(t, g, supervisor, "POST", "/v1/sessions/"+session+"/resume", nil, nil); st != http.StatusOK {
		t.Fatalf("resume: %d", st)
	}
	resumeAfter := time.Now()
	time.Sleep(3 * time.Second)
	end := time.Now()
	_ = agent.Close(context.Background())
	_ = customer.Close(context.Background())

	doc := getSession(t, g, admin, session)
	rec := waitRecording(t, g, session, "agent")
	if rec.Status != meta.StatusComplete {
		t.Fatalf("agent: %s %s", rec.Status, rec.FailureReason)
	}
	path := decrypt(t, g.Store, rec)
	if p := ffprobe(t, path); !within(p.Duration, end.Sub(start), 100*time.Millisecond) {
		t.Errorf("duration %v, wall-clock %v: the pause must stay on the timeline", p.Duration, end.Sub(start))
	}
	c := completeness(t, rec)
	paused, _ := c["paused_ranges"].([]any)
	if len(paused) != 1 {
		t.Fatalf("paused_ranges %v", c["paused_ranges"])
	}
	pr := paused[0].(map[string]any)
	startMS, endMS := int(num(pr, "start_ms")), int(num(pr, "end_ms"))
	t.Logf("pause requested at %v–%v, resumed at %v–%v after the start; report paused span %d–%d ms",
		pauseBefore.Sub(start), pauseAfter.Sub(start), resumeBefore.Sub(start), resumeAfter.Sub(start), startMS, endMS)
	inside := func(ms int, from, to time.Time) bool {
		d := time.Duration(ms) * time.Millisecond
		return d >= from.Sub(start)-50*time.Millisecond && d <= to.Sub(start)+50*time.Millisecond
	}
	if pr["kind"] != "paused" || !inside(startMS, pauseBefore, pauseAfter) || !inside(endMS, resumeBefore, resumeAfter) {
		t.Errorf("paused range %v does not match the requests", pr)
	}

	// What was sent during the pause is speech; what was stored is silence.
	src := pcm(t, "../testdata/calls-long.ogg")
	got := pcm(t, path)
	const perMS = 48
	from, to := (startMS+100)*perMS, (endMS-100)*perMS
	srcRMS := rms(src, from, to)
	gapRMS := rms(got, from, to)
	speechRMS := rms(got, 200*perMS, (startMS-100)*perMS)
	t.Logf("RMS in the paused span: source %.0f, recording %.2f; recording before the pause %.0f", srcRMS, gapRMS, speechRMS)
	if srcRMS < 300 {
		t.Fatalf("the source is quiet in the paused span (RMS %.0f): the test proves nothing", srcRMS)
	}
	if gapRMS > 1 {
		t.Errorf("paused span of the recording has RMS %.2f, want digital silence", gapRMS)
	}
	if speechRMS < 300 {
		t.Errorf("recording before the pause has RMS %.0f: speech missing", speechRMS)
	}

	// The transcript has nothing in the paused span: the transcription
	// pipeline's decoder and the offline engine find words in the speech
	// around the pause and none inside it.
	var outside int
	for _, w := range transcribeFile(t, path) {
		if w.EndMS > int64(startMS)+200 && w.StartMS < int64(endMS)-200 {
			t.Errorf("transcript word %q at %d–%d ms lies in the paused span %d–%d ms", w.Word, w.StartMS, w.EndMS, startMS, endMS)
		} else {
			outside++
		}
	}
	t.Logf("transcript: %d words, none in the paused span", outside)
	if outside == 0 {
		t.Fatal("no words recognized outside the paused span: the transcript check proves nothing")
	}

	// The participant who joined while paused is recorded from the resume.
	crec := waitRecording(t, g, session, "customer")
	if off := time.Duration(crec.StartOffsetMS) * time.Millisecond; off < resumeBefore.Sub(doc.StartedAt)-20*time.Millisecond || off > resumeAfter.Sub(doc.StartedAt)+80*time.Millisecond {
		t.Errorf("customer recording starts at %v on the session clock, resume was at %v", off, resumeAfter.Sub(doc.StartedAt))
	}

	// The audit log shows the gap.
	var audits []meta.AuditEntry
	g.DB.Where("target = ?", "session:"+session).Order("seq").Find(&audits)
	if len(audits) != 2 || audits[0].Action != "session.pause" || audits[1].Action != "session.resume" || audits[0].Role != "supervisor" {
		t.Fatalf("audit entries %+v", audits)
	}
	if audits[0].Time.Before(pauseBefore.Add(-time.Second)) || audits[1].Time.After(resumeAfter.Add(time.Second)) {
		t.Errorf("audit times %v, %v", audits[0].Time, audits[1].Time)
	}
}

// transcribeFile runs a decrypted Ogg recording through the transcription
// jobs' audio path (audio.Chunks) and the offline engine, and returns the
// words with times on the recording's timeline.
func transcribeFile(tb testing.TB, path string) []transcribe.Word {
	tb.Helper()
	ctx := context.Background()
	eng, err := sphinx.New(config.Offline{})
	if err != nil {
		tb.Fatalf("offline engine: %v", err)
	}
	defer eng.Close()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var words []transcribe.Word
	for chunk, err := range audio.Chunks(ctx, f, "audio/ogg", audio.Options{}) {
		if err != nil {
			tb.Fatalf("decode %s: %v", path, err)
		}
		ws, err := eng.Transcribe(ctx, chunk)
		if err != nil {
			tb.Fatalf("transcribe: %v", err)
		}
		for _, w := range ws {
			w.StartMS += chunk.OffsetMS
			w.EndMS += chunk.OffsetMS
			words = append(words, w)
		}
	}
	return words
}
