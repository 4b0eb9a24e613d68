package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custodian/custodian/storage/meta"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Publisher is what the relay needs from JetStream: a publish that returns
// once the stream has acknowledged (jetstream.JetStream implements it).
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

var _ Publisher = (jetstream.JetStream)(nil)

// ContentType is the Content-Type header of every published message
// (CloudEvents structured mode).
const ContentType = "application/cloudevents+json; charset=utf-8"

// RelayOptions configure a Relay. Zero values take the defaults noted.
type RelayOptions struct {
	// Owner identifies this relay in row leases (default: a random id).
	// Give each gateway instance its own.
	Owner string
	Log   *slog.Logger
	// BatchSize is how many rows one relay leases and publishes at a time
	// (default 100).
	BatchSize int
	// PollInterval is how often the outbox is looked at when no Emit in
	// this process woke the relay (default 1 s): rows written by other
	// instances are found this way.
	PollInterval time.Duration
	// LeaseTTL is how long leased rows are reserved for this relay
	// (default 30 s, at least 2×PublishTimeout). A relay that dies leaves
	// its rows to others after it.
	LeaseTTL time.Duration
	// PublishTimeout bounds the wait for one JetStream ack (default 5 s).
	PublishTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts while
	// NATS does not acknowledge (defaults 200 ms and 30 s, doubling).
	MinBackoff, MaxBackoff time.Duration
	// Retention is how long sent rows are kept before they are pruned
	// (default 7 days; negative: never pruned).
	Retention time.Duration
	// PruneInterval is how often sent rows are pruned (default 10 min).
	PruneInterval time.Duration
	// EnsureStream, when set, is called when a publish finds no stream
	// (for example an external server whose stream was deleted).
	EnsureStream func(ctx context.Context) error
}

func (o *RelayOptions) defaults() {
	if o.Owner == "" {
		o.Owner = meta.NewID("relay")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.LeaseTTL < 2*o.PublishTimeout {
		o.LeaseTTL = 2 * o.PublishTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.Retention == 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.PruneInterval <= 0 {
		o.PruneInterval = 10 * time.Minute
	}
}

// Relay publishes committed outbox rows to JetStream, in order, and marks
// each sent only after JetStream has acknowledged it. Several relays (one
// per gateway instance) may run on one database: a relay leases a batch
// of the oldest unsent rows (LeaseOwner/LeaseUntil, taken under SELECT …
// FOR UPDATE on PostgreSQL and SQLite's single writer) and only when no
// other relay holds the head of the outbox, so no row is published by two
// relays at once and the order is kept. JetStream's duplicate window on
// Nats-Msg-Id (the event id) is the second line of defence, for a relay
// that dies between the ack and marking the row.
type Relay struct {
	db  *gorm.DB
	pub Publisher
	o   RelayOptions
	log *slog.Logger

	drainMu sync.Mutex // one Drain at a time per relay (Run and a final Drain at shutdown)

	published atomic.Uint64
	failures  atomic.Uint64
	down      atomic.Bool
}

// RelayStats are counters for metrics.
type RelayStats struct {
	Published uint64 // rows acknowledged by JetStream and marked sent
	Failures  uint64 // failed publish attempts
	Down      bool   // the last attempt failed
}

// NewRelay returns a relay from db's outbox to pub. Start it with Run.
func NewRelay(db *gorm.DB, pub Publisher, o RelayOptions) *Relay {
	o.defaults()
	return &Relay{db: db, pub: pub, o: o, log: o.Log.With("component", "events-relay", "owner", o.Owner)}
}

// Stats returns the relay's counters.
func (r *Relay) Stats() RelayStats {
	return RelayStats{Published: r.published.Load(), Failures: r.failures.Load(), Down: r.down.Load()}
}

// Pending counts the rows not yet acknowledged by JetStream.
func (r *Relay) Pending(ctx context.Context) (int64, error) { return PendingCount(ctx, r.db) }

// PendingCount counts the outbox rows of db not yet sent.
func PendingCount(ctx context.Context, db *gorm.DB) (int64, error) {
	var n int64
	if err := db.WithContext(ctx).Model(&meta.OutboxEvent{}).Where("sent_at IS NULL").Count(&n).Error; err != nil {
		return 0, fmt.Errorf("events: count pending: %w", err)
	}
	return n, nil
}

// Run relays until ctx ends, then returns nil. While NATS does not
// acknowledge it retries with capped exponential backoff, keeping every
// row; it wakes at once when Emit is called in this process and otherwise
// polls every PollInterval.
func (r *Relay) Run(ctx context.Context) error {
	var (
		backoff   time.Duration
		attempts  int
		lastPrune time.Time
		recheck   bool
	)
	for {
		_, err := r.Drain(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			attempts++
			backoff = min(max(backoff*2, r.o.MinBackoff), r.o.MaxBackoff)
			pending, _ := r.Pending(ctx)
			r.log.Warn("events relay: publish failed, retrying", "attempt", attempts,
				"retry_in", backoff.String(), "pending", pending, "err", err)
			if r.o.EnsureStream != nil && isNoStream(err) {
				if err := r.o.EnsureStream(ctx); err != nil {
					r.log.Warn("events relay: ensure stream", "err", err)
				}
			}
			// While NATS is down an Emit does not shorten the wait.
			if !sleep(ctx, backoff) {
				return nil
			}
			continue
		}
		if attempts > 0 {
			r.log.Info("events relay: nats acknowledging again", "after_attempts", attempts)
			attempts, backoff = 0, 0
		}
		if r.o.Retention > 0 && time.Since(lastPrune) >= r.o.PruneInterval {
			lastPrune = time.Now()
			if n, err := r.Prune(ctx, r.o.Retention); err != nil {
				r.log.Warn("events relay: prune sent rows", "err", err)
			} else if n > 0 {
				r.log.Debug("events relay: pruned sent rows", "rows", n)
			}
		}
		wait := r.o.PollInterval
		if recheck {
			// Emit signals before its transaction commits: look again
			// shortly in case the row was not visible yet.
			wait = min(wait, 50*time.Millisecond)
			recheck = false
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
			t.Stop()
			recheck = true
		case <-t.C:
		}
	}
}

// Drain publishes pending rows until none is left, another relay holds
// the head of the outbox, or a publish fails (returned). It reports how
// many rows it published. It is safe to call while Run is running (for
// a last drain at shutdown): calls are serialized.
func (r *Relay) Drain(ctx context.Context) (int, error) {
	r.drainMu.Lock()
	defer r.drainMu.Unlock()
	total := 0
	for {
		rows, err := r.claim(ctx)
		if err != nil {
			return total, err
		}
		if len(rows) == 0 {
			return total, nil
		}
		n, err := r.publish(ctx, rows)
		total += n
		if err != nil {
			r.down.Store(true)
			return total, err
		}
		r.down.Store(false)
		if len(rows) < r.o.BatchSize {
			return total, nil
		}
	}
}

// claim leases the oldest unsent rows, up to BatchSize, stopping before
// the first row another relay holds a live lease on. Rows are locked while
// they are examined (FOR UPDATE on PostgreSQL; SQLite transactions here
// take the write lock at BEGIN), so two relays never lease the same row.
func (r *Relay) claim(ctx context.Context) ([]meta.OutboxEvent, error) {
	var rows []meta.OutboxEvent
	err := r.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := tx.Where("sent_at IS NULL").Order("seq").Limit(r.o.BatchSize)
		if meta.Dialect(tx) == meta.DialectPostgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		var cand []meta.OutboxEvent
		if err := q.Find(&cand).Error; err != nil {
			return err
		}
		now := nowUTC()
		n := 0
		for _, row := range cand {
			if row.LeaseOwner != "" && row.LeaseOwner != r.o.Owner && row.LeaseUntil != nil && row.LeaseUntil.After(now) {
				break
			}
			n++
		}
		if n == 0 {
			return nil
		}
		cand = cand[:n]
		seqs := make([]int64, n)
		for i, row := range cand {
			seqs[i] = row.Seq
		}
		until := now.Add(r.o.LeaseTTL)
		err := tx.Model(&meta.OutboxEvent{}).Where("seq IN ?", seqs).
			Updates(map[string]any{"lease_owner": r.o.Owner, "lease_until": until}).Error
		if err != nil {
			return err
		}
		rows = cand
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("events: relay: lease outbox rows: %w", err)
	}
	return rows, nil
}

// publish sends rows in order, each waiting for its ack, then marks the
// acknowledged ones sent. On the first failure it records the error on
// that row and releases the lease of the rest.
func (r *Relay) publish(ctx context.Context, rows []meta.OutboxEvent) (int, error) {
	leasedAt := time.Now()
	var (
		acked   []int64
		pubErr  error
		failSeq int64
	)
	for _, row := range rows {
		if time.Since(leasedAt) > r.o.LeaseTTL-r.o.PublishTimeout {
			break // the lease could run out during the next publish
		}
		msg, err := message(row)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, r.o.PublishTimeout)
			_, err = r.pub.PublishMsg(pctx, msg, jetstream.WithExpectStream(StreamName))
			cancel()
		}
		if err != nil {
			pubErr = fmt.Errorf("events: relay: publish %s (%s): %w", row.ID, msg.Subject, err)
			failSeq = row.Seq
			r.failures.Add(1)
			break
		}
		acked = append(acked, row.Seq)
	}
	// Bookkeeping must happen even when ctx has just been cancelled.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	db := r.db.WithContext(bctx)
	var errs []error
	if len(acked) > 0 {
		err := updateRows(db, acked, "", map[string]any{
			"sent_at": nowUTC(), "lease_owner": "", "lease_until": nil,
			"attempts": gorm.Expr("attempts + 1"), "last_error": "",
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("events: relay: mark %d rows sent: %w", len(acked), err))
		} else {
			r.published.Add(uint64(len(acked)))
		}
	}
	if failSeq != 0 {
		msg := pubErr.Error()
		if len(msg) > 500 {
			msg = msg[:500]
		}
		err := updateRows(db, []int64{failSeq}, "", map[string]any{
			"attempts": gorm.Expr("attempts + 1"), "last_error": msg,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("events: relay: record failure: %w", err))
		}
	}
	if len(acked) < len(rows) {
		rest := make([]int64, 0, len(rows)-len(acked))
		for _, row := range rows[len(acked):] {
			rest = append(rest, row.Seq)
		}
		err := updateRows(db, rest, r.o.Owner, map[string]any{"lease_owner": "", "lease_until": nil})
		if err != nil {
			errs = append(errs, fmt.Errorf("events: relay: release leases: %w", err))
		}
	}
	if pubErr != nil {
		return len(acked), pubErr // bookkeeping errors are secondary
	}
	return len(acked), errors.Join(errs...)
}

// updateRows applies values to the outbox rows seqs (only those leased
// by owner, when owner is set). On PostgreSQL the rows are first locked
// in seq order, the order claim's SELECT … FOR UPDATE locks them in: an
// UPDATE alone locks rows in physical order, which deadlocks against a
// concurrent claim (seen: PostgreSQL aborted the "mark sent" update, the
// rows stayed unsent and were published a second time). A deadlock or
// serialization failure is retried a few times.
func updateRows(db *gorm.DB, seqs []int64, owner string, values map[string]any) error {
	var err error
	for attempt := range 4 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt*attempt) * 10 * time.Millisecond)
		}
		err = db.Transaction(func(tx *gorm.DB) error {
			where := func(q *gorm.DB) *gorm.DB {
				q = q.Where("seq IN ?", seqs)
				if owner != "" {
					q = q.Where("lease_owner = ?", owner)
				}
				return q
			}
			if meta.Dialect(tx) == meta.DialectPostgres {
				var locked []int64
				err := where(tx.Model(&meta.OutboxEvent{})).Order("seq").
					Clauses(clause.Locking{Strength: "UPDATE"}).Pluck("seq", &locked).Error
				if err != nil {
					return err
				}
				if len(locked) == 0 {
					return nil
				}
			}
			return where(tx.Model(&meta.OutboxEvent{})).Updates(values).Error
		})
		if err == nil || !transient(err) {
			return err
		}
	}
	return err
}

// transient reports a PostgreSQL deadlock (40P01) or serialization
// failure (40001), which a retry resolves.
func transient(err error) bool {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		return se.SQLState() == "40P01" || se.SQLState() == "40001"
	}
	return false
}

// message renders an outbox row as the NATS message the relay publishes.
func message(row meta.OutboxEvent) (*nats.Msg, error) {
	msg := nats.NewMsg(Subject(row.TenantID, row.Kind))
	body, err := json.Marshal(ToCloudEvent(row))
	if err != nil {
		return msg, fmt.Errorf("encode cloudevent: %w", err)
	}
	msg.Data = body
	msg.Header.Set(jetstream.MsgIDHeader, row.ID)
	msg.Header.Set("Content-Type", ContentType)
	return msg, nil
}

// Prune deletes rows sent more than olderThan ago, in batches, and
// reports how many it deleted.
func (r *Relay) Prune(ctx context.Context, olderThan time.Duration) (int64, error) {
	cutoff := nowUTC().Add(-olderThan)
	db := r.db.WithContext(ctx)
	var total int64
	for {
		sub := db.Model(&meta.OutboxEvent{}).Select("seq").
			Where("sent_at IS NOT NULL AND sent_at < ?", cutoff).Order("seq").Limit(1000)
		res := db.Where("seq IN (?)", sub).Delete(&meta.OutboxEvent{})
		if res.Error != nil {
			return total, fmt.Errorf("events: prune outbox: %w", res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < 1000 {
			return total, nil
		}
	}
}

func isNoStream(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrStreamNotFound)
}

// nowUTC is the current time as stored: UTC, microseconds (PostgreSQL's
// precision), so comparisons agree on SQLite and PostgreSQL.
func nowUTC() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
