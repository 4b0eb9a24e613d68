package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage/meta"
)

// DispatchConfig names the event stream and the dispatcher's durable
// consumer. The zero value is production's.
type DispatchConfig struct {
	// EventsStream is the stream of recording events (default
	// events.StreamName, CUSTODIAN_EVENTS).
	EventsStream string
	// Consumer is the dispatcher's durable consumer (default
	// "transcribe-dispatch").
	Consumer string
	// FilterSubject selects the recording events (default
	// custodian.*.recording.*; one subject, so that nats-server 2.9, which
	// has no multi-filter consumers, works). Events other than
	// recording.completed and recording.recovered are acknowledged and
	// ignored.
	FilterSubject string
	// PollWait is how long one fetch waits (default 5 s).
	PollWait time.Duration
}

// DispatchConsumer is the default durable consumer name of the dispatcher.
const DispatchConsumer = "transcribe-dispatch"

func (c DispatchConfig) withDefaults() DispatchConfig {
	if c.EventsStream == "" {
		c.EventsStream = events.StreamName
	}
	if c.Consumer == "" {
		c.Consumer = DispatchConsumer
	}
	if c.FilterSubject == "" {
		c.FilterSubject = events.SubjectPrefix + ".*.recording.*"
	}
	if c.PollWait <= 0 {
		c.PollWait = 5 * time.Second
	}
	return c
}

// Dispatcher turns recording.completed and recording.recovered events into
// jobs. Its durable consumer on the event stream is shared by every
// instance, so each event is handled once (at least once: a redelivered
// event enqueues nothing new). An event is acknowledged only after its
// job is published, so a process that dies in between handles it again
// after a restart.
//
// Why events and not the recorder's transaction: the recorder commits the
// recording row and its recording.completed outbox row together, and the
// relay publishes that row until NATS acknowledges it, so the event is
// exactly as durable as the completion itself. Events that predate the
// consumer, or arrive while transcription is disabled, are found by the
// Sweeper.
type Dispatcher struct {
	q   *Queue
	cfg DispatchConfig
}

// NewDispatcher returns a dispatcher feeding q.
func NewDispatcher(q *Queue, cfg DispatchConfig) *Dispatcher {
	return &Dispatcher{q: q, cfg: cfg.withDefaults()}
}

// Ensure creates the dispatcher's durable consumer if it is absent. New
// consumers start with events published from now on (the sweeper covers
// what came before).
func (d *Dispatcher) Ensure(ctx context.Context) (jetstream.Consumer, error) {
	c, err := d.q.js.Consumer(ctx, d.cfg.EventsStream, d.cfg.Consumer)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("job: look up consumer %s on %s: %w", d.cfg.Consumer, d.cfg.EventsStream, err)
	}
	c, err = d.q.js.CreateConsumer(ctx, d.cfg.EventsStream, jetstream.ConsumerConfig{
		Durable:       d.cfg.Consumer,
		Description:   "Custodian: recording events to transcription jobs",
		FilterSubject: d.cfg.FilterSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return d.q.js.Consumer(ctx, d.cfg.EventsStream, d.cfg.Consumer)
	}
	if err != nil {
		return nil, fmt.Errorf("job: create consumer %s on %s: %w", d.cfg.Consumer, d.cfg.EventsStream, err)
	}
	return c, nil
}

// Run dispatches events until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	log := d.q.log.With("component", "transcribe-dispatch")
	var cons jetstream.Consumer
	failures := 0
	for ctx.Err() == nil {
		if cons == nil {
			c, err := d.Ensure(ctx)
			if err != nil {
				failures++
				log.WarnContext(ctx, "recording event consumer unavailable, retrying", "err", err)
				sleep(ctx, backoff(failures, time.Second, 30*time.Second))
				continue
			}
			cons, failures = c, 0
		}
		fctx, cancel := context.WithTimeout(ctx, d.cfg.PollWait)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		switch {
		case err == nil:
			failures = 0
			d.handle(ctx, msg)
		case ctx.Err() != nil:
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			cons = nil
		default:
			failures++
			log.WarnContext(ctx, "fetching recording events failed, retrying", "err", err)
			sleep(ctx, backoff(failures, 100*time.Millisecond, 10*time.Second))
		}
	}
	return nil
}

func (d *Dispatcher) handle(ctx context.Context, msg jetstream.Msg) {
	log := d.q.log.With("component", "transcribe-dispatch", "subject", msg.Subject())
	var ce events.CloudEvent
	if err := json.Unmarshal(msg.Data(), &ce); err != nil {
		log.WarnContext(ctx, "ignoring an event that does not parse")
		_ = msg.TermWithReason("malformed event")
		return
	}
	var source string
	switch ce.Type {
	case events.TypePrefix + events.RecordingCompleted:
		source = SourceCompleted
	case events.TypePrefix + events.RecordingRecovered:
		source = SourceRecovered
	default:
		_ = msg.Ack() // recording.started, .failed, .deleted
		return
	}
	var data events.RecordingData
	if err := json.Unmarshal(ce.Data, &data); err != nil || !meta.ValidID(ce.Tenant) || !meta.ValidID(data.RecordingID) {
		log.WarnContext(ctx, "ignoring a recording event that does not parse", "type", ce.Type)
		_ = msg.TermWithReason("malformed event")
		return
	}
	rec, err := loadRecording(ctx, d.q.db, ce.Tenant, data.RecordingID)
	if errors.Is(err, gorm.ErrRecordNotFound) {
		// An event from another deployment sharing the NATS server, or
		// a recording removed since.
		log.InfoContext(ctx, "recording event for an unknown recording ignored", "recording_id", data.RecordingID)
		_ = msg.Ack()
		return
	}
	if err == nil {
		_, err = d.q.Enqueue(ctx, rec, source, ce.Time)
	}
	if err != nil {
		log.WarnContext(ctx, "enqueueing a transcription job failed; the event will be retried", "recording_id", data.RecordingID, "err", err)
		_ = msg.NakWithDelay(5 * time.Second)
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		log.WarnContext(ctx, "acknowledging a recording event failed (it will be handled again, harmlessly)", "err", err)
	}
}

// backoff is base·2^(n-1), capped at maxD, jittered to [d/2, d].
func backoff(n int, base, maxD time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	return d/2 + jitter(d/2+1)
}
