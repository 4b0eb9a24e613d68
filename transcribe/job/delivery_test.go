package job

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
)

// Environment of the worker child process (TestWorkerKilledMidJob).
const (
	childEnv        = "CUSTODIAN_JOB_TEST_CHILD"
	childNATS       = "CUSTODIAN_JOB_TEST_NATS"
	childDB         = "CUSTODIAN_JOB_TEST_DB"
	childData       = "CUSTODIAN_JOB_TEST_DATA"
	childEngine     = "CUSTODIAN_JOB_TEST_ENGINE_URL"
	childAckWait    = "CUSTODIAN_JOB_TEST_ACK_WAIT"
	childMaxDeliver = "CUSTODIAN_JOB_TEST_MAX_DELIVER"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChildWorker())
	}
	os.Exit(m.Run())
}

// runChildWorker is a worker process: it runs one worker on the test's
// NATS server, database and data directory (with its own spool) until it
// is killed.
func runChildWorker() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child worker:", err); return 1 }
	db, err := meta.Open(ctx, meta.Options{DSN: os.Getenv(childDB)})
	if err != nil {
		return fail(err)
	}
	nc, err := nats.Connect(os.Getenv(childNATS))
	if err != nil {
		return fail(err)
	}
	js, _ := jetstream.New(nc)
	ackWait, _ := time.ParseDuration(os.Getenv(childAckWait))
	var maxDeliver int
	fmt.Sscan(os.Getenv(childMaxDeliver), &maxDeliver)
	tb := &childTB{}
	store := openStore(tb, db, os.Getenv(childData), "spool-child")
	if tb.err != nil {
		return fail(tb.err)
	}
	q := NewQueue(js, db, Config{AckWait: ackWait, MaxDeliver: maxDeliver}, nil, nil)
	tr := &Transcriber{DB: db, Store: store, Engine: openaiEngine(tb, os.Getenv(childEngine)), Language: "en"}
	if tb.err != nil {
		return fail(tb.err)
	}
	NewWorker(q, tr, WorkerConfig{ID: "child", PollWait: 200 * time.Millisecond}).Run(ctx)
	return 0
}

// childTB lets the test helpers run in the child process.
type childTB struct {
	testing.TB
	err error
}

func (c *childTB) Helper()                   {}
func (c *childTB) Cleanup(func())            {}
func (c *childTB) Fatal(args ...any)         { c.err = fmt.Errorf("%v", args...); panic(c.err) }
func (c *childTB) Fatalf(f string, a ...any) { c.err = fmt.Errorf(f, a...); panic(c.err) }

// TestWorkerKilledMidJob starts a worker in another process, lets it claim
// a job and start transcribing (its engine call hangs), kills it with
// SIGKILL, and expects the job to be redelivered after the ack wait to a
// worker in this process, which completes it once: attempts 2, one
// transcript, one transcript.completed, no job left.
func TestWorkerKilledMidJob(t *testing.T) {
	eachDB(t, func(t *testing.T, pg bool) {
		en := offlineEngine(t)
		e := newEnv(t, envOptions{postgres: pg})
		const ackWait = 3 * time.Second
		q := e.queue(t, testQueueConfig(ackWait, 3))
		hang := newWhisperServer(t, answerNever)

		child := exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), childEnv+"=1", childNATS+"="+e.url, childDB+"="+e.dbDSN,
			childData+"="+e.dir, childEngine+"="+hang.srv.URL, childAckWait+"="+ackWait.String(), childMaxDeliver+"=3")
		child.Stdout, child.Stderr = os.Stderr, os.Stderr
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- child.Wait() }()
		var once sync.Once
		kill := func() {
			once.Do(func() {
				child.Process.Kill()
				<-exited
			})
		}
		t.Cleanup(kill)

		rec := e.record(t, recSpec{file: testdata("call02.ogg"), name: "Bob"})
		if _, err := q.Enqueue(context.Background(), rec, SourceCompleted, time.Time{}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-hang.arrived:
		case err := <-exited:
			once.Do(func() {})
			t.Fatalf("the child worker exited: %v", err)
		case <-time.After(time.Minute):
			t.Fatal("the child worker never called its engine")
		}
		if row := e.transcriptRow(t, rec.ID); row.Status != meta.TranscriptRunning || row.Attempts != 1 {
			t.Fatalf("while the child works: status %s, attempts %d", row.Status, row.Attempts)
		}
		kill()
		killed := time.Now()

		startWorker(t, fastWorker(q, e.transcriber(en)))
		row := e.waitStatus(t, rec.ID, meta.TranscriptCompleted, 2*time.Minute)
		waited := time.Since(killed)
		waitStreamEmpty(t, q, 10*time.Second)
		t.Logf("completed %v after the kill (ack wait %v)", waited.Round(time.Millisecond), ackWait)
		// The child's last heartbeat was at most a quarter of the ack wait
		// before the kill, so redelivery cannot come sooner than this.
		if waited < ackWait*3/4-100*time.Millisecond {
			t.Errorf("job came back %v after the kill, before the ack wait %v could expire", waited, ackWait)
		}
		if row.Attempts != 2 || row.Engine != en.Name() {
			t.Errorf("attempts %d engine %s, want 2 and %s", row.Attempts, row.Engine, en.Name())
		}
		if evs := e.outbox(t, events.TranscriptCompleted, rec.ID); len(evs) != 1 || evs[0].Attempts != 2 {
			t.Errorf("transcript.completed events = %+v, want one with attempts 2", evs)
		}
	})
}

// blockingEngine wraps a real engine: the first Transcribe call signals
// started and waits for its context to end.
type blockingEngine struct {
	transcribe.Engine
	started chan struct{}
	once    sync.Once
}

func (b *blockingEngine) Transcribe(ctx context.Context, a transcribe.Audio) ([]transcribe.Word, error) {
	first := false
	b.once.Do(func() { first = true })
	if first {
		close(b.started)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return b.Engine.Transcribe(ctx, a)
}

// TestWorkerStoppedMidJob stops a worker (cancels its context) while its
// engine is busy: the job goes back at once without counting the attempt,
// and another worker completes it long before the ack wait.
func TestWorkerStoppedMidJob(t *testing.T) {
	en := offlineEngine(t)
	e := newEnv(t, envOptions{})
	const ackWait = time.Minute
	q := e.queue(t, testQueueConfig(ackWait, 3))
	be := &blockingEngine{Engine: en, started: make(chan struct{})}
	stopA := startWorker(t, fastWorker(q, e.transcriber(be)))
	rec := e.record(t, recSpec{file: testdata("call03.ogg")})
	if _, err := q.Enqueue(context.Background(), rec, SourceCompleted, time.Time{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-be.started:
	case <-time.After(time.Minute):
		t.Fatal("worker A never started the job")
	}
	stopA()
	if row := e.transcriptRow(t, rec.ID); row.Status != meta.TranscriptPending || row.Attempts != 0 {
		t.Fatalf("after stopping A: status %s attempts %d, want pending and 0", row.Status, row.Attempts)
	}
	start := time.Now()
	startWorker(t, fastWorker(q, e.transcriber(en)))
	row := e.waitStatus(t, rec.ID, meta.TranscriptCompleted, ackWait/2)
	t.Logf("completed %v after the handover", time.Since(start).Round(time.Millisecond))
	if row.Attempts != 1 {
		t.Errorf("attempts %d, want 1", row.Attempts)
	}
	waitStreamEmpty(t, q, 10*time.Second)
	if n := len(e.outbox(t, events.TranscriptCompleted, rec.ID)); n != 1 {
		t.Errorf("%d transcript.completed events", n)
	}
}

// TestRedeliveryIsIdempotent: a job delivered again after its transcript
// is complete (JetStream redelivery, a duplicate published outside the
// duplicate window, Enqueue again) changes nothing; duplicates delivered
// at the same time to two workers make one transcript.
func TestRedeliveryIsIdempotent(t *testing.T) {
	eachDB(t, func(t *testing.T, pg bool) {
		en := offlineEngine(t)
		e := newEnv(t, envOptions{postgres: pg})
		q := e.queue(t, testQueueConfig(30*time.Second, 3))
		ctx := context.Background()
		publishDup := func(rec meta.Recording, n int) {
			t.Helper()
			b, _ := json.Marshal(Job{Tenant: rec.TenantID, RecordingID: rec.ID, Source: "test", EnqueuedAt: time.Now()})
			msg := nats.NewMsg(q.Subject(rec.TenantID, rec.ID))
			msg.Data = b
			msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("dup-%s-%d", rec.ID, n)) // not deduplicated
			if _, err := e.js.PublishMsg(ctx, msg); err != nil {
				t.Fatal(err)
			}
		}

		// Two workers, two copies of one job published together.
		rec := e.record(t, recSpec{file: testdata("call05.ogg")})
		if _, err := ensureRow(ctx, e.db, rec); err != nil {
			t.Fatal(err)
		}
		publishDup(rec, 1)
		publishDup(rec, 2)
		startWorker(t, NewWorker(q, e.transcriber(en), WorkerConfig{ID: "w1", PollWait: 300 * time.Millisecond, Log: testLog()}))
		startWorker(t, NewWorker(q, e.transcriber(en), WorkerConfig{ID: "w2", PollWait: 300 * time.Millisecond, Log: testLog()}))
		first := e.waitStatus(t, rec.ID, meta.TranscriptCompleted, 2*time.Minute)
		waitStreamEmpty(t, q, time.Minute)

		// Again after completion: a redelivered copy and Enqueue.
		publishDup(rec, 3)
		if ok, err := q.Enqueue(ctx, rec, SourceCompleted, time.Time{}); err != nil || ok {
			t.Errorf("Enqueue of a transcribed recording = %v, %v; want false", ok, err)
		}
		waitStreamEmpty(t, q, time.Minute)

		last := e.transcriptRow(t, rec.ID)
		if last.Attempts != 1 || last.CipherSHA256 != first.CipherSHA256 || !last.CompletedAt.Equal(*first.CompletedAt) {
			t.Errorf("row changed by redelivery: attempts %d→%d, hash %s→%s", first.Attempts, last.Attempts, first.CipherSHA256, last.CipherSHA256)
		}
		if n := len(e.outbox(t, events.TranscriptCompleted, rec.ID)); n != 1 {
			t.Errorf("%d transcript.completed events, want 1", n)
		}
		var n int64
		e.db.Model(&meta.Transcript{}).Where("recording_id = ?", rec.ID).Count(&n)
		if n != 1 {
			t.Errorf("%d transcript rows", n)
		}
		// The stored object is the committed one.
		if err := e.store.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		sealed, err := os.ReadFile(filepath.Join(e.recordingDir(t, rec.ID), "transcript.age"))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(sealed)); got != last.CipherSHA256 {
			t.Errorf("stored object hash %s, row %s", got, last.CipherSHA256)
		}
	})
}
