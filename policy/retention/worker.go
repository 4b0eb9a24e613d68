package retention

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage/meta"
)

// StatusDeleting is the status of a recording claimed for deletion by a
// Worker. With DeletedAt unset the claim is in progress (the data key may
// or may not be shredded yet); with DeletedAt set the key is destroyed,
// the deletion was announced and audited, and only ciphertext objects the
// blob store refused to delete (S3 Object Lock) are left for a later sweep.
const StatusDeleting = meta.StatusDeleting

// Audit and event vocabulary of retention deletions.
const (
	// Actor is the audit actor of deletions by the Worker.
	Actor = "system:retention"
	// ActorRole is the audit role recorded with Actor.
	ActorRole = "system"
	// ReasonRetention is meta.Recording.DeletedReason and the
	// recording.deleted event's reason.
	ReasonRetention = "retention"
)

// claimable are the statuses of recordings whose writing has ended.
var claimable = []string{meta.StatusComplete, meta.StatusRecovered, meta.StatusFailed}

// Clock returns the current time. Tests pass a controllable one.
type Clock func() time.Time

// Store is what the Worker needs from the encrypted object store
// (*storage.Store).
type Store interface {
	// Shred destroys the recording's data key, then deletes its objects;
	// it is idempotent and reports objects it could not delete.
	Shred(ctx context.Context, tenant, recordingID string) error
	// SetLegalHold sets or clears the S3 Object Lock legal hold on every
	// object of the recording (nil without Object Lock).
	SetLegalHold(ctx context.Context, tenant, recordingID string, on bool) error
}

// Options configure a Worker.
type Options struct {
	// Owner identifies this instance (the gateway's instance id, at most
	// 55 bytes); item leases are held by Owner plus a per-sweep suffix.
	// Required.
	Owner string
	// Clock decides what has expired (default time.Now). Leases always use
	// the real time: they are about instances being alive.
	Clock Clock
	// Logger receives one line per sweep that did something and warnings.
	Logger *slog.Logger
	// Batch is how many candidates are read per query (default 100).
	Batch int
	// LeaseTTL bounds how long a claimed item stays with an instance that
	// stopped working on it before another instance finishes it
	// (default 15 minutes).
	LeaseTTL time.Duration
	// OnSweep, if set, is called by Run after every sweep (metrics).
	OnSweep func(Result, error)
	// Grace delays deletion past retain_until. With S3 Object Lock (whose
	// retain-until dates equal retain_until) a few minutes absorb clock
	// skew between the gateway and the object store, so the store does
	// not refuse the deletes after the key was shredded. Default 0.
	Grace time.Duration
}

// Worker deletes expired, unheld recordings and their transcripts. It is
// safe to run one Worker per gateway instance against one database.
type Worker struct {
	db    *gorm.DB
	store Store
	opts  Options
	log   *slog.Logger
}

// New returns a Worker. db is the metadata database; store is the
// object store the recordings were written to.
func New(db *gorm.DB, store Store, opts Options) (*Worker, error) {
	if db == nil || store == nil {
		return nil, errors.New("retention: new worker: database and store are required")
	}
	if opts.Owner == "" {
		return nil, errors.New("retention: new worker: Options.Owner is required")
	}
	if len(opts.Owner) > 55 {
		return nil, fmt.Errorf("retention: new worker: owner %q too long", opts.Owner)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Batch <= 0 {
		opts.Batch = 100
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 15 * time.Minute
	}
	if opts.Grace < 0 {
		opts.Grace = 0
	}
	return &Worker{db: db, store: store, opts: opts, log: opts.Logger.With("component", "retention")}, nil
}

// Result counts what one sweep did.
type Result struct {
	// Deleted recordings: key shredded, tombstone written, event and
	// audit entry emitted by this sweep.
	Deleted int `json:"deleted"`
	// Pending are deletions (by this sweep or earlier) whose key is
	// destroyed but whose objects the blob store still refused to delete
	// at the end of the sweep (S3 Object Lock retain-until not reached on
	// the store's clock); later sweeps retry.
	Pending int `json:"pending"`
	// Finished are earlier pending deletions whose objects are now gone.
	Finished int `json:"finished"`
	// Held are expired recordings kept by a legal hold.
	Held int `json:"held"`
	// Failed are items whose deletion failed before the key was
	// destroyed (retried by the next sweep).
	Failed int `json:"failed"`
}

func (r Result) any() bool {
	return r.Deleted+r.Pending+r.Finished+r.Held+r.Failed > 0
}

// Run sweeps at once and then every interval until ctx ends.
func (w *Worker) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("retention: run: interval must be positive, got %v", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := w.Sweep(ctx)
		if w.opts.OnSweep != nil && ctx.Err() == nil {
			w.opts.OnSweep(res, err)
		}
		if err != nil && ctx.Err() == nil {
			w.log.Error("retention sweep failed", "err", err, "deleted", res.Deleted)
		} else if res.any() {
			w.log.Info("retention sweep", "deleted", res.Deleted, "pending", res.Pending,
				"finished", res.Finished, "held", res.Held, "failed", res.Failed)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep deletes what has expired by the Worker's clock: first it finishes
// deletions other instances abandoned, then it claims and deletes
// expired, unheld recordings, then it retries objects left behind by
// earlier deletions. Item failures are counted and logged, not returned;
// the error is for failures of the sweep itself (database unreachable).
func (w *Worker) Sweep(ctx context.Context) (Result, error) {
	var res Result
	// Item leases are held by this sweep, not just this instance, so two
	// sweeps running at once in one process do not share items either.
	var nonce [4]byte
	rand.Read(nonce[:])
	sw := &sweep{owner: w.opts.Owner + "/" + hex.EncodeToString(nonce[:]), res: &res}
	if err := w.resumeClaims(ctx, sw); err != nil {
		return res, err
	}
	if err := w.sweepExpired(ctx, sw); err != nil {
		return res, err
	}
	if err := w.finishPending(ctx, sw); err != nil {
		return res, err
	}
	return res, nil
}

// sweep is the state of one Sweep: its lease owner and its counts.
type sweep struct {
	owner string
	res   *Result
}

func (w *Worker) now() time.Time { return dbTime(w.opts.Clock()) }

func leaseName(recordingID string) string { return "retention:" + recordingID }

// candidate is what a sweep reads of a recording.
type candidate = meta.Recording

// sweepExpired pages through expired recordings by id and deletes the
// unheld ones.
func (w *Worker) sweepExpired(ctx context.Context, sw *sweep) error {
	cutoff := dbTime(w.now().Add(-w.opts.Grace))
	holds := map[string][]meta.LegalHold{} // per tenant, for this sweep
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var page []candidate
		err := w.db.WithContext(ctx).
			Where("status IN ? AND deleted_at IS NULL AND retain_until IS NOT NULL AND retain_until <= ? AND id > ?", claimable, cutoff, after).
			Where("NOT EXISTS (SELECT 1 FROM transcripts t WHERE t.recording_id = recordings.id AND t.status <> ? AND t.retain_until IS NOT NULL AND t.retain_until > ?)",
				meta.TranscriptDeleted, cutoff).
			Order("id").Limit(w.opts.Batch).Find(&page).Error
		if err != nil {
			return fmt.Errorf("retention: list expired recordings: %w", err)
		}
		for i := range page {
			rec := &page[i]
			after = rec.ID
			hs, ok := holds[rec.TenantID]
			if !ok {
				if hs, err = ActiveHolds(ctx, w.db, rec.TenantID); err != nil {
					return err
				}
				holds[rec.TenantID] = hs
			}
			if anyCovers(hs, rec) {
				sw.res.Held++
				continue
			}
			w.claimAndDelete(ctx, rec, cutoff, sw)
		}
		if len(page) < w.opts.Batch {
			return nil
		}
	}
}

func anyCovers(holds []meta.LegalHold, rec *meta.Recording) bool {
	for i := range holds {
		if Covers(&holds[i], rec.SessionID, rec.ParticipantID) {
			return true
		}
	}
	return false
}

// errSkip ends a claim transaction without claiming.
var errSkip = errors.New("retention: not claimed")

// errHeld ends a claim transaction for a recording that a hold created
// since the candidate list was read covers.
var errHeld = errors.New("retention: held")

// claim atomically moves rec from a finished status to deleting, after
// checking (in the same transaction, after the row is locked) that no
// active hold covers it and that its transcript has expired too, and
// takes the item's lease.
func (w *Worker) claim(ctx context.Context, rec *meta.Recording, cutoff time.Time, owner string) error {
	return w.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&meta.Recording{}).
			Where("id = ? AND status IN ? AND deleted_at IS NULL AND retain_until <= ?", rec.ID, claimable, cutoff).
			UpdateColumns(map[string]any{"status": StatusDeleting, "updated_at": w.now()})
		if res.Error != nil {
			return fmt.Errorf("claim: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return errSkip // another instance claimed it, or it changed
		}
		hs, err := ActiveHolds(ctx, tx, rec.TenantID)
		if err != nil {
			return err
		}
		if anyCovers(hs, rec) {
			return errHeld
		}
		var later int64
		err = tx.Model(&meta.Transcript{}).
			Where("recording_id = ? AND status <> ? AND retain_until IS NOT NULL AND retain_until > ?", rec.ID, meta.TranscriptDeleted, cutoff).
			Count(&later).Error
		if err != nil {
			return fmt.Errorf("claim: transcript: %w", err)
		}
		if later > 0 {
			return errSkip
		}
		ok, err := meta.TryLease(ctx, tx, leaseName(rec.ID), owner, w.opts.LeaseTTL)
		if err != nil {
			return err
		}
		if !ok {
			return errSkip
		}
		return nil
	})
}

func (w *Worker) claimAndDelete(ctx context.Context, rec *meta.Recording, cutoff time.Time, sw *sweep) {
	res := sw.res
	switch err := w.claim(ctx, rec, cutoff, sw.owner); {
	case errors.Is(err, errSkip):
		return
	case errors.Is(err, errHeld):
		res.Held++
		return
	case err != nil:
		res.Failed++
		w.log.Warn("cannot claim expired recording", "recording_id", rec.ID, "err", err)
		return
	}
	prev := rec.Status
	rec.Status = StatusDeleting
	w.deleteClaimed(ctx, rec, prev, sw)
}

// resumeClaims finishes deletions claimed by an instance whose lease
// expired (it died or stalled between claim and tombstone), and retries
// this instance's own failed ones.
func (w *Worker) resumeClaims(ctx context.Context, sw *sweep) error {
	after := ""
	for {
		var page []candidate
		err := w.db.WithContext(ctx).
			Where("status = ? AND deleted_at IS NULL AND id > ?", StatusDeleting, after).
			Order("id").Limit(w.opts.Batch).Find(&page).Error
		if err != nil {
			return fmt.Errorf("retention: list claimed recordings: %w", err)
		}
		for i := range page {
			rec := &page[i]
			after = rec.ID
			ok, err := meta.TryLease(ctx, w.db, leaseName(rec.ID), sw.owner, w.opts.LeaseTTL)
			if err != nil {
				return fmt.Errorf("retention: %w", err)
			}
			if !ok {
				continue // still with a live instance
			}
			// Re-read under the lease: the previous owner may have just
			// finished.
			var cur meta.Recording
			if err := w.db.WithContext(ctx).Where("id = ?", rec.ID).Take(&cur).Error; err != nil {
				w.release(ctx, rec.ID, sw.owner)
				return fmt.Errorf("retention: reload %s: %w", rec.ID, err)
			}
			if cur.Status != StatusDeleting || cur.DeletedAt != nil {
				w.release(ctx, rec.ID, sw.owner)
				continue
			}
			w.log.Info("finishing an interrupted deletion", "recording_id", rec.ID)
			w.deleteClaimed(ctx, &cur, "", sw)
		}
		if len(page) < w.opts.Batch {
			return nil
		}
	}
}

// deleteClaimed shreds a claimed recording and writes its tombstone,
// event and audit entry. prev is its status before the claim ("" when
// resuming another instance's claim).
func (w *Worker) deleteClaimed(ctx context.Context, rec *meta.Recording, prev string, sw *sweep) {
	res := sw.res
	defer w.release(context.WithoutCancel(ctx), rec.ID, sw.owner)
	log := w.log.With("recording_id", rec.ID, "tenant", rec.TenantID)
	shredErr := w.shred(ctx, rec)
	objectsGone := shredErr == nil
	if shredErr != nil {
		state, err := w.keyState(ctx, rec.ID)
		switch {
		case err != nil:
			res.Failed++
			log.Warn("deletion failed; will retry", "err", errors.Join(shredErr, err))
			return
		case state == keyLive:
			res.Failed++
			log.Warn("cannot destroy the data key; will retry", "err", shredErr)
			return
		case state == keyNone:
			// Nothing was ever written under this recording.
			objectsGone = true
		default:
			log.Warn("data key destroyed but objects not deleted yet (object lock?); a later sweep retries", "err", shredErr)
		}
	}
	done, err := w.tombstone(ctx, rec, prev, objectsGone)
	if err != nil {
		res.Failed++
		log.Error("data key destroyed but the tombstone was not written; will retry", "err", err)
		return
	}
	if !done {
		return // another instance wrote it
	}
	res.Deleted++ // objects refused now are counted by finishPending
}

type keyState int

const (
	keyNone keyState = iota
	keyLive
	keyShredded
)

func (w *Worker) keyState(ctx context.Context, recordingID string) (keyState, error) {
	var dks []meta.DataKey
	if err := w.db.WithContext(ctx).Select("recording_id", "shredded_at").
		Where("recording_id = ?", recordingID).Limit(1).Find(&dks).Error; err != nil {
		return keyLive, fmt.Errorf("retention: data key state: %w", err)
	}
	switch {
	case len(dks) == 0:
		return keyNone, nil
	case dks[0].ShreddedAt != nil:
		return keyShredded, nil
	default:
		return keyLive, nil
	}
}

// tombstone marks the recording (and its transcript) deleted and emits
// recording.deleted and the audit entry, all in one transaction, once: it
// reports false when another instance did it first.
func (w *Worker) tombstone(ctx context.Context, rec *meta.Recording, prev string, objectsGone bool) (bool, error) {
	now := w.now()
	status := StatusDeleting
	if objectsGone {
		status = meta.StatusDeleted
	}
	done := false
	err := w.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&meta.Recording{}).
			Where("id = ? AND status = ? AND deleted_at IS NULL", rec.ID, StatusDeleting).
			UpdateColumns(map[string]any{
				"status": status, "deleted_at": now, "deleted_reason": ReasonRetention, "updated_at": now,
			})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return nil
		}
		tr := tx.Model(&meta.Transcript{}).Where("recording_id = ? AND status <> ?", rec.ID, meta.TranscriptDeleted).
			UpdateColumns(map[string]any{"status": meta.TranscriptDeleted, "updated_at": now})
		if tr.Error != nil {
			return tr.Error
		}
		data := events.RecordingData{
			RecordingID: rec.ID, SessionID: rec.SessionID, ParticipantID: rec.ParticipantID,
			Department: rec.Department, Status: status, ContentType: rec.ContentType, Codecs: rec.Codecs.V,
			StartedAt: rec.StartedAt, EndedAt: rec.EndedAt, StartOffsetMS: rec.StartOffsetMS,
			DurationMS: rec.DurationMS, Parts: rec.Parts, Size: rec.Size, CipherSize: rec.CipherSize,
			ManifestSHA256: rec.ManifestSHA256, RetainUntil: rec.RetainUntil, Reason: ReasonRetention,
		}
		if err := events.Emit(tx, events.Event{Tenant: rec.TenantID, Kind: events.RecordingDeleted, Subject: rec.ID, Data: data}); err != nil {
			return err
		}
		details := map[string]any{
			"session_id":         rec.SessionID,
			"participant_id":     rec.ParticipantID,
			"manifest_sha256":    rec.ManifestSHA256,
			"parts":              rec.Parts,
			"cipher_size":        rec.CipherSize,
			"deleted_at":         now.Format(time.RFC3339Nano),
			"transcript_deleted": tr.RowsAffected > 0,
			"objects_pending":    !objectsGone,
			"instance":           w.opts.Owner,
		}
		if rec.RetainUntil != nil {
			details["retain_until"] = rec.RetainUntil.UTC().Format(time.RFC3339Nano)
		}
		if prev != "" {
			details["previous_status"] = prev
		}
		if _, err := audit.AppendTx(tx, audit.Entry{
			Tenant: rec.TenantID, Actor: Actor, Role: ActorRole, Action: audit.ActionRetentionDelete,
			Target: "recording:" + rec.ID, Outcome: audit.OutcomeSuccess, Details: details,
		}); err != nil {
			return err
		}
		done = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("retention: tombstone %s: %w", rec.ID, err)
	}
	return done, nil
}

// finishPending retries the objects of deletions whose key is destroyed
// but whose objects the blob store refused to delete. A legal hold left
// on the objects (a release that could not clear it) is cleared first:
// the recording is unheld and its key is gone.
func (w *Worker) finishPending(ctx context.Context, sw *sweep) error {
	after := ""
	for {
		var page []candidate
		err := w.db.WithContext(ctx).
			Where("status = ? AND deleted_at IS NOT NULL AND id > ?", StatusDeleting, after).
			Order("id").Limit(w.opts.Batch).Find(&page).Error
		if err != nil {
			return fmt.Errorf("retention: list pending deletions: %w", err)
		}
		for i := range page {
			rec := &page[i]
			after = rec.ID
			if err := ctx.Err(); err != nil {
				return err
			}
			ok, err := meta.TryLease(ctx, w.db, leaseName(rec.ID), sw.owner, w.opts.LeaseTTL)
			if err != nil {
				return fmt.Errorf("retention: %w", err)
			}
			if !ok {
				continue
			}
			w.finishOne(ctx, rec, sw)
		}
		if len(page) < w.opts.Batch {
			return nil
		}
	}
}

func (w *Worker) finishOne(ctx context.Context, rec *meta.Recording, sw *sweep) {
	res := sw.res
	defer w.release(context.WithoutCancel(ctx), rec.ID, sw.owner)
	if err := w.shred(ctx, rec); err != nil {
		res.Pending++
		w.log.Debug("objects of a deleted recording still refused by the blob store", "recording_id", rec.ID, "err", err)
		return
	}
	upd := w.db.WithContext(ctx).Model(&meta.Recording{}).
		Where("id = ? AND status = ? AND deleted_at IS NOT NULL", rec.ID, StatusDeleting).
		UpdateColumns(map[string]any{"status": meta.StatusDeleted, "updated_at": w.now()})
	if upd.Error != nil {
		res.Pending++
		w.log.Warn("objects deleted but the row was not updated; will retry", "recording_id", rec.ID, "err", upd.Error)
		return
	}
	if upd.RowsAffected == 1 {
		res.Finished++
	}
}

// shred destroys the recording's key and deletes its objects. When the
// blob store refuses some objects, a legal hold left on them (a release
// that could not clear it) is cleared and the deletion tried again: the
// recording is unheld (it was claimed) and, once Shred ran, its key is
// gone, so nothing is protected by keeping the ciphertext.
func (w *Worker) shred(ctx context.Context, rec *meta.Recording) error {
	err := w.store.Shred(ctx, rec.TenantID, rec.ID)
	if err == nil {
		return nil
	}
	if st, kerr := w.keyState(ctx, rec.ID); kerr != nil || st != keyShredded {
		return err
	}
	if herr := w.store.SetLegalHold(ctx, rec.TenantID, rec.ID, false); herr != nil {
		return errors.Join(err, herr)
	}
	return w.store.Shred(ctx, rec.TenantID, rec.ID)
}

func (w *Worker) release(ctx context.Context, recordingID, owner string) {
	if err := meta.ReleaseLease(ctx, w.db, leaseName(recordingID), owner); err != nil {
		w.log.Debug("cannot release item lease (it expires by itself)", "recording_id", recordingID, "err", err)
	}
}
