package recorder_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
)

const requiredPolicy = `
- name: must-record
  record: required
  consent: notice
`

// failedEvents subscribes to the tenant's recording.failed events on the
// gateway's NATS.
func failedEvents(tb testing.TB, g *gatewaytest.Gateway) chan events.CloudEvent {
	tb.Helper()
	ch := make(chan events.CloudEvent, 16)
	sub, err := g.NC.Subscribe(events.Subject("default", events.RecordingFailed), func(m *nats.Msg) {
		var ce events.CloudEvent
		if err := json.Unmarshal(m.Data, &ce); err == nil {
			ch <- ce
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

func waitEvent(tb testing.TB, ch chan events.CloudEvent, timeout time.Duration) (events.CloudEvent, events.RecordingData) {
	tb.Helper()
	select {
	case ce := <-ch:
		var d events.RecordingData
		if err := json.Unmarshal(ce.Data, &d); err != nil {
			tb.Fatal(err)
		}
		return ce, d
	case <-time.After(timeout):
		tb.Fatalf("no recording.failed event within %v", timeout)
	}
	panic("unreachable")
}

// TestFailClosedKeyProvider: during a record: required session the key
// provider becomes unavailable (the keyring file is removed, as by an
// operator mistake or a failed disk). Within 2 seconds recording_status is
// failed and a recording.failed event is on NATS; new WHIP posts for the
// session are refused with 503. The media already flowing is still
// recorded (its data key is in memory) and completes.
func TestFailClosedKeyProvider(t *testing.T) {
	g := startGateway(t, requiredPolicy)
	ingest := token(t, g, auth.RoleIngest, "")
	audio, _ := media(t)
	ch := failedEvents(t, g)
	const session = "required-1"
	pub, _ := publish(t, g, ingest, session, "agent", whip.Options{Audio: audio})
	checkFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		if d := getSession(t, g, g.AdminToken, session); d.RecordingStatus != meta.LiveRecording {
			return errorf("recording_status %s", d.RecordingStatus)
		}
		return nil
	})
	time.Sleep(time.Second)

	keyring := filepath.Join(g.Config.DataDir, "keys", "keyring.json")
	moved := keyring + ".away"
	outage := time.Now()
	if err := os.Rename(keyring, moved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Rename(moved, keyring) })
	ce, d := waitEvent(t, ch, 2*time.Second)
	took := time.Since(outage)
	t.Logf("recording.failed event %v after the key provider failed: %+v", took, d)
	if ce.Type != "io.custodian.recording.failed" || ce.Subject != session || d.SessionID != session || d.Reason != "storage_unavailable" {
		t.Errorf("event %+v data %+v", ce, d)
	}
	doc := getSession(t, g, g.AdminToken, session)
	if doc.RecordingStatus != meta.LiveFailed || doc.FailureReason != "storage_unavailable" {
		t.Errorf("recording_status %s (%s), want failed", doc.RecordingStatus, doc.FailureReason)
	}
	_, err := whip.Publish(context.Background(), whip.Options{URL: g.URL() + "/whip/" + session + "/late", Token: ingest, Audio: audio})
	if whip.StatusCode(err) != 503 {
		t.Errorf("WHIP POST while keys are down: %v, want 503", err)
	} else if ra, ok := whip.RetryAfter(err); !ok || ra <= 0 {
		t.Errorf("503 without Retry-After: %v", err)
	}

	// Restore: the flowing media was kept and the recording completes.
	if err := os.Rename(moved, keyring); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := waitRecording(t, g, session, "agent")
	if rec.Status != meta.StatusComplete {
		t.Errorf("recording %s: %s", rec.Status, rec.FailureReason)
	}
	// The status stays failed for the session: the application decides.
	if doc := getSession(t, g, g.AdminToken, session); doc.RecordingStatus != meta.LiveFailed {
		t.Errorf("after recovery: recording_status %s", doc.RecordingStatus)
	}
}

// TestFailClosedNoMedia: a participant of a record: required session whose
// media never arrives (every RTP packet lost) fails the session within 2
// seconds after recording.media_grace_period.
func TestFailClosedNoMedia(t *testing.T) {
	const grace = 1500 * time.Millisecond
	g := startGateway(t, requiredPolicy, func(c *config.Config) { c.Recording.MediaGracePeriod = grace })
	ingest := token(t, g, auth.RoleIngest, "")
	audio, _ := media(t)
	ch := failedEvents(t, g)
	const session = "required-2"
	posted := time.Now()
	publish(t, g, ingest, session, "muted", whip.Options{Audio: audio, Impairment: whip.Impairment{LossPercent: 100}})
	_, d := waitEvent(t, ch, grace+3*time.Second)
	took := time.Since(posted)
	t.Logf("recording.failed %v after the WHIP POST (grace %v): %+v", took, grace, d)
	if took < grace || took > grace+2*time.Second {
		t.Errorf("event %v after the POST, want between %v and %v", took, grace, grace+2*time.Second)
	}
	if d.Reason != "no_media" || d.ParticipantID != "muted" || d.SessionID != session {
		t.Errorf("event data %+v", d)
	}
	if doc := getSession(t, g, g.AdminToken, session); doc.RecordingStatus != meta.LiveFailed || doc.FailureReason != "no_media" {
		t.Errorf("recording_status %s (%s)", doc.RecordingStatus, doc.FailureReason)
	}
}

// TestStorageFailureMidRecording: the spool disappears under a live
// recording (its directory is moved away). The next part cannot be made
// durable: the recording is failed with a reason and a recording.failed
// event naming it, the session's recording_status is failed, and once
// the spool is back the manifest is sealed, so every part written before
// the failure is readable.
func TestStorageFailureMidRecording(t *testing.T) {
	g := startGateway(t, requiredPolicy)
	ingest := token(t, g, auth.RoleIngest, "")
	audio, video := media(t)
	ch := failedEvents(t, g)
	const session = "spool-1"
	pub, start := publish(t, g, ingest, session, "agent", whip.Options{Audio: audio, Video: video})
	time.Sleep(4500 * time.Millisecond)
	spool := filepath.Join(g.Config.DataDir, "spool")
	moved := spool + ".away"
	lost := time.Now()
	if err := os.Rename(spool, moved); err != nil {
		t.Fatal(err)
	}
	restored := false
	t.Cleanup(func() {
		if !restored {
			_ = os.Rename(moved, spool)
		}
	})
	var recData events.RecordingData
	for recData.RecordingID == "" {
		_, d := waitEvent(t, ch, 5*time.Second)
		if d.RecordingID != "" {
			recData = d
		}
	}
	t.Logf("recording.failed for %s %v after the spool vanished: reason %s", recData.RecordingID, time.Since(lost), recData.Reason)
	if recData.Reason != "storage" || recData.Status != "failed" {
		t.Errorf("event data %+v", recData)
	}
	rec := waitRecording(t, g, session, "agent")
	if rec.Status != meta.StatusFailed || rec.FailureReason == "" || rec.ID != recData.RecordingID {
		t.Fatalf("recording %s %q", rec.Status, rec.FailureReason)
	}
	t.Logf("failure reason: %s", rec.FailureReason)
	if doc := getSession(t, g, g.AdminToken, session); doc.RecordingStatus != meta.LiveFailed {
		t.Errorf("recording_status %s", doc.RecordingStatus)
	}
	// The connection ended (only that one); the publisher's DELETE finds nothing.
	_ = pub.Close(context.Background())

	if err := os.Rename(moved, spool); err != nil {
		t.Fatal(err)
	}
	restored = true
	checkFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		var r meta.Recording
		g.DB.First(&r, "id = ?", rec.ID)
		if r.ManifestSHA256 == "" {
			return errorf("manifest not sealed yet")
		}
		rec = r
		return nil
	})
	r, err := g.Store.Open(context.Background(), rec.TenantID, rec.ID, storage.ReadOptions{AllowIncomplete: true})
	if err != nil {
		t.Fatalf("open failed recording: %v", err)
	}
	if m := r.Manifest(); m.Complete || len(m.Parts) < 2 {
		t.Errorf("manifest complete=%v with %d parts", m.Complete, len(m.Parts))
	}
	r.Close()
	p := ffprobe(t, decrypt(t, g.Store, rec))
	before := lost.Sub(start)
	t.Logf("readable: %v of media; the spool vanished %v after the start", p.Duration, before)
	if p.Duration < before-2500*time.Millisecond || p.Duration > before+500*time.Millisecond {
		t.Errorf("readable duration %v, want up to %v (at most one part lost)", p.Duration, before)
	}
}
