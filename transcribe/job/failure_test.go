package job

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/audio"
	"github.com/custodian/custodian/transcribe/openai"
)

// eachDB runs fn on SQLite and, when CUSTODIAN_TEST_POSTGRES_DSN is set,
// on PostgreSQL.
func eachDB(t *testing.T, fn func(t *testing.T, pg bool)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, false) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("CUSTODIAN_TEST_POSTGRES_DSN") == "" {
			t.Skip("CUSTODIAN_TEST_POSTGRES_DSN not set")
		}
		fn(t, true)
	})
}

// TestEngineFailures runs jobs against an OpenAI-compatible server that
// cannot be reached, that is overloaded (503), and that answers something
// that does not parse: retryable failures are retried with backoff and
// fail after max_deliver attempts, the bad answer fails at once; every
// failure ends with the row failed, the reason in it, and one
// transcript.failed event; no transcript object exists.
func TestEngineFailures(t *testing.T) {
	eachDB(t, func(t *testing.T, pg bool) {
		e := newEnv(t, envOptions{postgres: pg})
		const maxDeliver = 3
		q := e.queue(t, testQueueConfig(30*time.Second, maxDeliver))
		overloaded := newWhisperServer(t, answerStatus(http.StatusServiceUnavailable))
		garbage := newWhisperServer(t, answerGarbage)
		tests := []struct {
			name       string
			url        string
			reason     string
			attempts   int
			reasonText string
			server     *whisperServer
		}{
			{"unreachable", unreachableURL(t), ReasonEngineError, maxDeliver, "connection refused", nil},
			{"overloaded", overloaded.srv.URL, ReasonEngineError, maxDeliver, "503", overloaded},
			{"answer does not parse", garbage.srv.URL, ReasonEngineBadAnswer, 1, "unusable answer", garbage},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				w := NewWorker(q, e.transcriber(openaiEngine(t, tt.url)), WorkerConfig{
					BackoffBase: 200 * time.Millisecond, BackoffMax: time.Second, PollWait: 300 * time.Millisecond, Log: testLog(),
				})
				stop := startWorker(t, w)
				defer stop()
				rec := e.record(t, recSpec{file: testdata("call01.ogg"), name: "Caller"})
				start := time.Now()
				if ok, err := q.Enqueue(context.Background(), rec, SourceCompleted, time.Time{}); err != nil || !ok {
					t.Fatalf("enqueue = %v, %v", ok, err)
				}
				row := e.waitStatus(t, rec.ID, meta.TranscriptFailed, time.Minute)
				waitStreamEmpty(t, q, 10*time.Second)
				t.Logf("failed after %v: %s", time.Since(start).Round(time.Millisecond), row.FailureReason)
				if row.Attempts != tt.attempts || !strings.Contains(row.FailureReason, tt.reasonText) || row.CipherSHA256 != "" || row.CompletedAt != nil {
					t.Errorf("row: attempts %d (want %d), reason %q (want it to mention %q), hash %q",
						row.Attempts, tt.attempts, row.FailureReason, tt.reasonText, row.CipherSHA256)
				}
				evs := e.outbox(t, events.TranscriptFailed, rec.ID)
				if len(evs) != 1 || evs[0].Reason != tt.reason || evs[0].Attempts != tt.attempts || evs[0].Engine != openai.Name {
					t.Errorf("transcript.failed events = %+v, want one with reason %s, attempts %d", evs, tt.reason, tt.attempts)
				}
				if n := len(e.outbox(t, events.TranscriptCompleted, rec.ID)); n != 0 {
					t.Errorf("%d transcript.completed events", n)
				}
				if _, err := e.store.GetObject(context.Background(), e.tenant, rec.ID, ObjectTranscript); !isNotFound(err) {
					t.Errorf("transcript object of a failed job: err = %v, want not found", err)
				}
				if tt.server != nil {
					times := tt.server.Times()
					if len(times) != tt.attempts {
						t.Fatalf("%d requests, want %d (one per attempt)", len(times), tt.attempts)
					}
					// Attempt k waits at least half its backoff
					// (200 ms·2^(k-1), jittered to [d/2, d]).
					for k := 1; k < len(times); k++ {
						minGap := 100 * time.Millisecond << (k - 1)
						if gap := times[k].Sub(times[k-1]); gap < minGap {
							t.Errorf("attempt %d came %v after attempt %d; backoff is at least %v", k+1, gap, k, minGap)
						}
					}
				}
			})
		}
	})
}

// TestBadRecordings records corrupt, truncated and tampered recordings:
// each job fails at once with a clear reason, and the recording (row and
// sealed objects) is left exactly as it was.
func TestBadRecordings(t *testing.T) {
	en := offlineEngine(t)
	e := newEnv(t, envOptions{})
	q := e.queue(t, testQueueConfig(30*time.Second, 3))
	startWorker(t, fastWorker(q, e.transcriber(en)))
	good, err := os.ReadFile(testdata("call04.ogg"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), good...)
	for i := len(corrupt) / 2; i < len(corrupt)/2+40; i++ {
		corrupt[i] ^= 0x5a
	}
	tests := []struct {
		name   string
		data   []byte
		tamper func(t *testing.T, dir string) // on the recording's sealed objects
		reason string
		text   string
	}{
		{"truncated mid-page", good[:len(good)*2/3+7], nil, ReasonRecordingCorrupt, "truncated"},
		{"corrupt pages", corrupt, nil, ReasonRecordingCorrupt, "corrupt"},
		{"not ogg at all", []byte(strings.Repeat("this is not an ogg file ", 400)), nil, ReasonRecordingCorrupt, "corrupt"},
		{"sealed part tampered", good, func(t *testing.T, dir string) {
			flipByte(t, filepath.Join(dir, "part-000002.age"))
		}, ReasonRecordingIntegrity, "integrity"},
		{"sealed part missing", good, func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "part-000003.age")); err != nil {
				t.Fatal(err)
			}
		}, ReasonRecordingIntegrity, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			rec := e.record(t, recSpec{data: tt.data})
			if err := e.store.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			dir := e.recordingDir(t, rec.ID)
			if tt.tamper != nil {
				tt.tamper(t, dir)
			}
			before := hashTree(t, dir)
			if _, err := q.Enqueue(ctx, rec, SourceCompleted, time.Time{}); err != nil {
				t.Fatal(err)
			}
			row := e.waitStatus(t, rec.ID, meta.TranscriptFailed, time.Minute)
			if row.Attempts != 1 || !strings.Contains(strings.ToLower(row.FailureReason), tt.text) {
				t.Errorf("attempts %d, reason %q: want 1 attempt and a reason mentioning %q", row.Attempts, row.FailureReason, tt.text)
			}
			evs := e.outbox(t, events.TranscriptFailed, rec.ID)
			if len(evs) != 1 || evs[0].Reason != tt.reason {
				t.Errorf("transcript.failed = %+v, want reason %s", evs, tt.reason)
			}
			if after := hashTree(t, dir); after != before {
				t.Errorf("the recording's objects changed:\nbefore %s\nafter  %s", before, after)
			}
			var now meta.Recording
			e.db.Where("id = ?", rec.ID).Take(&now)
			if now.Status != rec.Status || now.ManifestSHA256 != rec.ManifestSHA256 || now.Size != rec.Size || !now.UpdatedAt.Equal(rec.UpdatedAt) {
				t.Errorf("recording row changed: %+v", now)
			}
		})
	}
}

// recordingDir is where the disk blob store keeps a recording's objects.
func (e *env) recordingDir(t *testing.T, id string) string {
	t.Helper()
	var dir string
	filepath.WalkDir(filepath.Join(e.dir, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == id {
			dir = p
		}
		return nil
	})
	if dir == "" {
		t.Fatalf("no object directory for recording %s", id)
	}
	return dir
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// hashTree hashes every file name and content under dir.
func hashTree(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %x\n", d.Name(), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestEdgeRecordings: zero-length audio, silence only and a video-only
// container give completed, empty transcripts; a crash-recovered
// recording (manifest not complete) is transcribed.
func TestEdgeRecordings(t *testing.T) {
	en := offlineEngine(t)
	e := newEnv(t, envOptions{})
	q := e.queue(t, testQueueConfig(30*time.Second, 3))
	startWorker(t, fastWorker(q, e.transcriber(en)))
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name        string
		spec        recSpec
		contentType string
		minWords    int
		maxWords    int
	}{
		{"zero-length audio", recSpec{data: headerOnlyOgg()}, "", 0, 0},
		{"zero bytes", recSpec{data: nil}, "", 0, 0},
		{"silence only", recSpec{data: read(filepath.Join("..", "audio", "testdata", "silence.ogg"))}, "", 0, 0},
		{"video only", recSpec{data: read(filepath.Join("..", "audio", "testdata", "video-only.webm"))}, audio.ContentTypeWebM, 0, 0},
		{"recovered after a crash", recSpec{file: testdata("call06.ogg"), status: meta.StatusRecovered}, "", 8, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.record(t, tt.spec)
			if tt.contentType != "" {
				rec.ContentType = tt.contentType
				e.db.Model(&meta.Recording{}).Where("id = ?", rec.ID).Update("content_type", tt.contentType)
			}
			if _, err := q.Enqueue(context.Background(), rec, SourceCompleted, time.Time{}); err != nil {
				t.Fatal(err)
			}
			row := e.waitStatus(t, rec.ID, meta.TranscriptCompleted, time.Minute)
			tr, plain := e.storedTranscript(t, rec.ID, ObjectTranscript)
			n := len(words(tr))
			if n < tt.minWords || n > tt.maxWords || row.WordCount != n {
				t.Errorf("%d words (row %d), want %d..%d", n, row.WordCount, tt.minWords, tt.maxWords)
			}
			if tt.maxWords == 0 && !strings.Contains(string(plain), `"segments":[]`) {
				t.Errorf("empty transcript JSON = %s, want \"segments\":[]", plain)
			}
			if evs := e.outbox(t, events.TranscriptCompleted, rec.ID); len(evs) != 1 || evs[0].WordCount != n {
				t.Errorf("transcript.completed = %+v", evs)
			}
		})
	}
}

// TestClassify tables the failure reasons of attempt errors.
func TestClassify(t *testing.T) {
	oe := func(err error) error { return &EngineError{Engine: openai.Name, Err: err} }
	tests := []struct {
		name   string
		err    error
		reason string
		retry  bool
	}{
		{"key destroyed", fmt.Errorf("open: %w", storage.ErrKeyDestroyed), ReasonRecordingDeleted, false},
		{"integrity", fmt.Errorf("x: %w", storage.ErrIntegrity), ReasonRecordingIntegrity, false},
		{"incomplete", storage.ErrIncomplete, ReasonRecordingIncomplete, false},
		{"not found yet", fmt.Errorf("part: %w", storage.ErrNotFound), ReasonRecordingMissing, true},
		{"corrupt", &audio.FormatError{Container: "ogg", Err: audio.ErrCorrupt}, ReasonRecordingCorrupt, false},
		{"truncated", &audio.FormatError{Container: "ogg", Err: audio.ErrTruncated}, ReasonRecordingCorrupt, false},
		{"unsupported", &audio.FormatError{Container: "webm", Err: audio.ErrUnsupported}, ReasonRecordingFormat, false},
		{"read error through the decoder", &audio.FormatError{Container: "ogg", Err: errors.Join(audio.ErrCorrupt, storage.ErrIntegrity)}, ReasonRecordingIntegrity, false},
		{"engine unavailable", &EngineError{Engine: "offline", Err: transcribe.ErrEngineUnavailable}, ReasonEngineUnavailable, true},
		{"bad answer", oe(openai.ErrBadResponse), ReasonEngineBadAnswer, false},
		{"server 503", oe(&openai.StatusError{StatusCode: 503}), ReasonEngineError, true},
		{"server 429", oe(&openai.StatusError{StatusCode: 429}), ReasonEngineError, true},
		{"server 400", oe(&openai.StatusError{StatusCode: 400}), ReasonEngineRejected, false},
		{"server 401", oe(&openai.StatusError{StatusCode: 401}), ReasonEngineRejected, false},
		{"offline decode error", &EngineError{Engine: "offline", Err: errors.New("sphinx: decode failed")}, ReasonEngineError, true},
		{"engine not found is not a missing recording", &EngineError{Engine: "offline", Err: storage.ErrNotFound}, ReasonEngineError, true},
		{"store", &storeError{errors.New("spool full")}, ReasonStorage, true},
		{"store after shred", &storeError{storage.ErrKeyDestroyed}, ReasonRecordingDeleted, false},
		{"database", gorm.ErrInvalidDB, ReasonInternal, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, retry := Classify(tt.err)
			if reason != tt.reason || retry != tt.retry {
				t.Errorf("Classify(%v) = %s, %v; want %s, %v", tt.err, reason, retry, tt.reason, tt.retry)
			}
		})
	}
}

// TestAttemptsExhaustedByDeadWorkers: when max_deliver attempts were
// started and none finished (each worker died mid-job), the next delivery
// records the failure instead of starting another attempt.
func TestAttemptsExhaustedByDeadWorkers(t *testing.T) {
	eachDB(t, func(t *testing.T, pg bool) {
		e := newEnv(t, envOptions{postgres: pg})
		const maxDeliver = 3
		q := e.queue(t, testQueueConfig(30*time.Second, maxDeliver))
		never := newWhisperServer(t, answerNever)
		startWorker(t, fastWorker(q, e.transcriber(openaiEngine(t, never.srv.URL))))
		ctx := context.Background()
		rec := e.record(t, recSpec{file: testdata("call01.ogg")})
		row, err := ensureRow(ctx, e.db, rec)
		if err != nil {
			t.Fatal(err)
		}
		// The third attempt's worker died: status running, no heartbeat.
		e.db.Model(&row).Updates(map[string]any{"status": meta.TranscriptRunning, "attempts": maxDeliver,
			"failure_reason": "attempt 2 of 3 failed (engine_error): timeout"})
		if _, err := q.Enqueue(ctx, rec, SourceSweep, time.Time{}); err != nil {
			t.Fatal(err)
		}
		got := e.waitStatus(t, rec.ID, meta.TranscriptFailed, time.Minute)
		waitStreamEmpty(t, q, 10*time.Second)
		if got.Attempts != maxDeliver || !strings.Contains(got.FailureReason, "did not finish") || !strings.Contains(got.FailureReason, "earlier: attempt 2 of 3") {
			t.Errorf("row: attempts %d reason %q", got.Attempts, got.FailureReason)
		}
		if len(never.Times()) != 0 {
			t.Errorf("a fourth attempt called the engine")
		}
		if evs := e.outbox(t, events.TranscriptFailed, rec.ID); len(evs) != 1 || evs[0].Reason != ReasonWorkerLost {
			t.Errorf("transcript.failed = %+v", evs)
		}
	})
}
