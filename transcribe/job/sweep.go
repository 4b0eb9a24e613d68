package job

import (
	"context"
	"fmt"
	"time"

	"github.com/custodian/custodian/storage/meta"
)

// SweepConfig configures a Sweeper. The zero value means the defaults.
type SweepConfig struct {
	// Interval between sweeps (default 5 min).
	Interval time.Duration
	// Grace is how long a finished recording may wait for its job before
	// the sweeper looks at it, so the dispatcher goes first (default
	// 1 min). Pending rows older than this without a job message are
	// enqueued again.
	Grace time.Duration
	// Stale is how long a running row may go without a heartbeat before
	// its job is presumed lost (default twice the ack wait).
	Stale time.Duration
	// Owner names this instance in the sweep lease (default: random).
	Owner string
	// Batch bounds the recordings looked at per sweep (default 500).
	Batch int
}

// Sweeper finds recordings that should have a transcript but have no job:
// complete or recovered, Transcribe set, not deleted, and either no
// transcript row, a pending row, or a running row without heartbeats —
// and no job message for them in the stream. It enqueues them. One
// instance sweeps at a time (meta.Lease "transcribe-sweep").
type Sweeper struct {
	q   *Queue
	cfg SweepConfig
}

// sweepLease is the name of the lease one sweeping instance holds.
const sweepLease = "transcribe-sweep"

// NewSweeper returns a sweeper feeding q.
func NewSweeper(q *Queue, cfg SweepConfig) *Sweeper {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Minute
	}
	if cfg.Grace <= 0 {
		cfg.Grace = time.Minute
	}
	if cfg.Stale <= 0 {
		cfg.Stale = 2 * q.cfg.AckWait
	}
	if cfg.Owner == "" {
		cfg.Owner = randomID()
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	return &Sweeper{q: q, cfg: cfg}
}

// Run sweeps every Interval (the first time after a short delay) until
// ctx ends.
func (s *Sweeper) Run(ctx context.Context) error {
	log := s.q.log.With("component", "transcribe-sweep")
	first := time.NewTimer(min(s.cfg.Interval, 30*time.Second))
	defer first.Stop()
	select {
	case <-first.C:
	case <-ctx.Done():
		return nil
	}
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		ok, err := meta.TryLease(ctx, s.q.db, sweepLease, s.cfg.Owner, s.cfg.Interval)
		if err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "transcription sweep lease failed", "err", err)
		}
		if ok {
			if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "transcription sweep failed", "err", err, "enqueued", n)
			} else if n > 0 {
				log.InfoContext(ctx, "transcription sweep enqueued recordings without a job", "enqueued", n)
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// Sweep looks once and enqueues what it finds; it returns how many jobs it
// published.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	now := time.Now().UTC()
	var recs []meta.Recording
	err := s.q.db.WithContext(ctx).Model(&meta.Recording{}).
		Select("recordings.*").
		Joins("LEFT JOIN transcripts ON transcripts.recording_id = recordings.id").
		Where("recordings.transcribe = ? AND recordings.status IN ? AND recordings.deleted_at IS NULL",
			true, []string{meta.StatusComplete, meta.StatusRecovered}).
		Where("recordings.updated_at < ?", now.Add(-s.cfg.Grace)).
		Where("transcripts.recording_id IS NULL OR (transcripts.status = ? AND transcripts.updated_at < ?) OR (transcripts.status = ? AND transcripts.updated_at < ?)",
			meta.TranscriptPending, now.Add(-s.cfg.Grace), meta.TranscriptRunning, now.Add(-s.cfg.Stale)).
		Order("recordings.updated_at").Limit(s.cfg.Batch).
		Find(&recs).Error
	if err != nil {
		return 0, fmt.Errorf("job: sweep: %w", err)
	}
	n := 0
	for _, rec := range recs {
		queued, err := s.q.queued(ctx, rec.TenantID, rec.ID)
		if err != nil {
			return n, err
		}
		if queued {
			continue
		}
		ok, err := s.q.Enqueue(ctx, rec, SourceSweep, time.Time{})
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}
