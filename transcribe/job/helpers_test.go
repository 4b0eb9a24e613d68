package job

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/recorder/ogg"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/disk"
	"github.com/custodian/custodian/storage/keyring"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"github.com/custodian/custodian/storage/spool"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/audio"
	"github.com/custodian/custodian/transcribe/sphinx"
)

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until

// testLog is the logger of tests: warnings and errors to stderr with -v.
func testLog() *slog.Logger {
	if flag.Parsed() && testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// offline is one PocketSphinx engine shared by the package's tests (a
// decoder costs 100 MB and half a CPU second to load).
var offline = sync.OnceValues(func() (*sphinx.Engine, error) {
	return sphinx.New(config.Offline{}, sphinx.WithDecoders(2))
})

func offlineEngine(tb testing.TB) transcribe.Engine {
	tb.Helper()
	e, err := offline()
	if err == nil {
		// The stand-in of CGO_ENABLED=0 builds fails every call.
		_, err = e.Transcribe(context.Background(), transcribe.Audio{})
	}
	if err != nil {
		tb.Skipf("offline engine unavailable: %v", err)
	}
	return e
}

// env is a real job environment: a database, an embedded JetStream server
// on loopback, and an encrypted object store (disk blob store, local
// keyring, spool) in a temporary data directory.
type env struct {
	t      testing.TB
	dir    string
	db     *gorm.DB
	dbDSN  string // how another process opens db: "sqlite:PATH" or a PostgreSQL DSN
	srv    *server.Server
	url    string
	nc     *nats.Conn
	js     jetstream.JetStream
	blob   *disk.Store
	store  *storage.Store
	tenant string
}

type envOptions struct {
	postgres bool
	natsURL  string // external server; empty: embedded
	tenant   string // default "default"
}

func newEnv(tb testing.TB, o envOptions) *env {
	tb.Helper()
	e := &env{t: tb, dir: tb.TempDir(), tenant: o.tenant}
	if e.tenant == "" {
		e.tenant = "default"
	}
	ctx := context.Background()
	var err error
	if o.postgres {
		e.dbDSN = postgresDSN(tb)
		if e.dbDSN == "" {
			tb.Skip("CUSTODIAN_TEST_POSTGRES_DSN not set")
		}
	} else {
		e.dbDSN = "sqlite:" + filepath.Join(e.dir, "custodian.db")
	}
	if e.db, err = meta.Open(ctx, meta.Options{DSN: e.dbDSN}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { meta.Close(e.db) })
	if err := e.db.Create(&meta.Tenant{ID: e.tenant, Name: e.tenant}).Error; err != nil {
		tb.Fatal(err)
	}

	if o.natsURL == "" {
		e.srv, err = events.StartEmbedded(ctx, events.EmbeddedOptions{StoreDir: filepath.Join(e.dir, "nats"), ListenAddr: "127.0.0.1:0"})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { e.srv.Shutdown(); e.srv.WaitForShutdown() })
		e.url = e.srv.ClientURL()
	} else {
		e.url = o.natsURL
	}
	e.nc, e.js = connect(tb, e.url)
	if _, err := events.EnsureStream(ctx, e.js, events.StreamOptions{}); err != nil {
		tb.Fatal(err)
	}

	e.store = openStore(tb, e.db, e.dir, "spool")
	return e
}

// openStore opens the object store of data directory dir with its own
// spool directory.
func openStore(tb testing.TB, db *gorm.DB, dir, spoolDir string) *storage.Store {
	tb.Helper()
	blob, err := disk.New(filepath.Join(dir, "objects"))
	if err != nil {
		tb.Fatal(err)
	}
	kr, _, err := keyring.OpenOrCreate(filepath.Join(dir, "keys", "keyring.json"), false)
	if err != nil {
		tb.Fatal(err)
	}
	sp, err := spool.Open(filepath.Join(dir, spoolDir), spool.Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	st := storage.New(db, blob, kr, sp, storage.Options{Provider: "local"})
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st.Close(ctx)
	})
	return st
}

func connect(tb testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

// postgresDSN returns a fresh PostgreSQL schema's DSN, or "".
func postgresDSN(tb testing.TB) string {
	tb.Helper()
	return metatest.PostgresDSN(tb)
}

// relay publishes env's outbox to its NATS until the test ends.
func (e *env) relay(tb testing.TB) *events.Relay {
	tb.Helper()
	r := events.NewRelay(e.db, e.js, events.RelayOptions{PollInterval: 50 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return r
}

// queueConfig is a fast test configuration on env's stream names.
func testQueueConfig(ackWait time.Duration, maxDeliver int) Config {
	return Config{AckWait: ackWait, MaxDeliver: maxDeliver}
}

func (e *env) queue(tb testing.TB, cfg Config) *Queue {
	tb.Helper()
	q := NewQueue(e.js, e.db, cfg, testLog(), NewMetrics())
	if err := q.Ensure(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return q
}

// transcriber returns a Transcriber on env with engine en.
func (e *env) transcriber(en transcribe.Engine) *Transcriber {
	return &Transcriber{DB: e.db, Store: e.store, Engine: en, Language: "en-US", Log: testLog()}
}

// startWorker runs a worker until the returned stop is called or the test
// ends.
func startWorker(tb testing.TB, w *Worker) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	tb.Cleanup(stop)
	return stop
}

func fastWorker(q *Queue, t *Transcriber) *Worker {
	return NewWorker(q, t, WorkerConfig{
		Workers: 1, BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		PollWait: 500 * time.Millisecond, Log: testLog(),
	})
}

// recSpec describes a recording to write.
type recSpec struct {
	session, participant, name string
	file                       string // Ogg file to record; "" with data
	data                       []byte // recording plaintext (when file is "")
	startOffsetMS              int64
	redact, keepUnredacted     bool
	noTranscribe               bool
	engine                     string // the policy's transcription_engine
	status                     string // default complete
	retainUntil                *time.Time
}

// record writes a recording as the recorder does: session, participant
// and recording rows, sealed parts through Store.NewWriter, the manifest,
// then the row's completion and recording.completed in one transaction.
// It returns the completed row.
func (e *env) record(tb testing.TB, s recSpec) meta.Recording {
	tb.Helper()
	ctx := context.Background()
	data := s.data
	if s.file != "" {
		var err error
		if data, err = os.ReadFile(s.file); err != nil {
			tb.Fatal(err)
		}
	}
	if s.session == "" {
		s.session = "sess-" + meta.NewID("s")
	}
	if s.participant == "" {
		s.participant = "p1"
	}
	if s.status == "" {
		s.status = meta.StatusComplete
	}
	db := e.db.WithContext(ctx)
	now := time.Now().UTC()
	sess := meta.Session{TenantID: e.tenant, ID: s.session, Status: meta.SessionActive, StartedAt: now.Add(-time.Duration(s.startOffsetMS) * time.Millisecond)}
	if err := db.Where("tenant_id = ? AND id = ?", e.tenant, s.session).FirstOrCreate(&sess).Error; err != nil {
		tb.Fatal(err)
	}
	p := meta.Participant{TenantID: e.tenant, SessionID: s.session, ID: s.participant, Name: s.name, Consent: "granted"}
	if err := db.Create(&p).Error; err != nil {
		tb.Fatal(err)
	}
	rec := meta.Recording{
		ID: meta.NewID("rec"), TenantID: e.tenant, SessionID: s.session, ParticipantID: s.participant,
		Department: "sales", Status: meta.StatusRecording, ContentType: audio.ContentTypeOgg,
		StartedAt: now, StartOffsetMS: s.startOffsetMS,
		Transcribe: !s.noTranscribe, RedactPII: s.redact, KeepUnredacted: s.keepUnredacted, RetainUntil: s.retainUntil,
		TranscriptionEngine: s.engine,
	}
	if err := db.Create(&rec).Error; err != nil {
		tb.Fatal(err)
	}
	w, err := e.store.NewWriter(ctx, e.tenant, rec.ID, storage.WriterOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	const partBytes = 8 << 10
	for off := 0; off < len(data); off += partBytes {
		if _, err := w.WritePart(ctx, data[off:min(off+partBytes, len(data))]); err != nil {
			tb.Fatal(err)
		}
	}
	m, err := w.Close(ctx, s.status == meta.StatusComplete)
	if err != nil {
		tb.Fatal(err)
	}
	m.Apply(&rec)
	rec.DurationMS = durationMS(data)
	ended := now.Add(time.Duration(rec.DurationMS) * time.Millisecond)
	rec.EndedAt = &ended
	rec.Status = s.status
	kind := events.RecordingCompleted
	switch s.status {
	case meta.StatusRecovered:
		kind = events.RecordingRecovered
	case meta.StatusFailed:
		kind = events.RecordingFailed
	}
	err = db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Save(&rec).Error; err != nil {
			return err
		}
		return events.Emit(tx, events.Event{Tenant: e.tenant, Kind: kind, Subject: rec.ID, Data: events.RecordingData{
			RecordingID: rec.ID, SessionID: rec.SessionID, ParticipantID: rec.ParticipantID, Status: rec.Status,
			ContentType: rec.ContentType, StartedAt: rec.StartedAt, StartOffsetMS: rec.StartOffsetMS, DurationMS: rec.DurationMS,
		}})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rec
}

// durationMS decodes an Ogg recording to learn its length (0 when it
// does not decode).
func durationMS(data []byte) int64 {
	var n int64
	err := audio.Decode(context.Background(), bytes.NewReader(data), audio.ContentTypeOgg, audio.Options{}, func(p []int16) error {
		n += int64(len(p))
		return nil
	})
	if err != nil {
		return 0
	}
	return n * 1000 / transcribe.SampleRate
}

// headerOnlyOgg is an Ogg/Opus stream with its two header pages and no
// audio: a zero-length recording.
func headerOnlyOgg() []byte {
	w := ogg.NewWriter(7)
	w.WritePacket(ogg.OpusHead(1, 312, 48000), 0)
	b := w.Flush(nil, false)
	w.WritePacket(ogg.OpusTags("custodian-test"), 0)
	return w.Flush(b, true)
}

// transcriptRow reads a recording's transcript row.
func (e *env) transcriptRow(tb testing.TB, id string) meta.Transcript {
	tb.Helper()
	var row meta.Transcript
	if err := e.db.Where("recording_id = ?", id).Take(&row).Error; err != nil {
		tb.Fatalf("transcript row of %s: %v", id, err)
	}
	return row
}

// waitStatus waits until the recording's transcript row has status.
func (e *env) waitStatus(tb testing.TB, id, status string, total time.Duration) meta.Transcript {
	tb.Helper()
	var row meta.Transcript
	checkFor(tb, total, 20*time.Millisecond, func() error {
		err := e.db.Where("recording_id = ?", id).Take(&row).Error
		if err != nil {
			return err
		}
		if row.Status != status {
			return fmt.Errorf("transcript of %s is %s (attempts %d, reason %q), want %s", id, row.Status, row.Attempts, row.FailureReason, status)
		}
		return nil
	})
	return row
}

// outbox returns the outbox events of kind for a recording.
func (e *env) outbox(tb testing.TB, kind, recordingID string) []events.TranscriptData {
	tb.Helper()
	var rows []meta.OutboxEvent
	if err := e.db.Where("kind = ? AND subject = ?", kind, recordingID).Order("seq").Find(&rows).Error; err != nil {
		tb.Fatal(err)
	}
	out := make([]events.TranscriptData, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal(r.Data, &out[i]); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

// storedTranscript decrypts a transcript object.
func (e *env) storedTranscript(tb testing.TB, id, name string) (transcribe.Transcript, []byte) {
	tb.Helper()
	pt, err := e.store.GetObject(context.Background(), e.tenant, id, name)
	if err != nil {
		tb.Fatalf("get %s of %s: %v", name, id, err)
	}
	var tr transcribe.Transcript
	if err := json.Unmarshal(pt, &tr); err != nil {
		tb.Fatal(err)
	}
	return tr, pt
}

// streamEmpty waits until the job stream holds no message (all acked).
func waitStreamEmpty(tb testing.TB, q *Queue, total time.Duration) {
	tb.Helper()
	checkFor(tb, total, 20*time.Millisecond, func() error {
		st, err := q.js.Stream(context.Background(), q.cfg.Stream)
		if err != nil {
			return err
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d job messages left in %s", info.State.Msgs, q.cfg.Stream)
		}
		return nil
	})
}

func words(tr transcribe.Transcript) []transcribe.Word {
	var ws []transcribe.Word
	for _, s := range tr.Segments {
		ws = append(ws, s.Words...)
	}
	return ws
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
