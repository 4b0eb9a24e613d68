package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/job"
	"github.com/custodian/custodian/transcribe/render"
)

// writeRecording stores an Ogg file as a finished recording the way the
// recorder does (rows, sealed parts, manifest, then status complete and
// recording.completed in one transaction) and returns its row.
func writeRecording(tb testing.TB, g *gateway.Gateway, session, participant, name, file string, offsetMS int64) meta.Recording {
	tb.Helper()
	ctx := context.Background()
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	db := g.DB.WithContext(ctx)
	now := time.Now().UTC()
	s := meta.Session{TenantID: gateway.DefaultTenant, ID: session, Status: meta.SessionActive, StartedAt: now}
	if err := db.Where("tenant_id = ? AND id = ?", s.TenantID, s.ID).FirstOrCreate(&s).Error; err != nil {
		tb.Fatal(err)
	}
	if err := db.Create(&meta.Participant{TenantID: s.TenantID, SessionID: session, ID: participant, Name: name}).Error; err != nil {
		tb.Fatal(err)
	}
	rec := meta.Recording{
		ID: meta.NewID("rec"), TenantID: s.TenantID, SessionID: session, ParticipantID: participant,
		Status: meta.StatusRecording, ContentType: "audio/ogg", StartedAt: now, StartOffsetMS: offsetMS, Transcribe: true,
	}
	if err := db.Create(&rec).Error; err != nil {
		tb.Fatal(err)
	}
	w, err := g.Store.NewWriter(ctx, rec.TenantID, rec.ID, storage.WriterOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	for off := 0; off < len(data); off += 16 << 10 {
		if _, err := w.WritePart(ctx, data[off:min(off+16<<10, len(data))]); err != nil {
			tb.Fatal(err)
		}
	}
	m, err := w.Close(ctx, true)
	if err != nil {
		tb.Fatal(err)
	}
	m.Apply(&rec)
	rec.Status, rec.DurationMS = meta.StatusComplete, 7000
	err = db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Save(&rec).Error; err != nil {
			return err
		}
		return events.Emit(tx, events.Event{Tenant: rec.TenantID, Kind: events.RecordingCompleted, Subject: rec.ID,
			Data: events.RecordingData{RecordingID: rec.ID, SessionID: session, ParticipantID: participant, Status: rec.Status}})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rec
}

func waitTranscript(tb testing.TB, g *gateway.Gateway, id string, total time.Duration) meta.Transcript {
	tb.Helper()
	deadline := time.Now().Add(total)
	for {
		var row meta.Transcript
		err := g.DB.Where("recording_id = ?", id).Take(&row).Error
		if err == nil && row.Status == meta.TranscriptCompleted {
			return row
		}
		if time.Now().After(deadline) {
			tb.Fatalf("transcript of %s not completed after %v: %+v, %v", id, total, row, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testdataFile(name string) string { return filepath.Join("..", "testdata", name) }

// TestTranscriptionInServe: with transcription.workers 1, a recording
// completed on a serving gateway is transcribed by its own dispatcher and
// worker, and the API serves the recording's and the merged session's
// transcript (speakers in the order of the session clock).
func TestTranscriptionInServe(t *testing.T) {
	g := gatewaytest.Start(t, func(c *config.Config) { c.Transcription.Workers = 1 })
	tr := g.Transcription()
	if tr == nil || tr.Engines == nil {
		t.Skip("no transcription worker in this gateway (offline engine unavailable)")
	}
	alice := writeRecording(t, g.Gateway, "call-7", "alice", "Alice", testdataFile("call01.ogg"), 9000)
	bob := writeRecording(t, g.Gateway, "call-7", "bob", "Bob", testdataFile("call02.ogg"), 500)
	waitTranscript(t, g.Gateway, alice.ID, 3*time.Minute)
	row := waitTranscript(t, g.Gateway, bob.ID, 3*time.Minute)
	if row.Engine != "offline" || row.WordCount == 0 {
		t.Errorf("row = %+v", row)
	}

	code, body, _ := get(t, g.URL()+"/v1/recordings/"+bob.ID+"/transcript", g.AdminToken)
	if code != 200 {
		t.Fatalf("GET recording transcript: %d %s", code, body)
	}
	var one transcribe.Transcript
	if err := json.Unmarshal(body, &one); err != nil || one.Speaker != "Bob" || len(one.Segments) == 0 || one.Segments[0].StartMS < 500 {
		t.Errorf("recording transcript: %v, speaker %q, %d segments", err, one.Speaker, len(one.Segments))
	}

	code, body, _ = get(t, g.URL()+"/v1/sessions/call-7/transcript", g.AdminToken)
	if code != 200 {
		t.Fatalf("GET session transcript: %d %s", code, body)
	}
	var merged render.Merged
	if err := json.Unmarshal(body, &merged); err != nil {
		t.Fatal(err)
	}
	var speakers []string
	for i, s := range merged.Segments {
		if i > 0 && s.StartMS < merged.Segments[i-1].StartMS {
			t.Errorf("segment %d at %d ms before segment %d at %d ms", i, s.StartMS, i-1, merged.Segments[i-1].StartMS)
		}
		if len(speakers) == 0 || speakers[len(speakers)-1] != s.Speaker {
			speakers = append(speakers, s.Speaker)
		}
	}
	if fmt.Sprint(speakers) != "[Bob Alice]" {
		t.Errorf("speakers in order %v, want [Bob Alice]", speakers)
	}

	code, body, _ = get(t, g.URL()+"/metrics", "")
	if code != 200 || !containsAll(string(body), "custodian_transcription_jobs_completed_total 2", "custodian_transcription_jobs_queued 0",
		"custodian_transcription_audio_seconds_total") {
		t.Errorf("metrics lack the transcription figures:\n%s", grepLines(string(body), "custodian_transcription"))
	}
}

// TestTranscriptionWorkerProcess: a gateway without workers (but with
// nats.listen_addr) and a separate transcription worker on the same data
// directory, as `custodian worker transcribe` runs it beside `serve`.
func TestTranscriptionWorkerProcess(t *testing.T) {
	port := freePort(t)
	g := gatewaytest.Start(t, func(c *config.Config) {
		c.Transcription.Workers = 0
		c.NATS.ListenAddr = "127.0.0.1:" + strconv.Itoa(port)
	})
	if g.Transcription() == nil || g.Transcription().Engines != nil {
		t.Fatal("serve with workers 0 should run the dispatcher and no worker")
	}
	cfg := g.Config
	cfg.Transcription.Workers = 1
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- gateway.RunTranscriptionWorker(ctx, cfg, nil, gateway.WorkerOptions{Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		if err != nil && os.Getenv("CGO_ENABLED") == "0" {
			t.Skipf("worker: %v", err)
		}
		t.Fatalf("worker exited: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("worker not ready")
	}
	// A second worker on the same data directory is refused.
	err := gateway.RunTranscriptionWorker(context.Background(), cfg, nil, gateway.WorkerOptions{})
	if err == nil || !containsAll(err.Error(), "another transcription worker") {
		t.Errorf("second worker on one data directory: %v", err)
	}

	rec := writeRecording(t, g.Gateway, "call-8", "p1", "Pat", testdataFile("call06.ogg"), 0)
	row := waitTranscript(t, g.Gateway, rec.ID, 3*time.Minute)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("worker stopped with %v", err)
	}
	// The worker uploaded the object before committing: the serving
	// gateway reads it.
	pt, err := g.Store.GetObject(context.Background(), rec.TenantID, rec.ID, job.ObjectTranscript)
	if err != nil {
		t.Fatal(err)
	}
	var tr transcribe.Transcript
	if err := json.Unmarshal(pt, &tr); err != nil || tr.Speaker != "Pat" || row.WordCount == 0 {
		t.Errorf("transcript by the worker process: %v speaker %q words %d", err, tr.Speaker, row.WordCount)
	}
	var ev meta.OutboxEvent
	if err := g.DB.Where("kind = ? AND subject = ?", events.TranscriptCompleted, rec.ID).Take(&ev).Error; err != nil || ev.SentAt == nil {
		t.Errorf("transcript.completed relayed: %v, sent %v", err, ev.SentAt)
	}
}

// TestTranscriptionDisabled: engine none starts no transcription.
func TestTranscriptionDisabled(t *testing.T) {
	g := gatewaytest.Start(t, func(c *config.Config) { c.Transcription.Engine = "none"; c.Transcription.Workers = 1 })
	if g.Transcription() != nil {
		t.Fatal("transcription component running with engine none")
	}
	if _, err := g.JS.Stream(context.Background(), job.StreamName); err == nil {
		t.Error("CUSTODIAN_JOBS created with transcription disabled")
	}
	if _, err := gateway.WorkerNATSURL(config.Default()); err == nil {
		t.Error("WorkerNATSURL without nats.url or nats.listen_addr should fail")
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestWorkerNATSURL: where `custodian worker transcribe` connects.
func TestWorkerNATSURL(t *testing.T) {
	tests := []struct {
		url, listen, want string
		ok                bool
	}{
		{"nats://nats.internal:4222", "", "nats://nats.internal:4222", true},
		{"nats://a:4222,nats://b:4222", "127.0.0.1:4222", "nats://a:4222,nats://b:4222", true},
		{"", "127.0.0.1:4222", "nats://127.0.0.1:4222", true},
		{"", ":4333", "nats://127.0.0.1:4333", true},
		{"", "0.0.0.0:4222", "nats://127.0.0.1:4222", true},
		{"", "[::1]:4222", "nats://[::1]:4222", true},
		{"", "", "", false},
		{"", "127.0.0.1:0", "", false},
		{"", "no-port", "", false},
	}
	for _, tt := range tests {
		cfg := config.Default()
		cfg.NATS.URL, cfg.NATS.ListenAddr = tt.url, tt.listen
		got, err := gateway.WorkerNATSURL(cfg)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("url %q listen %q: %q, %v; want %q (ok %v)", tt.url, tt.listen, got, err, tt.want, tt.ok)
		}
	}
}
