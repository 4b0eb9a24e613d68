package recorder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/recorder/ogg"
	"github.com/custodian/custodian/recorder/pipeline"
	"github.com/custodian/custodian/recorder/webm"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
)

// recoverCrashed finalizes the recordings this instance was writing when
// it stopped without closing them (kill -9, power loss): every row of this
// instance still in recording or finalizing is sealed by Store.Recover
// with the parts that made it to the spool (at most part_seconds of media
// lost), marked recovered and announced with recording.recovered. Failed
// recordings whose manifest could not be sealed get their manifest too.
func (r *Recorder) recoverCrashed(ctx context.Context) error {
	var rows []meta.Recording
	err := r.db.WithContext(ctx).Where("instance_id = ? AND (status IN ? OR (status = ? AND manifest_sha256 = ''))",
		r.opts.InstanceID, []string{meta.StatusRecording, meta.StatusFinalizing}, meta.StatusFailed).Find(&rows).Error
	if err != nil {
		return fmt.Errorf("recorder: find interrupted recordings: %w", err)
	}
	for _, row := range rows {
		r.recoverOne(ctx, row)
	}
	return nil
}

func (r *Recorder) recoverOne(ctx context.Context, row meta.Recording) {
	log := r.log.With("recording_id", row.ID, "session_id", row.SessionID, "participant_id", row.ParticipantID)
	start := time.Now()
	opts := storage.RecoverOptions{}
	if row.RetainUntil != nil {
		opts.Put.RetainUntil = *row.RetainUntil
	}
	if row.ContentType == pipeline.ContentTypeWebM || row.ContentType == pipeline.ContentTypeMatroska {
		// The writer never patched the header: state the duration from
		// the last cluster so players show the right length.
		opts.RewriteHeader = func(first, last []byte) ([]byte, error) {
			if d, err := webm.Duration(last); err == nil {
				row.DurationMS = d.Milliseconds()
			}
			return webm.FinishHeader(append(append(make([]byte, 0, len(first)+len(last)), first...), last...))
		}
	}
	m, err := r.opts.Store.RecoverWith(ctx, row.TenantID, row.ID, opts)
	if row.Status == meta.StatusFailed {
		// Only the manifest was missing; the failure stands.
		if err != nil {
			log.Warn("manifest of failed recording still cannot be sealed", "err", err)
			return
		}
		m.Apply(&row)
		if err := r.db.WithContext(ctx).Model(&meta.Recording{}).Where("id = ?", row.ID).
			Select("parts", "size", "cipher_size", "manifest_sha256").Updates(&row).Error; err != nil {
			log.Warn("store manifest of failed recording", "err", err)
		}
		return
	}
	now := time.Now().UTC()
	kind := events.RecordingRecovered
	reason := ""
	comp := map[string]any{"recovered": true, "complete": false}
	if err != nil {
		log.Error("recording could not be recovered", "err", err)
		row.Status, row.FailureReason, kind, reason = meta.StatusFailed, "recovery: "+err.Error(), events.RecordingFailed, reasonRecovery
	} else {
		m.Apply(&row)
		row.Status = meta.StatusRecovered
		comp["parts"] = len(m.Parts)
		if len(m.Discarded) > 0 {
			comp["discarded_parts"] = m.Discarded
		}
		if row.ContentType == pipeline.ContentTypeOgg && len(m.Parts) > 0 {
			if d, derr := r.oggDuration(ctx, row); derr == nil {
				row.DurationMS = d.Milliseconds()
			} else {
				log.Warn("measure recovered recording", "err", derr)
			}
		}
		if row.DurationMS > 0 {
			end := row.StartedAt.Add(time.Duration(row.DurationMS) * time.Millisecond).UTC()
			row.EndedAt = &end
			comp["duration_ms"] = row.DurationMS
		}
	}
	if row.EndedAt == nil {
		row.EndedAt = &now
	}
	row.Completeness = meta.NewJSON(comp)
	data := recordingData(row)
	data.Reason = reason
	err = r.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&meta.Recording{}).Where("id = ?", row.ID).Select(
			"status", "ended_at", "duration_ms", "completeness", "failure_reason", "parts", "size", "cipher_size", "manifest_sha256",
		).Updates(&row).Error; err != nil {
			return err
		}
		return events.Emit(tx, events.Event{Tenant: row.TenantID, Kind: kind, Subject: row.ID, Data: data})
	})
	if err != nil {
		log.Error("store recovered recording", "err", err)
		return
	}
	r.metrics.recordings.WithLabelValues(row.Status).Inc()
	log.Info("recording recovered after a crash", "status", row.Status, "parts", row.Parts, "duration_ms", row.DurationMS,
		"took_ms", time.Since(start).Milliseconds())
}

// oggDuration decrypts a recovered Ogg recording and returns the length
// of its timeline: the end of its last Opus packet minus the pre-skip.
func (r *Recorder) oggDuration(ctx context.Context, row meta.Recording) (time.Duration, error) {
	rd, err := r.opts.Store.Open(ctx, row.TenantID, row.ID, storage.ReadOptions{AllowIncomplete: true})
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := rd.Stream(ctx, pw)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	or, err := ogg.NewOpusReader(pr)
	if err != nil {
		return 0, err
	}
	var end int64
	for {
		p, pos, err := or.Next()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			// A torn last page: what came before counts.
			break
		}
		n, _ := ogg.PacketSamples(p)
		end = pos + int64(n)
	}
	end -= int64(or.Head.PreSkip)
	return time.Duration(max(end, 0)) * time.Second / ogg.SampleRate, nil
}
