package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/policy/retention"
	"github.com/custodian/custodian/recorder/pipeline"
	"github.com/custodian/custodian/recorder/report"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
)

// Reasons of recording.failed events for a recording (fixed tokens).
const (
	reasonStorage  = "storage"
	reasonManifest = "manifest"
	reasonTimeout  = "finalize_timeout"
	reasonRecovery = "recovery_failed"
)

// sink is a connection's pipeline.Sink. The recording's row and its
// storage.Writer (with the data key) are created at the first part, so a
// participant whose media is never stored (no consent) leaves no row, no
// key and no object. It is used by the pipeline's part-writing goroutine
// and, after the pipeline closed, by finalize.
type sink struct {
	c *conn

	mu        sync.Mutex
	w         *storage.Writer
	row       meta.Recording
	announced bool
	held      bool // the writer was opened with the Object Lock legal hold
	startErr  error
	log       *slog.Logger // the connection's, with the recording id once started
}

var _ pipeline.Sink = (*sink)(nil)

// WritePart implements pipeline.Sink.
func (k *sink) WritePart(ctx context.Context, p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.w == nil {
		if err := k.start(ctx); err != nil {
			k.startErr = err
			return 0, err
		}
	}
	n, err := k.w.WritePart(ctx, p)
	if err != nil {
		return n, err
	}
	if !k.announced {
		k.announced = true
		k.announce(ctx)
	}
	return n, nil
}

// RewritePart implements pipeline.Sink.
func (k *sink) RewritePart(ctx context.Context, n int, p []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.w == nil {
		return errors.New("recorder: rewrite before any part")
	}
	return k.w.RewritePart(ctx, n, p)
}

// start creates the writer (data key) and the recording row, status
// recording, owned by this instance for crash recovery.
func (k *sink) start(ctx context.Context) error {
	c := k.c
	r, s := c.r, c.s
	id := meta.NewID("rec")
	// The pipeline's timeline start; it is set before the first part
	// reaches the sink (Started never takes the pipeline's lock).
	startedAt, ok := c.rec.Started()
	if !ok {
		startedAt = time.Now()
	}
	retain := policy.RetainUntil(startedAt, c.decision).UTC()
	held := r.heldFor(ctx, s.key.tenant, s.key.id, c.participant)
	w, err := r.opts.Store.NewWriter(ctx, s.key.tenant, id, storage.WriterOptions{RetainUntil: retain, LegalHold: held})
	if err != nil {
		return fmt.Errorf("recorder: start recording: %w", err)
	}
	row := meta.Recording{
		ID: id, TenantID: s.key.tenant, SessionID: s.key.id, ParticipantID: c.participant, Department: s.dept,
		Status: meta.StatusRecording, ContentType: c.contentType, Codecs: meta.NewJSON(slices.Clone(c.codecs)),
		InstanceID: r.opts.InstanceID, StartedAt: startedAt.UTC(),
		StartOffsetMS: s.clock.Since(startedAt) / 1e6,
		PolicyName:    c.decision.Rule, Decision: meta.NewJSON(decisionMap(c.decision)),
		Transcribe: c.decision.Transcribe, RedactPII: c.decision.RedactPII,
		KeepUnredacted: c.decision.KeepUnredacted, TranscriptionEngine: c.decision.TranscriptionEngine,
		RetainUntil: &retain,
	}
	if err := r.db.WithContext(ctx).Create(&row).Error; err != nil {
		_, _ = w.Close(ctx, false)
		return fmt.Errorf("recorder: store recording row: %w", err)
	}
	k.w, k.row, k.held = w, row, held
	k.log = c.log.With("recording_id", id)
	k.log.Info("recording started", "content_type", row.ContentType, "start_offset_ms", row.StartOffsetMS)
	return nil
}

// announce emits recording.started once the first part is durable.
func (k *sink) announce(ctx context.Context) {
	r := k.c.r
	err := r.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&meta.Recording{}).Where("id = ?", k.row.ID).Update("parts", 1).Error; err != nil {
			return err
		}
		return events.Emit(tx, events.Event{Tenant: k.row.TenantID, Kind: events.RecordingStarted, Subject: k.row.ID,
			Data: recordingData(k.row)})
	})
	if err != nil {
		k.log.Warn("announce recording", "err", err)
	}
	r.metrics.recordings.WithLabelValues(meta.StatusRecording).Inc()
}

func recordingData(row meta.Recording) events.RecordingData {
	return events.RecordingData{
		RecordingID: row.ID, SessionID: row.SessionID, ParticipantID: row.ParticipantID, Department: row.Department,
		Status: row.Status, ContentType: row.ContentType, Codecs: row.Codecs.V, StartedAt: row.StartedAt.UTC(),
		EndedAt: row.EndedAt, StartOffsetMS: row.StartOffsetMS, DurationMS: row.DurationMS, Parts: row.Parts,
		Size: row.Size, CipherSize: row.CipherSize, ManifestSHA256: row.ManifestSHA256, RetainUntil: row.RetainUntil,
		Completeness: row.Completeness.V,
	}
}

// heldFor reports whether an active legal hold covers the session or the
// participant (the recording's objects then carry an Object Lock legal
// hold from the first part). It fails safe: a lookup error counts as held,
// since a spurious hold only delays deletion and a missed one could lose
// evidence.
func (r *Recorder) heldFor(ctx context.Context, tenant, sessionID, participantID string) bool {
	held, err := retention.HoldForWrite(ctx, r.db, tenant, sessionID, participantID)
	if err != nil {
		r.log.Warn("read legal holds; treating the recording as held", "err", err)
	}
	return held
}

// holdIfPlacedMeanwhile sets the Object Lock legal hold on a finished
// recording whose writer started without one when a hold now covers it
// (placed while it was recording; the hold API covered only the objects
// that existed then). It runs in the background: the upload of the last
// parts may take a while.
func (c *conn) holdIfPlacedMeanwhile(row meta.Recording) {
	r := c.r
	held, err := retention.Held(context.Background(), r.db, row.TenantID, row.SessionID, row.ParticipantID)
	if err != nil || !held {
		return
	}
	hs, ok := r.opts.Store.(interface {
		SetLegalHold(ctx context.Context, tenant, recordingID string, on bool) error
	})
	if !ok {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := hs.SetLegalHold(ctx, row.TenantID, row.ID, true); err != nil {
			c.log.Error("set legal hold on a recording held while it was recording", "recording_id", row.ID, "err", err)
		}
	}()
}

// finalizeTimeout bounds closing a recording at the end of a connection.
const finalizeTimeout = 60 * time.Second

// finalize closes the pipeline at end (padding the timeline, sealing the
// last part, rewriting the header part), seals the manifest, and stores
// the row's final state with its event in one transaction: complete, or
// failed with a reason. Earlier parts stay readable either way.
func (c *conn) finalize(ctx context.Context, end time.Time, reason string) {
	r := c.r
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalizeTimeout)
	defer cancel()
	k := c.sink
	k.mu.Lock()
	started := k.w != nil
	k.mu.Unlock()
	if started {
		if err := r.db.WithContext(ctx).Model(&meta.Recording{}).Where("id = ? AND status = ?", k.row.ID, meta.StatusRecording).
			Update("status", meta.StatusFinalizing).Error; err != nil {
			c.log.Warn("mark recording finalizing", "err", err)
		}
	}
	rep, perr := c.rec.Close(ctx, end)
	c.accountStats() // the final counters, as in the report
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.w == nil {
		if k.startErr != nil {
			c.log.Error("recording could not start", "err", k.startErr)
			r.failSession(ctx, c.s, failStorage, c.participant, true)
		} else if rep != nil {
			c.log.Info("nothing recorded", "packets_received", rep.PacketsReceived, "packets_gated", rep.PacketsGated)
		}
		return
	}
	row := k.row
	log := k.log
	complete := perr == nil
	failReason, failToken := "", ""
	if perr != nil {
		failReason, failToken = perr.Error(), reasonStorage
		if errors.Is(perr, context.DeadlineExceeded) {
			failToken = reasonTimeout
		}
	}
	m, cerr := k.w.Close(ctx, complete)
	if cerr != nil {
		complete = false
		if failReason != "" {
			failReason += "; "
		}
		failReason += cerr.Error()
		if failToken == "" {
			failToken = reasonManifest
		}
		c.retryManifest(k.w, row.ID, log)
	} else {
		m.Apply(&row)
	}
	if rep != nil {
		if rep.StartedAt != nil {
			row.StartedAt = rep.StartedAt.UTC()
			row.StartOffsetMS = rep.StartOffsetMS
		}
		row.DurationMS = rep.DurationMS
		if len(rep.Codecs) > 0 {
			row.Codecs = meta.NewJSON(rep.Codecs)
		}
		if rep.ContentType != "" {
			row.ContentType = rep.ContentType
		}
		m := completeness(rep, reason)
		if c.annotate != nil {
			for k, v := range c.annotate(rep) {
				m[k] = v
			}
		}
		row.Completeness = meta.NewJSON(m)
	}
	endUTC := end.UTC()
	row.EndedAt = &endUTC
	row.Status = meta.StatusComplete
	kind := events.RecordingCompleted
	if !complete {
		row.Status, row.FailureReason, kind = meta.StatusFailed, failReason, events.RecordingFailed
	}
	data := recordingData(row)
	data.Reason = failToken
	err := r.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&meta.Recording{}).Where("id = ?", row.ID).Select(
			"status", "ended_at", "started_at", "start_offset_ms", "duration_ms", "codecs", "content_type",
			"completeness", "failure_reason", "parts", "size", "cipher_size", "manifest_sha256",
		).Updates(&row).Error; err != nil {
			return err
		}
		return events.Emit(tx, events.Event{Tenant: row.TenantID, Kind: kind, Subject: row.ID, Data: data})
	})
	if err != nil {
		log.Error("store finished recording", "status", row.Status, "err", err)
	}
	r.metrics.recordings.WithLabelValues(row.Status).Inc()
	r.metrics.finalize.Observe(time.Since(start).Seconds())
	log.Info("recording finalized", "status", row.Status, "duration_ms", row.DurationMS, "parts", row.Parts,
		"finalize_ms", time.Since(start).Milliseconds(), "reason", reason)
	if !complete {
		r.failSession(ctx, c.s, failRecording, c.participant, false)
	}
	if cerr == nil && !k.held { // k.mu is held since the writer closed
		c.holdIfPlacedMeanwhile(row)
	}
}

// completeness is the report as stored and sent, with why the connection
// ended.
func completeness(rep *report.Report, endReason string) map[string]any {
	m := rep.Map()
	m["end_reason"] = endReason
	return m
}

// retryManifest keeps trying to seal the manifest of a recording whose
// writer could not close (the spool was unavailable), so that its
// earlier parts become readable once storage returns. It stops when the
// recorder's background context ends.
func (c *conn) retryManifest(w *storage.Writer, id string, log *slog.Logger) {
	r := c.r
	r.retry.Add(1)
	go func() {
		defer r.retry.Done()
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-r.bg.Done():
				log.Warn("manifest still not sealed at shutdown; crash recovery will not pick it up", "recording_id", id)
				return
			case <-tk.C:
			}
			ctx, cancel := context.WithTimeout(r.bg, 10*time.Second)
			m, err := w.Close(ctx, false)
			if err == nil {
				var row meta.Recording
				m.Apply(&row)
				err = r.db.WithContext(ctx).Model(&meta.Recording{}).Where("id = ?", id).
					Select("parts", "size", "cipher_size", "manifest_sha256").Updates(&row).Error
				cancel()
				if err != nil {
					log.Warn("store sealed manifest", "err", err)
				}
				log.Info("manifest of failed recording sealed", "recording_id", id, "parts", row.Parts)
				return
			}
			cancel()
		}
	}()
}
