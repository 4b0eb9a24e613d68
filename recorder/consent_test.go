package recorder_test

import (
	"context"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage/meta"
)

// publish starts a pion publisher for session/participant and returns it
// with the time sending started.
func publish(tb testing.TB, g *gatewaytest.Gateway, tok, session, participant string, o whip.Options) (*whip.Publisher, time.Time) {
	tb.Helper()
	o.URL = g.URL() + "/whip/" + session + "/" + participant
	o.Token = tok
	pub, err := whip.Publish(context.Background(), o)
	start := time.Now()
	if err != nil {
		tb.Fatalf("publish %s/%s: %v", session, participant, err)
	}
	tb.Cleanup(func() { _ = pub.Close(context.Background()) })
	return pub, start
}

// objectFiles lists every file under the data directory's objects and
// spool directories.
func objectFiles(tb testing.TB, dataDir string) []string {
	tb.Helper()
	var out []string
	for _, d := range []string{"objects", "spool"} {
		_ = filepath.WalkDir(filepath.Join(dataDir, d), func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// TestConsentRequired: with consent: required, a participant who never
// consents leaves no recording row, no data key, no part and no object;
// one who consents mid-session is recorded from that moment, and the
// report shows the excluded span; a withdrawal stops storing again. Every consent is a ledger entry, an
// event and an audit entry.
func TestConsentRequired(t *testing.T) {
	g := startGateway(t, `
- name: consent-calls
  record: required
  consent: required
  transcribe: true
`)
	ingest := token(t, g, auth.RoleIngest, "")
	admin := g.AdminToken
	audio, _ := media(t)
	const session = "consent-1"

	silent, _ := publish(t, g, ingest, session, "silent", whip.Options{Audio: audio})
	late, lateStart := publish(t, g, ingest, session, "late", whip.Options{Audio: audio})
	time.Sleep(2500 * time.Millisecond)
	if d := getSession(t, g, admin, session); d.RecordingStatus != meta.LiveNotRecording || d.Decision["consent"] != "required" {
		t.Errorf("before consent: recording_status %s, decision %v", d.RecordingStatus, d.Decision)
	}
	before := time.Now()
	var part struct{ Consent, ConsentMethod string }
	if st := apiDo(t, g, admin, "POST", "/v1/sessions/"+session+"/participants/late/consent",
		map[string]any{"granted": true, "method": "ivr"}, &part); st != http.StatusOK || part.Consent != "granted" {
		t.Fatalf("consent: %d %+v", st, part)
	}
	after := time.Now()
	checkFor(t, 2*time.Second, 20*time.Millisecond, func() error {
		if d := getSession(t, g, admin, session); d.RecordingStatus != meta.LiveRecording {
			return errorf("after consent: recording_status %s", d.RecordingStatus)
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	// Withdrawn: nothing more is stored from here on.
	withdrawBefore := time.Now()
	if st := apiDo(t, g, admin, "POST", "/v1/sessions/"+session+"/participants/late/consent",
		map[string]any{"granted": false, "method": "agent-ui"}, &part); st != http.StatusOK || part.Consent != "denied" {
		t.Fatalf("withdraw: %d %+v", st, part)
	}
	withdrawAfter := time.Now()
	time.Sleep(1500 * time.Millisecond)
	endAt := time.Now()
	if err := late.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := silent.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	doc := getSession(t, g, admin, session)
	rec := waitRecording(t, g, session, "late")
	if rec.Status != meta.StatusComplete {
		t.Fatalf("late: %s %s", rec.Status, rec.FailureReason)
	}
	// Recorded from the consent on: the recording starts then, on the
	// session clock, and lasts until the end.
	lo, hi := before.Sub(doc.StartedAt)-20*time.Millisecond, after.Sub(doc.StartedAt)+80*time.Millisecond
	if off := time.Duration(rec.StartOffsetMS) * time.Millisecond; off < lo || off > hi {
		t.Errorf("recording starts at %v on the session clock; consent was given between %v and %v", off, lo+20*time.Millisecond, hi-80*time.Millisecond)
	}
	path := decrypt(t, g.Store, rec)
	p := ffprobe(t, path)
	if want := endAt.Sub(after); !within(p.Duration, want, 150*time.Millisecond) {
		t.Errorf("duration %v, want about %v (consent to end)", p.Duration, want)
	}
	c := completeness(t, rec)
	t.Logf("consent given %v–%v on the session clock; recording starts at %d ms, lasts %v (file %v); report paused_ranges %v",
		before.Sub(doc.StartedAt), after.Sub(doc.StartedAt), rec.StartOffsetMS, time.Duration(rec.DurationMS)*time.Millisecond, p.Duration, c["paused_ranges"])
	paused, _ := c["paused_ranges"].([]any)
	if len(paused) != 2 {
		t.Fatalf("paused_ranges %v, want the excluded spans before consent and after the withdrawal", c["paused_ranges"])
	}
	wr := paused[1].(map[string]any)
	wStart := time.Duration(num(wr, "start_ms")) * time.Millisecond
	lo, hi = withdrawBefore.Sub(after)-50*time.Millisecond, withdrawAfter.Sub(before)+50*time.Millisecond
	if wr["kind"] != "excluded_no_consent" || wStart < lo || wStart > hi || !within(time.Duration(num(wr, "end_ms"))*time.Millisecond, p.Duration, 50*time.Millisecond) {
		t.Errorf("withdrawal span %v, want from %v–%v to the end (%v)", wr, lo, hi, p.Duration)
	}
	samples := pcm(t, path)
	if r := rms(samples, int(wStart.Milliseconds()+100)*48, int(num(wr, "end_ms")-50)*48); r > 1 {
		t.Errorf("audio after the withdrawal has RMS %.2f, want silence", r)
	}
	if r := rms(samples, 100*48, int(wStart.Milliseconds()-100)*48); r < 300 {
		t.Errorf("audio between consent and withdrawal has RMS %.0f, want speech", r)
	}
	pr := paused[0].(map[string]any)
	firstMS := lateStart.Sub(doc.StartedAt).Milliseconds()
	if pr["kind"] != "excluded_no_consent" || num(pr, "start_ms") != 0 || num(pr, "end_ms") != 0 ||
		abs(num(pr, "session_start_ms")-float64(firstMS)) > 100 || abs(num(pr, "session_end_ms")-float64(rec.StartOffsetMS)) > 100 {
		t.Errorf("excluded span %v; first packet at %d ms, recording at %d ms", pr, firstMS, rec.StartOffsetMS)
	}
	if num(c, "packets_gated") < 100 {
		t.Errorf("packets_gated %v: media before consent was not counted", c["packets_gated"])
	}

	// The participant who never consented left nothing.
	if rows := recordingsOf(t, g, session, "silent"); len(rows) != 0 {
		t.Errorf("silent participant has recordings: %+v", rows)
	}
	var keys []meta.DataKey
	g.DB.Find(&keys)
	if len(keys) != 1 || keys[0].RecordingID != rec.ID {
		t.Errorf("data keys %+v, want only %s's", keys, rec.ID)
	}
	var transcripts int64
	g.DB.Model(&meta.Transcript{}).Where("participant_id = ?", "silent").Count(&transcripts)
	if transcripts != 0 {
		t.Errorf("%d transcripts of the silent participant", transcripts)
	}
	for _, f := range objectFiles(t, g.Config.DataDir) {
		if strings.Contains(f, "/recordings/") && !strings.Contains(f, rec.ID) {
			t.Errorf("object %s belongs to no consented recording", f)
		}
	}
	// In the spool, objects are named by sequence: check their headers name
	// only the consented recording.
	for _, f := range objectFiles(t, g.Config.DataDir) {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(f, "spool") && strings.Contains(string(b[:min(len(b), 512)]), "/recordings/") &&
			!strings.Contains(string(b[:min(len(b), 512)]), rec.ID) {
			t.Errorf("spool file %s belongs to another recording", f)
		}
	}

	// The ledger, the events and the audit log.
	var ledger []meta.ConsentRecord
	g.DB.Where("session_id = ?", session).Find(&ledger)
	if len(ledger) != 2 || ledger[0].ParticipantID != "late" || ledger[0].State != "granted" || ledger[0].Method != "ivr" || ledger[0].Actor == "" ||
		ledger[1].State != "denied" || ledger[1].Method != "agent-ui" {
		t.Errorf("consent ledger %+v", ledger)
	}
	if ev := outbox(t, g, "consent.recorded", session); len(ev) != 2 || !strings.Contains(string(ev[0].Data), `"state":"granted"`) ||
		!strings.Contains(string(ev[1].Data), `"state":"denied"`) {
		t.Errorf("consent.recorded events %+v", ev)
	}
	var audits []meta.AuditEntry
	g.DB.Where("action = ?", "consent.record").Find(&audits)
	if len(audits) != 2 || audits[0].Target != "participant:"+session+"/late" {
		t.Errorf("audit entries %+v", audits)
	}
	for _, pd := range doc.Participants {
		want := map[string]string{"late": "denied", "silent": "unknown"}[pd.ID]
		if pd.Consent != want {
			t.Errorf("participant %s consent %q, want %q", pd.ID, pd.Consent, want)
		}
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// TestConsentAtWHIP: consent stated in the WHIP query (?consent=granted)
// in a consent: required session records the participant from the first
// packet, with no excluded span; ?consent=denied stores nothing. Each
// statement is a ledger entry (method "whip"), an event and an audit entry.
func TestConsentAtWHIP(t *testing.T) {
	g := startGateway(t, `
- name: consent-calls
  record: required
  consent: required
`)
	ingest := token(t, g, auth.RoleIngest, "")
	admin := g.AdminToken
	audio, _ := media(t)
	const session = "consent-whip"
	open := func(pid, consent string) (*whip.Publisher, time.Time) {
		t.Helper()
		pub, err := whip.Publish(context.Background(), whip.Options{
			URL: g.URL() + "/whip/" + session + "/" + pid + "?consent=" + consent, Token: ingest, Audio: audio})
		start := time.Now()
		if err != nil {
			t.Fatalf("publish %s: %v", pid, err)
		}
		t.Cleanup(func() { _ = pub.Close(context.Background()) })
		return pub, start
	}
	caller, start := open("caller", "granted")
	refuser, _ := open("refuser", "denied")
	time.Sleep(3 * time.Second)
	end := time.Now()
	if err := caller.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := refuser.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	rec := waitRecording(t, g, session, "caller")
	if rec.Status != meta.StatusComplete {
		t.Fatalf("caller: %s %s", rec.Status, rec.FailureReason)
	}
	p := ffprobe(t, decrypt(t, g.Store, rec))
	if !within(p.Duration, end.Sub(start), 150*time.Millisecond) {
		t.Errorf("duration %v, wall-clock %v: consent at WHIP time records from the start", p.Duration, end.Sub(start))
	}
	c := completeness(t, rec)
	if paused, _ := c["paused_ranges"].([]any); len(paused) != 0 {
		t.Errorf("paused_ranges %v, want none", paused)
	}
	if num(c, "packets_gated") != 0 {
		t.Errorf("packets_gated %v, want 0", c["packets_gated"])
	}
	if rows := recordingsOf(t, g, session, "refuser"); len(rows) != 0 {
		t.Errorf("participant who refused at WHIP time has recordings: %+v", rows)
	}

	var ledger []meta.ConsentRecord
	g.DB.Where("session_id = ?", session).Order("participant_id").Find(&ledger)
	if len(ledger) != 2 || ledger[0].ParticipantID != "caller" || ledger[0].State != "granted" || ledger[0].Method != "whip" ||
		ledger[1].ParticipantID != "refuser" || ledger[1].State != "denied" || ledger[1].Method != "whip" {
		t.Errorf("consent ledger %+v", ledger)
	}
	if ev := outbox(t, g, "consent.recorded", session); len(ev) != 2 {
		t.Errorf("%d consent.recorded events, want 2: %+v", len(ev), ev)
	}
	var audits []meta.AuditEntry
	g.DB.Where("action = ?", "consent.record").Order("target").Find(&audits)
	if len(audits) != 2 || audits[0].Target != "participant:"+session+"/caller" || audits[1].Target != "participant:"+session+"/refuser" {
		t.Errorf("audit entries %+v", audits)
	}
	for _, pd := range getSession(t, g, admin, session).Participants {
		want := map[string]string{"caller": "granted", "refuser": "denied"}[pd.ID]
		if pd.Consent != want {
			t.Errorf("participant %s consent %q, want %q", pd.ID, pd.Consent, want)
		}
	}
}
