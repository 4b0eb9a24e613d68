package job

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage/meta"
)

// TestSweeper: recordings that should be transcribed but have no job
// (no event was handled: the dispatcher is not running) are enqueued once;
// recordings that must not be transcribed are left alone; a running row
// whose worker went silent and whose job is gone is enqueued again.
func TestSweeper(t *testing.T) {
	eachDB(t, func(t *testing.T, pg bool) {
		en := offlineEngine(t)
		e := newEnv(t, envOptions{postgres: pg})
		q := e.queue(t, testQueueConfig(30*time.Second, 3))
		ctx := context.Background()
		s := NewSweeper(q, SweepConfig{Grace: time.Millisecond, Stale: 2 * time.Second})

		want := e.record(t, recSpec{file: testdata("call03.ogg")})
		off := e.record(t, recSpec{file: testdata("call03.ogg"), noTranscribe: true})
		failed := e.record(t, recSpec{data: headerOnlyOgg(), status: meta.StatusFailed})
		time.Sleep(5 * time.Millisecond) // past the grace
		if n, err := s.Sweep(ctx); err != nil || n != 1 {
			t.Fatalf("first sweep enqueued %d, %v; want 1", n, err)
		}
		if n, err := s.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("second sweep (job still queued) enqueued %d, %v; want 0", n, err)
		}
		stop := startWorker(t, fastWorker(q, e.transcriber(en)))
		e.waitStatus(t, want.ID, meta.TranscriptCompleted, time.Minute)
		stop()
		waitStreamEmpty(t, q, 10*time.Second)
		if n, err := s.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("sweep after completion enqueued %d, %v; want 0", n, err)
		}
		for _, r := range []meta.Recording{off, failed} {
			var n int64
			e.db.Model(&meta.Transcript{}).Where("recording_id = ?", r.ID).Count(&n)
			if n != 0 {
				t.Errorf("recording %s (transcribe %v, status %s) got a transcript row", r.ID, r.Transcribe, r.Status)
			}
		}

		// A row left running by a worker that died after its last
		// delivery: no heartbeat for longer than Stale, no job message.
		lost := e.record(t, recSpec{file: testdata("call03.ogg")})
		row, err := ensureRow(ctx, e.db, lost)
		if err != nil {
			t.Fatal(err)
		}
		old := time.Now().UTC().Add(-time.Minute)
		e.db.Model(&row).Updates(map[string]any{"status": meta.TranscriptRunning, "attempts": 1, "updated_at": old})
		if n, err := s.Sweep(ctx); err != nil || n != 1 {
			t.Fatalf("sweep of a stale running row enqueued %d, %v; want 1", n, err)
		}
		startWorker(t, fastWorker(q, e.transcriber(en)))
		got := e.waitStatus(t, lost.ID, meta.TranscriptCompleted, time.Minute)
		if got.Attempts != 2 {
			t.Errorf("attempts %d, want 2", got.Attempts)
		}
	})
}

// TestExternalNATS runs the dispatcher and a worker on the machine's NATS
// server (CUSTODIAN_TEST_NATS_URL): a unique tenant on CUSTODIAN_EVENTS
// and a stream, subjects and consumers of this test's own, removed at the
// end, so nothing else on the server is disturbed.
func TestExternalNATS(t *testing.T) {
	url := os.Getenv("CUSTODIAN_TEST_NATS_URL")
	if url == "" {
		t.Skip("CUSTODIAN_TEST_NATS_URL not set")
	}
	en := offlineEngine(t)
	var b [5]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	tenant := "t" + id
	e := newEnv(t, envOptions{natsURL: url, tenant: tenant})
	ctx := context.Background()
	cfg := Config{
		Stream: "CUSTODIAN_JOBS_TEST_" + strings.ToUpper(id), Subject: "custodian_jobs_test_" + id + ".transcribe",
		Consumer: "workers-" + id, AckWait: 30 * time.Second, MaxDeliver: 3,
	}
	dcfg := DispatchConfig{
		Consumer:      "transcribe-dispatch-test-" + id,
		FilterSubject: events.SubjectPrefix + "." + tenant + ".recording.*",
		PollWait:      200 * time.Millisecond,
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.js.DeleteStream(cctx, cfg.Stream)
		e.js.DeleteConsumer(cctx, events.StreamName, dcfg.Consumer)
		if st, err := e.js.Stream(cctx, events.StreamName); err == nil {
			st.Purge(cctx, jetstream.WithPurgeSubject(events.SubjectPrefix+"."+tenant+".>"))
		}
	})
	e.relay(t)
	q := e.queue(t, cfg)
	d := NewDispatcher(q, dcfg)
	if _, err := d.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); d.Run(dctx) }()
	t.Cleanup(func() { cancel(); <-done })
	startWorker(t, fastWorker(q, e.transcriber(en)))

	rec := e.record(t, recSpec{file: testdata("call06.ogg"), name: "Agent"})
	row := e.waitStatus(t, rec.ID, meta.TranscriptCompleted, 2*time.Minute)
	waitStreamEmpty(t, q, 10*time.Second)
	tr, _ := e.storedTranscript(t, rec.ID, ObjectTranscript)
	if len(words(tr)) < 5 || row.WordCount != len(words(tr)) || tr.Speaker != "Agent" {
		t.Errorf("transcript: %d words (row %d), speaker %q", len(words(tr)), row.WordCount, tr.Speaker)
	}
	// transcript.completed reached the shared server under this tenant.
	st, err := e.js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		_, err := st.GetLastMsgForSubject(ctx, events.Subject(tenant, events.TranscriptCompleted))
		return err
	})
}
