package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage/meta"
)

// ConsumerPrefix starts the name of every replica's durable consumer:
// "search-{instance id}".
const ConsumerPrefix = "search-"

// ConsumerName returns the durable consumer of an instance's replica.
func ConsumerName(instanceID string) string {
	return ConsumerPrefix + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, instanceID)
}

// ReplicaOptions configure a Replica.
type ReplicaOptions struct {
	JS     jetstream.JetStream
	Index  *Index
	Loader *Loader
	// Consumer is the durable consumer's name (ConsumerName(instance id)).
	Consumer string
	Logger   *slog.Logger
	// Batch is how many events are committed at most at once (default 64).
	Batch int
	// AckWait is how long JetStream waits for an ack before redelivering
	// (default 30 s).
	AckWait time.Duration
}

// Replica keeps an Index up to date with the events of CUSTODIAN_EVENTS:
// transcript.completed and recording.deleted. Each event only names a
// recording; the replica reads that recording's current state from the
// database and the object store (Loader) and makes the index match it, so
// events may come twice, late or out of order. Events are acknowledged
// after the index commit.
type Replica struct {
	o   ReplicaOptions
	log *slog.Logger
}

// NewReplica returns a Replica; Run starts it.
func NewReplica(o ReplicaOptions) *Replica {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	return &Replica{o: o, log: o.Logger.With("component", "search_replica", "consumer", o.Consumer)}
}

// filterSubjects are the events the replica follows, of every tenant.
func filterSubjects() []string {
	return []string{
		events.SubjectPrefix + ".*." + events.TranscriptCompleted,
		events.SubjectPrefix + ".*." + events.RecordingDeleted,
	}
}

// Run follows the events until ctx ends. A replica without state (new
// instance, wiped directory, lost consumer) is first synced from the
// database, after its consumer exists, so no event in between is missed.
func (r *Replica) Run(ctx context.Context) error {
	cons, created, err := r.consumer(ctx)
	for err != nil {
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("search consumer not ready; retrying", "err", err)
		if !sleepCtx(ctx, 2*time.Second) {
			return nil
		}
		cons, created, err = r.consumer(ctx)
	}
	st, ok := r.o.Index.readState()
	if created || !ok || st.Consumer != r.o.Consumer {
		if err := r.bootstrap(ctx); err != nil {
			return nil // ctx ended
		}
	}
	return r.follow(ctx, cons)
}

func (r *Replica) consumer(ctx context.Context) (jetstream.Consumer, bool, error) {
	cons, err := r.o.JS.Consumer(ctx, events.StreamName, r.o.Consumer)
	if err == nil {
		return cons, false, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, false, err
	}
	cons, err = r.o.JS.CreateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{
		Durable:        r.o.Consumer,
		Description:    "search index replica",
		FilterSubjects: filterSubjects(),
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        r.o.AckWait,
		MaxAckPending:  4 * r.o.Batch,
	})
	if errors.Is(err, jetstream.ErrConsumerExists) {
		cons, err = r.o.JS.Consumer(ctx, events.StreamName, r.o.Consumer)
		return cons, false, err
	}
	if err != nil {
		return nil, false, err
	}
	r.log.Info("created search consumer")
	return cons, true, nil
}

// bootstrap syncs the index from the database, retrying until it
// succeeds or ctx ends.
func (r *Replica) bootstrap(ctx context.Context) error {
	if err := r.o.Index.clearState(); err != nil {
		r.log.Warn("clear replica state", "err", err)
	}
	for {
		r.log.Info("syncing search index from the database")
		st, err := Sync(ctx, r.o.Index, r.o.Loader, nil)
		if err == nil {
			err = r.o.Index.writeState(replicaState{Consumer: r.o.Consumer, SyncedAt: time.Now().UTC()})
		}
		if err == nil {
			r.log.Info("search index synced", "transcripts", st.Transcripts, "indexed", st.Indexed,
				"removed", st.Removed, "duration", st.Duration.Round(time.Millisecond).String())
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.Error("search index sync failed; retrying", "err", err)
		if !sleepCtx(ctx, 5*time.Second) {
			return ctx.Err()
		}
	}
}

func (r *Replica) follow(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(r.o.Batch))
	if err != nil {
		return fmt.Errorf("search: consume: %w", err)
	}
	defer it.Stop()
	for {
		first, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				// connection closed or consumer deleted: start over
				r.log.Warn("search consumer iterator closed; reopening", "err", err)
				if !sleepCtx(ctx, time.Second) {
					return nil
				}
				return r.Run(ctx)
			}
			r.log.Warn("search consumer", "err", err)
			continue
		}
		batch := []jetstream.Msg{first}
		for len(batch) < r.o.Batch {
			m, err := it.Next(jetstream.NextMaxWait(5 * time.Millisecond))
			if err != nil {
				break
			}
			batch = append(batch, m)
		}
		r.handle(ctx, batch)
	}
}

// event is what the replica reads from a message.
type event struct {
	msg       jetstream.Msg
	tenant    string
	kind      string
	recording string
}

func parseEvent(m jetstream.Msg) (event, error) {
	var ce events.CloudEvent
	if err := json.Unmarshal(m.Data(), &ce); err != nil {
		return event{}, fmt.Errorf("not a CloudEvent: %w", err)
	}
	kind, ok := strings.CutPrefix(ce.Type, events.TypePrefix)
	if !ok || (kind != events.TranscriptCompleted && kind != events.RecordingDeleted) {
		return event{}, fmt.Errorf("unexpected type %q", ce.Type)
	}
	rec := ce.Subject
	if rec == "" {
		var d struct {
			RecordingID string `json:"recording_id"`
		}
		json.Unmarshal(ce.Data, &d)
		rec = d.RecordingID
	}
	if !meta.ValidID(ce.Tenant) || !meta.ValidID(rec) {
		return event{}, fmt.Errorf("invalid tenant %q or recording %q", ce.Tenant, rec)
	}
	if m.Subject() != events.Subject(ce.Tenant, kind) {
		return event{}, fmt.Errorf("subject %q does not match tenant %q and kind %q", m.Subject(), ce.Tenant, kind)
	}
	return event{msg: m, tenant: ce.Tenant, kind: kind, recording: rec}, nil
}

// handle applies a batch of events: per tenant, one index commit of the
// current state of every recording named, then the acks.
func (r *Replica) handle(ctx context.Context, batch []jetstream.Msg) {
	// A commit may wait for a purge of the tenant's index (seconds to
	// minutes on a large index): keep the messages from being redelivered
	// meanwhile.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(r.o.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				for _, m := range batch {
					m.InProgress()
				}
			}
		}
	}()
	byTenant := map[string][]event{}
	var tenants []string
	for _, m := range batch {
		ev, err := parseEvent(m)
		if err != nil {
			r.log.Error("search consumer dropped a malformed event", "subject", m.Subject(), "err", err)
			r.o.Index.m.events.WithLabelValues("unknown", "dropped").Inc()
			m.Term()
			continue
		}
		if byTenant[ev.tenant] == nil {
			tenants = append(tenants, ev.tenant)
		}
		byTenant[ev.tenant] = append(byTenant[ev.tenant], ev)
	}
	for _, tenant := range tenants {
		evs := byTenant[tenant]
		var put []Document
		var del []string
		var done, retry []event
		seen := map[string]bool{}
		for _, ev := range evs {
			if seen[ev.recording] {
				done = append(done, ev)
				continue
			}
			doc, ok, err := r.o.Loader.Load(ctx, tenant, ev.recording)
			if err != nil {
				if ctx.Err() == nil {
					// Usually another instance's object still in its spool:
					// quiet for the first retries.
					level := slog.LevelInfo
					if md, merr := ev.msg.Metadata(); merr == nil && md.NumDelivered > 3 {
						level = slog.LevelWarn
					}
					r.log.Log(ctx, level, "search: recording not readable yet; will retry",
						"tenant", tenant, "recording_id", ev.recording, "err", err)
				}
				retry = append(retry, ev)
				continue
			}
			seen[ev.recording] = true
			if ok {
				put = append(put, doc)
			} else {
				del = append(del, ev.recording)
			}
			done = append(done, ev)
		}
		if err := r.o.Index.Apply(ctx, tenant, put, del); err != nil {
			if ctx.Err() == nil {
				r.log.Error("search index commit failed; will retry", "tenant", tenant, "err", err)
			}
			retry = append(retry, done...)
			done = nil
		}
		now := time.Now()
		for _, ev := range done {
			if err := ev.msg.Ack(); err != nil {
				r.log.Warn("search consumer ack", "err", err)
			}
			r.o.Index.m.events.WithLabelValues(ev.kind, "applied").Inc()
			if md, err := ev.msg.Metadata(); err == nil {
				r.o.Index.m.lag.Observe(now.Sub(md.Timestamp).Seconds())
			}
		}
		for _, ev := range retry {
			// 250 ms, 500 ms, 1 s, … up to 30 s
			delay := 250 * time.Millisecond
			if md, err := ev.msg.Metadata(); err == nil && md.NumDelivered > 1 {
				delay = min(time.Duration(1<<min(md.NumDelivered-1, 7))*250*time.Millisecond, 30*time.Second)
			}
			ev.msg.NakWithDelay(delay)
			r.o.Index.m.events.WithLabelValues(ev.kind, "retried").Inc()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
