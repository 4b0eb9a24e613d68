package job

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
)

// Names on NATS (SPEC section 7). The job subjects must stay outside
// custodian.>, which belongs to CUSTODIAN_EVENTS.
const (
	// StreamName is the work-queue stream of transcription jobs.
	StreamName = "CUSTODIAN_JOBS"
	// SubjectPrefix starts every job subject:
	// custodian_jobs.transcribe.{tenant}.{recording_id}.
	SubjectPrefix = "custodian_jobs.transcribe"
	// ConsumerName is the durable consumer every worker pulls from.
	ConsumerName = "transcribe-workers"
)

// Sources of a job (Job.Source).
const (
	SourceCompleted = "recording.completed"
	SourceRecovered = "recording.recovered"
	SourceSweep     = "sweep"
)

// Job is the message on CUSTODIAN_JOBS: which recording to transcribe.
// It holds ids and times only; everything else is read from the database
// when the job runs.
type Job struct {
	Tenant        string    `json:"tenant"`
	RecordingID   string    `json:"recording_id"`
	SessionID     string    `json:"session_id,omitempty"`
	ParticipantID string    `json:"participant_id,omitempty"`
	Source        string    `json:"source"`
	EnqueuedAt    time.Time `json:"enqueued_at"`
	// EventTime is the time of the recording.completed (or recovered)
	// event, for the completed → transcript latency metric.
	EventTime time.Time `json:"event_time,omitzero"`
}

// ErrBadJob is a job message that cannot be a job (not JSON, missing or
// invalid ids). Such messages are terminated, never retried.
var ErrBadJob = errors.New("job: malformed job message")

func parseJob(b []byte) (Job, error) {
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return Job{}, fmt.Errorf("%w: %v", ErrBadJob, err)
	}
	if !meta.ValidID(j.Tenant) || !meta.ValidID(j.RecordingID) {
		return Job{}, fmt.Errorf("%w: tenant %q recording %q", ErrBadJob, j.Tenant, j.RecordingID)
	}
	return j, nil
}

// Config names the stream and consumer and sets delivery. The zero value
// means the production names and config.Default's delivery settings.
type Config struct {
	// Stream is the work-queue stream (default StreamName). Tests on a
	// shared NATS server use their own.
	Stream string
	// Subject is the subject prefix (default SubjectPrefix); it must not
	// overlap another stream's subjects.
	Subject string
	// Consumer is the durable worker consumer (default ConsumerName).
	Consumer string
	// Replicas of the stream on a cluster (config nats.replicas; 0: 1).
	Replicas int
	// AckWait is how long a delivered job may go without an ack or an
	// in-progress heartbeat before it is redelivered
	// (transcription.ack_wait, default 10 min).
	AckWait time.Duration
	// MaxDeliver is how many attempts of a job may fail before its
	// transcript is failed (transcription.max_deliver, default 5).
	MaxDeliver int
	// Duplicates is the stream's duplicate window for job ids (default
	// 2 min).
	Duplicates time.Duration
}

func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = StreamName
	}
	if c.Subject == "" {
		c.Subject = SubjectPrefix
	}
	if c.Consumer == "" {
		c.Consumer = ConsumerName
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.AckWait <= 0 {
		c.AckWait = 10 * time.Minute
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 5
	}
	if c.Duplicates <= 0 {
		c.Duplicates = 2 * time.Minute
	}
	return c
}

// Queue is the CUSTODIAN_JOBS work queue on one JetStream and database.
// It is safe for concurrent use.
type Queue struct {
	js      jetstream.JetStream
	db      *gorm.DB
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
}

// NewQueue returns the queue. Call Ensure before use.
func NewQueue(js jetstream.JetStream, db *gorm.DB, cfg Config, log *slog.Logger, m *Metrics) *Queue {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics()
	}
	return &Queue{js: js, db: db, cfg: cfg.withDefaults(), log: log, metrics: m, now: time.Now}
}

// Config returns the queue's configuration with defaults applied.
func (q *Queue) Config() Config { return q.cfg }

// Ensure creates the stream (work-queue retention, file storage) and the
// durable worker consumer if they are absent, and brings an existing
// consumer's ack wait to the configured value.
//
// The delivery limit is Config.MaxDeliver attempts, counted in the
// transcript row (meta.Transcript.Attempts) by the worker that starts
// one; the consumer itself redelivers without limit. JetStream's own
// MaxDeliver would also count deliveries that could not start (the
// database unreachable, the recording held by another worker), and a job
// that reaches it stays in a work-queue stream undelivered for ever; here
// such deliveries are retried with backoff, a failing attempt is retried
// until MaxDeliver attempts have failed, and a delivery that finds
// MaxDeliver attempts started and none finished (their workers died)
// records the failure.
func (q *Queue) Ensure(ctx context.Context) error {
	want := jetstream.StreamConfig{
		Name:        q.cfg.Stream,
		Description: "Custodian transcription jobs (work queue)",
		Subjects:    []string{q.cfg.Subject + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		Replicas:    q.cfg.Replicas,
		Duplicates:  q.cfg.Duplicates,
	}
	st, err := q.js.Stream(ctx, q.cfg.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		st, err = q.js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			st, err = q.js.Stream(ctx, q.cfg.Stream)
		}
		if err != nil {
			return fmt.Errorf("job: create stream %s: %w", q.cfg.Stream, err)
		}
	case err != nil:
		return fmt.Errorf("job: look up stream %s: %w", q.cfg.Stream, err)
	default:
		cfg := st.CachedInfo().Config
		if cfg.Retention != jetstream.WorkQueuePolicy {
			return fmt.Errorf("job: stream %s exists with %v retention; it must be a work queue", q.cfg.Stream, cfg.Retention)
		}
		if cfg.Replicas != q.cfg.Replicas || cfg.Duplicates < q.cfg.Duplicates {
			cfg.Replicas = q.cfg.Replicas
			cfg.Duplicates = max(cfg.Duplicates, q.cfg.Duplicates)
			if _, err := q.js.UpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("job: update stream %s: %w", q.cfg.Stream, err)
			}
		}
	}
	_, err = q.js.CreateOrUpdateConsumer(ctx, q.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       q.cfg.Consumer,
		Description:   "Custodian transcription workers",
		FilterSubject: q.cfg.Subject + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("job: create consumer %s on %s: %w", q.cfg.Consumer, q.cfg.Stream, err)
	}
	return nil
}

// Subject returns the job subject of a recording.
func (q *Queue) Subject(tenant, recordingID string) string {
	return q.cfg.Subject + "." + subjectToken(tenant) + "." + subjectToken(recordingID)
}

// subjectToken returns s when it is a safe NATS subject token (ids from
// meta.NewID are), otherwise a hash of it.
func subjectToken(s string) string {
	ok := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "h" + hex.EncodeToString(sum[:16])
}

// msgID is the Nats-Msg-Id of a recording's job: JetStream drops a second
// publish within the duplicate window.
func msgID(recordingID string) string { return "transcribe:" + recordingID }

// Enqueue makes sure a recording that should be transcribed has a
// transcript row and a job: it creates the row (status pending) if there is
// none and publishes the job. It returns false without publishing when the
// recording is not to be transcribed (Transcribe false, not complete or
// recovered, deleted) or its transcript is already final (completed,
// failed, deleted). Calling it twice is harmless: the row is created once,
// a second job within the duplicate window is dropped by JetStream, and a
// later one finds the row final or the work running.
func (q *Queue) Enqueue(ctx context.Context, rec meta.Recording, source string, eventTime time.Time) (bool, error) {
	if !Transcribable(rec) {
		return false, nil
	}
	row, err := ensureRow(ctx, q.db, rec)
	if err != nil {
		return false, err
	}
	if final(row.Status) {
		return false, nil
	}
	if err := q.publish(ctx, rec, source, eventTime); err != nil {
		return false, err
	}
	return true, nil
}

func (q *Queue) publish(ctx context.Context, rec meta.Recording, source string, eventTime time.Time) error {
	j := Job{
		Tenant: rec.TenantID, RecordingID: rec.ID, SessionID: rec.SessionID, ParticipantID: rec.ParticipantID,
		Source: source, EnqueuedAt: q.now().UTC(), EventTime: eventTime,
	}
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("job: encode job: %w", err)
	}
	msg := nats.NewMsg(q.Subject(rec.TenantID, rec.ID))
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, msgID(rec.ID))
	ack, err := q.js.PublishMsg(ctx, msg)
	if err != nil {
		return fmt.Errorf("job: publish job for recording %s: %w", rec.ID, err)
	}
	if !ack.Duplicate {
		q.metrics.enqueued.Inc()
		q.log.InfoContext(ctx, "transcription job queued", "recording_id", rec.ID, "tenant", rec.TenantID, "source", source)
	}
	return nil
}

// queued reports whether a job message for the recording is in the stream
// (waiting, running or waiting for a retry).
func (q *Queue) queued(ctx context.Context, tenant, recordingID string) (bool, error) {
	st, err := q.js.Stream(ctx, q.cfg.Stream)
	if err != nil {
		return false, fmt.Errorf("job: look up stream %s: %w", q.cfg.Stream, err)
	}
	_, err = st.GetLastMsgForSubject(ctx, q.Subject(tenant, recordingID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("job: look up job of recording %s: %w", recordingID, err)
	}
	return true, nil
}

// Pending reports the jobs waiting for a worker (not yet delivered) and
// those delivered but not yet acknowledged (running, or waiting for a
// retry).
func (q *Queue) Pending(ctx context.Context) (waiting, unacked int, err error) {
	c, err := q.js.Consumer(ctx, q.cfg.Stream, q.cfg.Consumer)
	if err != nil {
		return 0, 0, fmt.Errorf("job: look up consumer %s: %w", q.cfg.Consumer, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("job: consumer info: %w", err)
	}
	return int(info.NumPending), info.NumAckPending, nil
}

// Transcribable reports whether a recording should get a transcript: its
// policy said transcribe, it finished (complete, or recovered after a
// crash) and it has not been deleted.
func Transcribable(rec meta.Recording) bool {
	return rec.Transcribe && rec.DeletedAt == nil && rec.Status != meta.StatusDeleting &&
		(rec.Status == meta.StatusComplete || rec.Status == meta.StatusRecovered)
}

func final(status string) bool {
	switch status {
	case meta.TranscriptCompleted, meta.TranscriptFailed, meta.TranscriptDeleted:
		return true
	}
	return false
}

// ensureRow creates the recording's transcript row (pending) unless it
// exists, and returns the row.
func ensureRow(ctx context.Context, db *gorm.DB, rec meta.Recording) (meta.Transcript, error) {
	row := meta.Transcript{
		RecordingID:   rec.ID,
		TenantID:      rec.TenantID,
		SessionID:     rec.SessionID,
		ParticipantID: rec.ParticipantID,
		Department:    rec.Department,
		Status:        meta.TranscriptPending,
		RetainUntil:   rec.RetainUntil,
		ObjectKey:     storage.ObjectKey(rec.TenantID, rec.ID, ObjectTranscript),
	}
	db = db.WithContext(ctx)
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
		return meta.Transcript{}, fmt.Errorf("job: create transcript row of %s: %w", rec.ID, err)
	}
	var got meta.Transcript
	if err := db.Where("recording_id = ?", rec.ID).Take(&got).Error; err != nil {
		return meta.Transcript{}, fmt.Errorf("job: load transcript row of %s: %w", rec.ID, err)
	}
	if got.TenantID != rec.TenantID {
		return meta.Transcript{}, fmt.Errorf("job: transcript row of %s belongs to another tenant", rec.ID)
	}
	return got, nil
}

// loadRecording reads a recording row of a tenant; gorm.ErrRecordNotFound
// when there is none.
func loadRecording(ctx context.Context, db *gorm.DB, tenant, id string) (meta.Recording, error) {
	var rec meta.Recording
	err := db.WithContext(ctx).Where("id = ? AND tenant_id = ?", id, tenant).Take(&rec).Error
	if err != nil {
		return meta.Recording{}, fmt.Errorf("job: load recording %s: %w", id, err)
	}
	return rec, nil
}

// oneLine shortens an error text for a database column.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", "; ")
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}
