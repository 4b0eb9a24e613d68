package job

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/policy/retention"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/redact"
	"github.com/custodian/custodian/transcribe/render"
)

// WorkerConfig configures a Worker. The zero value runs one job at a time
// with the default timings.
type WorkerConfig struct {
	// Workers is how many jobs run at once (transcription.workers;
	// default 1). The offline engine should have as many decoders.
	Workers int
	// ID names this process in leases and logs (default: random).
	ID string
	// Heartbeat is how often a running job tells JetStream it is in
	// progress and renews its lease (default AckWait/4).
	Heartbeat time.Duration
	// BackoffBase and BackoffMax bound the delay before a failed attempt
	// is retried: BackoffBase·2^(attempt-1), capped at BackoffMax,
	// jittered to [d/2, d] (defaults 10 s and 5 min).
	BackoffBase, BackoffMax time.Duration
	// PollWait is how long one fetch waits for a job (default 5 s).
	PollWait time.Duration
	// Flush, if set, is called after the transcript objects are sealed
	// and before the row is committed: a worker whose object store spool
	// is not the API's (custodian worker transcribe) uploads them first,
	// so a completed row always has readable objects.
	Flush func(ctx context.Context) error
	// Log receives one line per job state change (ids, counts, reasons;
	// never transcript text). Default: discarded.
	Log *slog.Logger
	// Engines gives each job the engine its recording's policy names
	// (meta.Recording.TranscriptionEngine; empty: Engines.Default()).
	// Default: the Transcriber's Engine alone, so a job naming another
	// engine fails as not configured.
	Engines EngineSource
}

// Worker pulls jobs from the queue and runs them with a Transcriber.
type Worker struct {
	q     *Queue
	t     *Transcriber
	db    *gorm.DB
	store ObjectStore
	cfg   WorkerConfig
	log   *slog.Logger
	m     *Metrics
	ttl   time.Duration // lease time to live
}

// NewWorker returns a worker for q that transcribes with t (t.DB and
// t.Store are also where results go).
func NewWorker(q *Queue, t *Transcriber, cfg WorkerConfig) *Worker {
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.ID == "" {
		cfg.ID = randomID()
	}
	ack := q.cfg.AckWait
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = ack / 4
	}
	cfg.Heartbeat = max(min(cfg.Heartbeat, ack/2), 10*time.Millisecond)
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 10 * time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 5 * time.Minute
	}
	cfg.BackoffMax = max(cfg.BackoffMax, cfg.BackoffBase)
	if cfg.PollWait <= 0 {
		cfg.PollWait = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if t.Log == nil {
		t.Log = cfg.Log
	}
	if cfg.Engines == nil {
		cfg.Engines = single{Engine{Engine: t.Engine, Language: t.Language}}
	}
	return &Worker{
		q: q, t: t, db: t.DB, store: t.Store, cfg: cfg, log: cfg.Log, m: q.metrics,
		// A dead worker's lease expires before JetStream redelivers its
		// job (ack wait after the last heartbeat), so the next worker
		// does not have to wait for it.
		ttl: max(ack/2, 2*cfg.Heartbeat),
	}
}

func randomID() string {
	var b [6]byte
	rand.Read(b[:])
	return "w-" + hex.EncodeToString(b[:])
}

// Run pulls and runs jobs with cfg.Workers goroutines until ctx ends. A
// job running when ctx ends is interrupted between chunks and handed back
// to the queue at once, without counting as an attempt.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range w.cfg.Workers {
		wg.Go(func() { w.loop(ctx, i) })
	}
	wg.Wait()
	return nil
}

func (w *Worker) loop(ctx context.Context, slot int) {
	log := w.log.With("worker", w.cfg.ID, "slot", slot)
	var cons jetstream.Consumer
	failures := 0
	for ctx.Err() == nil {
		if cons == nil {
			c, err := w.q.js.Consumer(ctx, w.q.cfg.Stream, w.q.cfg.Consumer)
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
				err = w.q.Ensure(ctx)
			}
			if err != nil {
				failures++
				log.WarnContext(ctx, "transcription queue unavailable, retrying", "err", err)
				sleep(ctx, backoff(failures, time.Second, 30*time.Second))
				continue
			}
			if c == nil {
				continue // look it up again after Ensure
			}
			cons = c
		}
		fctx, cancel := context.WithTimeout(ctx, w.cfg.PollWait)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		switch {
		case err == nil:
			failures = 0
			w.handle(ctx, msg)
		case ctx.Err() != nil:
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			failures = 0
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			cons = nil
		default:
			failures++
			log.WarnContext(ctx, "fetching a transcription job failed, retrying", "err", err)
			sleep(ctx, backoff(failures, 100*time.Millisecond, 10*time.Second))
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func jitter(n time.Duration) time.Duration { return mrand.N(n) }

// attempt is one delivery of a job being worked on.
type attempt struct {
	job      Job
	msg      jetstream.Msg
	rec      meta.Recording
	lease    string // lease name
	owner    string // lease owner: unique per attempt
	attempts int    // this attempt's number (row Attempts)
	engine   string // the engine's name (the policy's, or the default)
	language string // the engine's language, once it is built
	start    time.Time
	log      *slog.Logger
}

// handle runs one delivered job to one of: acked (done, or nothing to
// do), naked with a delay (retry), terminated (failed), or left for
// redelivery (lease lost).
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	a := &attempt{msg: msg, start: time.Now()}
	j, err := parseJob(msg.Data())
	if err != nil {
		w.log.WarnContext(ctx, "dropping a malformed transcription job", "subject", msg.Subject(), "err", err)
		_ = msg.TermWithReason("malformed job")
		return
	}
	a.job = j
	delivery := uint64(0)
	if md, err := msg.Metadata(); err == nil {
		delivery = md.NumDelivered
	}
	a.log = w.log.With("recording_id", j.RecordingID, "tenant", j.Tenant, "delivery", delivery, "worker", w.cfg.ID)

	rec, err := loadRecording(ctx, w.db, j.Tenant, j.RecordingID)
	if errors.Is(err, gorm.ErrRecordNotFound) {
		a.log.WarnContext(ctx, "transcription job for an unknown recording dropped")
		_ = msg.TermWithReason("unknown recording")
		return
	}
	if err != nil {
		w.retryUnclaimed(ctx, a, err)
		return
	}
	a.rec = rec
	if !Transcribable(rec) {
		w.notTranscribable(ctx, a)
		return
	}
	row, err := ensureRow(ctx, w.db, rec)
	if err != nil {
		w.retryUnclaimed(ctx, a, err)
		return
	}
	if final(row.Status) {
		a.log.InfoContext(ctx, "transcription job already done", "status", row.Status)
		w.ack(ctx, a)
		return
	}

	a.lease = leaseName(rec.ID)
	a.owner = w.cfg.ID + "/" + randomID()
	ok, err := w.acquire(ctx, a)
	if err != nil {
		if ctx.Err() != nil {
			_ = msg.Nak()
			return
		}
		w.retryUnclaimed(ctx, a, err)
		return
	}
	if !ok {
		// The recording is finished, or another worker holds it and
		// keeps renewing its lease: this delivery is a duplicate.
		a.log.InfoContext(ctx, "transcription job is running on another worker or done; dropping the duplicate")
		w.ack(ctx, a)
		return
	}
	w.run(ctx, a)
}

// retryUnclaimed naks a job that failed before it was claimed (database
// or NATS trouble); such deliveries do not count as attempts.
func (w *Worker) retryUnclaimed(ctx context.Context, a *attempt, err error) {
	d := backoff(1, w.cfg.BackoffBase, w.cfg.BackoffMax)
	a.log.WarnContext(ctx, "transcription job could not start, retrying", "err", err, "retry_in", d)
	_ = a.msg.NakWithDelay(d)
}

// notTranscribable ends a job whose recording no longer qualifies.
func (w *Worker) notTranscribable(ctx context.Context, a *attempt) {
	rec := a.rec
	switch {
	case !rec.Transcribe:
		a.log.InfoContext(ctx, "recording is not to be transcribed; job dropped")
		w.ack(ctx, a)
	case rec.DeletedAt != nil || rec.Status == meta.StatusDeleted || rec.Status == meta.StatusDeleting:
		w.fail(ctx, a, ReasonRecordingDeleted, errors.New("the recording was deleted before it was transcribed"))
	case rec.Status == meta.StatusRecording || rec.Status == meta.StatusFinalizing:
		// Cannot happen through recording.completed; a hand-made job.
		w.retryUnclaimed(ctx, a, fmt.Errorf("recording %s is still %s", rec.ID, rec.Status))
	default:
		w.fail(ctx, a, ReasonRecordingIncomplete, fmt.Errorf("the recording's status is %s", rec.Status))
	}
}

// engineName is the attempt's engine, or, for a job that fails before
// one was chosen, the one its recording would get.
func (a *attempt) engineName(w *Worker) string {
	return cmp.Or(a.engine, a.rec.TranscriptionEngine, w.cfg.Engines.Default())
}

func leaseName(recordingID string) string { return "transcribe/" + recordingID }

// acquire takes the recording's lease. While another worker holds it, it
// keeps the delivery alive and waits up to the ack wait for the lease to
// expire (its holder died) or the transcript to become final. It reports
// false when the holder is alive throughout or the transcript is final.
func (w *Worker) acquire(ctx context.Context, a *attempt) (bool, error) {
	deadline := time.Now().Add(w.q.cfg.AckWait)
	lastBeat := time.Now()
	poll := min(w.cfg.Heartbeat, time.Second)
	for {
		ok, err := meta.TryLease(ctx, w.db, a.lease, a.owner, w.ttl)
		if err != nil || ok {
			return ok, err
		}
		var row meta.Transcript
		if err := w.db.WithContext(ctx).Select("status").Where("recording_id = ?", a.rec.ID).Take(&row).Error; err != nil {
			return false, fmt.Errorf("job: load transcript row: %w", err)
		}
		if final(row.Status) || time.Now().After(deadline) {
			return false, nil
		}
		if time.Since(lastBeat) >= w.cfg.Heartbeat {
			_ = a.msg.InProgress()
			lastBeat = time.Now()
		}
		sleep(ctx, poll)
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
}

// run works on a job whose lease is held.
func (w *Worker) run(ctx context.Context, a *attempt) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := meta.ReleaseLease(rctx, w.db, a.lease, a.owner); err != nil {
			a.log.WarnContext(ctx, "releasing the transcription lease failed (it expires by itself)", "err", err)
		}
	}()
	// Read the row again under the lease: another worker may have run
	// attempts while this delivery waited for it.
	var row meta.Transcript
	if err := w.db.WithContext(ctx).Where("recording_id = ?", a.rec.ID).Take(&row).Error; err != nil {
		w.retryUnclaimed(ctx, a, err)
		return
	}
	if final(row.Status) {
		w.ack(ctx, a)
		return
	}
	// The engine the recording's policy names (or the default); an
	// engine that cannot be had here fails this attempt like an engine
	// error, after it is counted.
	a.engine = a.engineName(w)
	en, engineErr := w.cfg.Engines.Engine(ctx, a.engine)
	a.language = en.Language
	now := time.Now().UTC()
	res := w.db.WithContext(ctx).Model(&meta.Transcript{}).
		Where("recording_id = ? AND status IN ?", a.rec.ID, []string{meta.TranscriptPending, meta.TranscriptRunning}).
		Updates(map[string]any{
			"status": meta.TranscriptRunning, "attempts": gorm.Expr("attempts + 1"), "started_at": now,
			"engine": a.engine, "language": a.language, "updated_at": now,
		})
	if res.Error != nil {
		w.retryUnclaimed(ctx, a, res.Error)
		return
	}
	if res.RowsAffected == 0 {
		w.ack(ctx, a) // became final meanwhile
		return
	}
	a.attempts = row.Attempts + 1
	a.log = a.log.With("attempt", a.attempts)
	if a.attempts > w.q.cfg.MaxDeliver {
		err := fmt.Errorf("attempt %d did not finish (the worker stopped or sent no heartbeat within the ack wait %v)",
			a.attempts-1, w.q.cfg.AckWait)
		if row.FailureReason != "" {
			err = fmt.Errorf("%w; earlier: %s", err, row.FailureReason)
		}
		a.attempts-- // this delivery only records the failure
		w.fail(ctx, a, ReasonWorkerLost, err)
		return
	}

	w.m.running.Inc()
	defer w.m.running.Dec()
	a.log.InfoContext(ctx, "transcription started", "source", a.job.Source)

	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	beatDone := make(chan struct{})
	var beats sync.WaitGroup
	beats.Go(func() { w.heartbeat(jobCtx, a, cancel, beatDone) })
	stopBeats := func() {
		select {
		case <-beatDone:
		default:
			close(beatDone)
		}
		beats.Wait()
	}

	var (
		tr  transcribe.Transcript
		st  Stats
		err = engineErr
	)
	if err == nil {
		t := *w.t
		t.Engine, t.Language = en.Engine, en.Language
		tr, st, err = t.Transcribe(jobCtx, a.rec)
	}
	if err == nil {
		err = w.save(jobCtx, a, tr, st)
	}
	stopBeats()
	switch {
	case err == nil:
		w.m.duration.WithLabelValues("completed").Observe(time.Since(a.start).Seconds())
		w.ack(ctx, a)
	case errors.Is(context.Cause(jobCtx), errLeaseLost) || errors.Is(err, errLeaseLost):
		// Another worker took over: leave the row and the delivery alone.
		a.log.WarnContext(ctx, "transcription abandoned: another worker took the recording over", "err", err)
		w.m.duration.WithLabelValues("abandoned").Observe(time.Since(a.start).Seconds())
	case ctx.Err() != nil:
		w.interrupt(ctx, a)
	default:
		reason, retry := Classify(err)
		if retry && a.attempts < w.q.cfg.MaxDeliver {
			w.retryLater(ctx, a, reason, err)
			return
		}
		w.fail(ctx, a, reason, err)
	}
}

// heartbeat keeps a running job's delivery and lease alive until done is
// closed; it cancels the job when the lease is lost.
func (w *Worker) heartbeat(ctx context.Context, a *attempt, cancel context.CancelCauseFunc, done <-chan struct{}) {
	t := time.NewTicker(w.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.msg.InProgress(); err != nil {
			a.log.DebugContext(ctx, "in-progress heartbeat failed", "err", err)
		}
		err := meta.RenewLease(ctx, w.db, a.lease, a.owner, w.ttl)
		if errors.Is(err, meta.ErrLeaseLost) {
			cancel(errLeaseLost)
			return
		}
		if err != nil {
			a.log.WarnContext(ctx, "renewing the transcription lease failed", "err", err)
			continue
		}
		// The row's updated_at shows the sweeper the job is alive.
		w.db.WithContext(ctx).Model(&meta.Transcript{}).
			Where("recording_id = ? AND status = ?", a.rec.ID, meta.TranscriptRunning).
			Update("updated_at", time.Now().UTC())
	}
}

func (w *Worker) ack(ctx context.Context, a *attempt) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.msg.DoubleAck(actx); err != nil {
		// The job is redelivered and then finds its transcript final.
		a.log.WarnContext(ctx, "acknowledging a transcription job failed", "err", err)
	}
}

// withLease runs fn in a transaction that first checks (and extends) the
// lease, so nothing is written by a worker that lost the recording.
func (w *Worker) withLease(ctx context.Context, a *attempt, fn func(tx *gorm.DB) error) error {
	return w.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&meta.Lease{}).Where("name = ? AND owner = ?", a.lease, a.owner).
			Update("expires_at", time.Now().UTC().Truncate(time.Microsecond).Add(w.ttl))
		if res.Error != nil {
			return fmt.Errorf("job: check lease: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return errLeaseLost
		}
		return fn(tx)
	})
}

// interrupt hands a job back after the worker was asked to stop: the row
// returns to pending without counting the attempt, and the job is naked
// for immediate redelivery to another worker.
func (w *Worker) interrupt(ctx context.Context, a *attempt) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := w.withLease(cctx, a, func(tx *gorm.DB) error {
		return tx.Model(&meta.Transcript{}).Where("recording_id = ? AND status = ?", a.rec.ID, meta.TranscriptRunning).
			Updates(map[string]any{"status": meta.TranscriptPending, "attempts": gorm.Expr("attempts - 1"), "updated_at": time.Now().UTC()}).Error
	})
	if err != nil {
		a.log.WarnContext(cctx, "returning an interrupted transcription job failed", "err", err)
	}
	w.m.duration.WithLabelValues("interrupted").Observe(time.Since(a.start).Seconds())
	_ = a.msg.Nak()
	a.log.InfoContext(cctx, "transcription interrupted by shutdown; job handed back")
}

// retryLater records a failed attempt and naks the job with a backoff.
func (w *Worker) retryLater(ctx context.Context, a *attempt, reason string, cause error) {
	delay := backoff(a.attempts, w.cfg.BackoffBase, w.cfg.BackoffMax)
	text := oneLine(fmt.Sprintf("attempt %d of %d failed (%s): %v", a.attempts, w.q.cfg.MaxDeliver, reason, cause))
	err := w.withLease(ctx, a, func(tx *gorm.DB) error {
		return tx.Model(&meta.Transcript{}).Where("recording_id = ? AND status = ?", a.rec.ID, meta.TranscriptRunning).
			Updates(map[string]any{"status": meta.TranscriptPending, "failure_reason": text, "updated_at": time.Now().UTC()}).Error
	})
	if err != nil {
		a.log.WarnContext(ctx, "recording a failed transcription attempt failed", "err", err)
	}
	w.m.retried.WithLabelValues(reason).Inc()
	w.m.duration.WithLabelValues("retry").Observe(time.Since(a.start).Seconds())
	a.log.WarnContext(ctx, "transcription attempt failed; retrying", "reason", reason, "err", cause, "retry_in", delay)
	_ = a.msg.NakWithDelay(delay)
}

// fail marks the transcript failed, emits transcript.failed in the same
// transaction and terminates the job. With a lease held the update checks
// it; before a claim it only touches a row that is not final.
func (w *Worker) fail(ctx context.Context, a *attempt, reason string, cause error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rec := a.rec
	text := oneLine(cause.Error())
	update := func(tx *gorm.DB) error {
		now := time.Now().UTC()
		res := tx.Model(&meta.Transcript{}).
			Where("recording_id = ? AND status IN ?", rec.ID, []string{meta.TranscriptPending, meta.TranscriptRunning}).
			Updates(map[string]any{
				"status": meta.TranscriptFailed, "failure_reason": text, "attempts": a.attempts,
				"engine": a.engineName(w), "updated_at": now,
			})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return nil // final already (deleted by retention, for example)
		}
		return events.Emit(tx, events.Event{
			Tenant: rec.TenantID, Kind: events.TranscriptFailed, Subject: rec.ID,
			Data: events.TranscriptData{
				RecordingID: rec.ID, SessionID: rec.SessionID, ParticipantID: rec.ParticipantID,
				Engine: a.engineName(w), Language: a.language, Attempts: a.attempts,
				RetainUntil: rec.RetainUntil, Reason: reason,
			},
		})
	}
	var err error
	if a.owner != "" && a.attempts > 0 {
		err = w.withLease(cctx, a, update)
	} else {
		if _, err = ensureRow(cctx, w.db, rec); err == nil {
			err = w.db.WithContext(cctx).Transaction(update)
		}
	}
	if err != nil {
		// Not recorded: let the job come back and try again.
		a.log.ErrorContext(cctx, "recording a failed transcript failed; job will be redelivered", "reason", reason, "err", err)
		_ = a.msg.NakWithDelay(backoff(1, w.cfg.BackoffBase, w.cfg.BackoffMax))
		return
	}
	w.m.failed.WithLabelValues(reason).Inc()
	w.m.duration.WithLabelValues("failed").Observe(time.Since(a.start).Seconds())
	a.log.ErrorContext(cctx, "transcription failed", "reason", reason, "attempts", a.attempts, "err", cause)
	_ = a.msg.TermWithReason(reason)
}

// storeError marks a failure to store the transcript objects.
type storeError struct{ err error }

func (e *storeError) Error() string { return "job: store transcript: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// save seals the transcript objects and commits the row and the
// transcript.completed event in one transaction, under the lease.
func (w *Worker) save(ctx context.Context, a *attempt, tr transcribe.Transcript, st Stats) error {
	rec := a.rec
	stored := tr
	if rec.RedactPII {
		stored = redactedCopy(tr)
	}
	opts := storage.PutOptions{LegalHold: w.held(ctx, rec)}
	if rec.RetainUntil != nil {
		opts.RetainUntil = *rec.RetainUntil
	}
	// Renew just before writing, so a worker that stalled past its
	// lease never replaces the object another worker committed.
	if err := meta.RenewLease(ctx, w.db, a.lease, a.owner, w.ttl); err != nil {
		if errors.Is(err, meta.ErrLeaseLost) {
			return errLeaseLost
		}
		return err
	}
	body, err := render.JSON(stored)
	if err != nil {
		return err
	}
	info, err := w.store.PutObject(ctx, rec.TenantID, rec.ID, ObjectTranscript, body, opts)
	clear(body)
	if err != nil {
		return &storeError{err}
	}
	unredactedKey, unredactedSHA := "", ""
	if rec.RedactPII && rec.KeepUnredacted {
		body, err := render.JSON(tr)
		if err != nil {
			return err
		}
		uinfo, err := w.store.PutObject(ctx, rec.TenantID, rec.ID, ObjectUnredacted, body, opts)
		clear(body)
		if err != nil {
			return &storeError{err}
		}
		unredactedKey, unredactedSHA = uinfo.Key, uinfo.CipherSHA256
	}
	if w.cfg.Flush != nil {
		if err := w.cfg.Flush(ctx); err != nil {
			return &storeError{fmt.Errorf("upload: %w", err)}
		}
	}
	words := wordCount(stored)
	now := time.Now().UTC()
	err = w.withLease(ctx, a, func(tx *gorm.DB) error {
		res := tx.Model(&meta.Transcript{}).Where("recording_id = ? AND status = ?", rec.ID, meta.TranscriptRunning).
			Updates(map[string]any{
				"status": meta.TranscriptCompleted, "engine": stored.Engine, "language": stored.Language,
				"failure_reason": "", "object_key": info.Key, "cipher_sha256": info.CipherSHA256,
				"unredacted_key": unredactedKey, "unredacted_sha256": unredactedSHA, "redacted": rec.RedactPII, "word_count": words,
				"duration_ms": st.AudioMS, "retain_until": rec.RetainUntil, "completed_at": now, "updated_at": now,
			})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return fmt.Errorf("job: transcript row of %s changed while it was transcribed", rec.ID)
		}
		return events.Emit(tx, events.Event{
			Tenant: rec.TenantID, Kind: events.TranscriptCompleted, Subject: rec.ID,
			Data: events.TranscriptData{
				RecordingID: rec.ID, SessionID: rec.SessionID, ParticipantID: rec.ParticipantID,
				Engine: stored.Engine, Language: stored.Language, WordCount: words, DurationMS: st.AudioMS,
				Redacted: rec.RedactPII, Redactions: len(stored.Redactions), CipherSHA256: info.CipherSHA256,
				RetainUntil: rec.RetainUntil, Attempts: a.attempts,
			},
		})
	})
	if err != nil {
		if errors.Is(err, errLeaseLost) {
			return err
		}
		return fmt.Errorf("job: commit transcript of %s: %w", rec.ID, err)
	}
	w.m.completed.Inc()
	w.m.audioSeconds.Add(float64(st.AudioMS) / 1000)
	w.m.speechSeconds.Add(float64(st.SpeechMS) / 1000)
	if !a.job.EventTime.IsZero() {
		w.m.latency.Observe(now.Sub(a.job.EventTime).Seconds())
	}
	a.log.InfoContext(ctx, "transcript completed", "words", words, "redactions", len(stored.Redactions),
		"audio_ms", st.AudioMS, "speech_ms", st.SpeechMS, "chunks", st.Chunks, "elapsed", time.Since(a.start).Round(time.Millisecond))
	return nil
}

// held reports whether an active legal hold covers the recording's session
// or participant, so the new objects get the S3 Object Lock legal hold too.
// A lookup error counts as held (a spurious hold only delays deletion).
func (w *Worker) held(ctx context.Context, rec meta.Recording) bool {
	held, err := retention.HoldForWrite(ctx, w.db, rec.TenantID, rec.SessionID, rec.ParticipantID)
	if err != nil {
		w.log.WarnContext(ctx, "read legal holds; treating the transcript as held", "recording_id", rec.ID, "err", err)
	}
	return held
}

// redactedCopy returns tr with PII redacted, leaving tr as it was.
func redactedCopy(tr transcribe.Transcript) transcribe.Transcript {
	c := tr
	c.Segments = make([]transcribe.Segment, len(tr.Segments))
	for i, s := range tr.Segments {
		s.Words = slices.Clone(s.Words)
		c.Segments[i] = s
	}
	c.Redactions = slices.Clone(tr.Redactions)
	redact.Transcript(&c)
	return c
}

func wordCount(t transcribe.Transcript) int {
	n := 0
	for _, s := range t.Segments {
		n += len(s.Words)
	}
	return n
}
