package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/custodian/custodian/storage/envelope"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/spool"
)

// WriterOptions configure a recording's objects.
type WriterOptions struct {
	// RetainUntil and LegalHold are passed to the blob store with every
	// object of the recording (S3 Object Lock); ignored by the disk store.
	RetainUntil time.Time
	LegalHold   bool
}

// Writer writes one recording: parts in order, then the manifest. Its
// methods are safe for concurrent use but are meant for one goroutine (the
// recording's muxer).
type Writer struct {
	s      *Store
	tenant string
	rec    string
	ret    spool.Retention

	mu          sync.Mutex
	key         []byte
	parts       []PartInfo
	size        int64
	rowsMissing bool // a part row insert failed; Close upserts them all
	rowsLost    atomic.Bool
	closed      bool
	manifest    Manifest
}

// NewWriter starts a recording: it draws a random 32-byte data key, wraps
// it with the key provider under encryption context {"tenant",
// "recording_id"} and stores the wrapped key (meta.DataKey). A recording id
// that already has a data key is ErrExists.
func (s *Store) NewWriter(ctx context.Context, tenant, recordingID string, opts WriterOptions) (*Writer, error) {
	if err := checkIDs(tenant, recordingID); err != nil {
		return nil, fmt.Errorf("storage: new writer: %w", err)
	}
	key := newDataKey()
	wrapped, kekID, err := s.keys.Wrap(ctx, key, recordingContext(tenant, recordingID))
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("storage: new writer %s: wrap data key: %w", recordingID, err)
	}
	row := meta.DataKey{RecordingID: recordingID, TenantID: tenant, Provider: s.opts.Provider, KEKID: kekID, Wrapped: wrapped}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		clear(key)
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return nil, fmt.Errorf("storage: new writer %s: %w", recordingID, ErrExists)
		}
		return nil, fmt.Errorf("storage: new writer %s: store data key: %w", recordingID, err)
	}
	return &Writer{
		s: s, tenant: tenant, rec: recordingID, key: key,
		ret: spool.Retention{Until: opts.RetainUntil, LegalHold: opts.LegalHold},
	}, nil
}

// RecordingID returns the id of the recording being written.
func (w *Writer) RecordingID() string { return w.rec }

// Parts returns the number of parts written so far.
func (w *Writer) Parts() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.parts)
}

// WritePart seals plaintext as the next part (0, 1, 2, ...), makes it
// durable in the spool (fsync) and records a meta.Part row, then returns
// the part's number. The part is uploaded to the blob store in the
// background. If the spool cannot take it (disk full: errors.Is(err,
// spool.ErrFull)) the part is not written, the number is not used, and
// earlier parts are unaffected. If only the row insert fails, the part is
// durable and numbered, and the error says so; Close repairs the rows.
func (w *Writer) WritePart(ctx context.Context, plaintext []byte) (n int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrWriterClosed
	}
	start := time.Now()
	n = len(w.parts)
	defer func() {
		w.s.observe("seal_part", start, len(plaintext), err)
		if err != nil {
			w.s.sealFailures.Add(1)
		} else {
			w.s.partsSealed.Add(1)
			w.s.bytesSealed.Add(uint64(len(plaintext)))
		}
	}()
	// The row is queued before the part can be uploaded, so that its
	// upload mark finds it; it is stored with the next batch.
	op := w.s.rows.reserve(w, n)
	p, err := w.sealPart(ctx, n, plaintext)
	if err != nil {
		w.s.rows.cancel(op)
		return n, fmt.Errorf("storage: write part %d of recording %s: %w", n, w.rec, err)
	}
	p.PlainOffset = w.size
	w.parts = append(w.parts, p)
	w.size += p.PlainSize
	w.s.rows.ready(op, p)
	return n, nil
}

// noteRowsMissing is called by the part-row batch when this writer's rows
// could not be stored: Close stores them all.
func (w *Writer) noteRowsMissing() { w.rowsLost.Store(true) }

// sealPart seals and spools part n and returns its info (offset unset).
func (w *Writer) sealPart(ctx context.Context, n int, plaintext []byte) (PartInfo, error) {
	buf := w.s.getBuf()
	defer w.s.putBuf(buf)
	sealed, err := envelope.AppendSeal((*buf)[:0], w.key, partBinding(w.tenant, w.rec, n), plaintext)
	if err != nil {
		return PartInfo{}, err
	}
	*buf = sealed
	sum := sha256.Sum256(sealed)
	if err := w.s.spool.Put(ctx, PartKey(w.tenant, w.rec, n), sealed, w.ret); err != nil {
		return PartInfo{}, err
	}
	return PartInfo{N: n, CipherSHA256: hex.EncodeToString(sum[:]), CipherSize: int64(len(sealed)), PlainSize: int64(len(plaintext))}, nil
}

// RewritePart re-seals earlier part n with new plaintext of the same
// length (a muxer patching its header, e.g. the WebM duration, at close).
// The new version replaces the old in the spool and the blob store.
func (w *Writer) RewritePart(ctx context.Context, n int, plaintext []byte) (err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrWriterClosed
	}
	if n < 0 || n >= len(w.parts) {
		return fmt.Errorf("storage: rewrite part %d of recording %s: only %d parts written", n, w.rec, len(w.parts))
	}
	old := w.parts[n]
	if int64(len(plaintext)) != old.PlainSize {
		return fmt.Errorf("storage: rewrite part %d of recording %s: %d bytes, part has %d", n, w.rec, len(plaintext), old.PlainSize)
	}
	start := time.Now()
	defer func() {
		w.s.observe("seal_part", start, len(plaintext), err)
		if err != nil {
			w.s.sealFailures.Add(1)
		} else {
			w.s.partsSealed.Add(1)
			w.s.bytesSealed.Add(uint64(len(plaintext)))
		}
	}()
	// The row must exist before it is updated below.
	if err := w.s.rows.flush(ctx); err != nil {
		return fmt.Errorf("storage: rewrite part %d of recording %s: %w", n, w.rec, err)
	}
	// Clear the row's uploaded flag before the new version is spooled, so
	// its upload, which may come at once, sets it again.
	w.s.db.WithContext(ctx).Model(&meta.Part{}).Where("recording_id = ? AND n = ?", w.rec, n).Update("uploaded", false)
	p, err := w.sealPart(ctx, n, plaintext)
	if err != nil {
		return fmt.Errorf("storage: rewrite part %d of recording %s: %w", n, w.rec, err)
	}
	p.PlainOffset = old.PlainOffset
	w.parts[n] = p
	res := w.s.db.WithContext(ctx).Model(&meta.Part{}).Where("recording_id = ? AND n = ?", w.rec, n).
		Updates(map[string]any{"cipher_sha256": p.CipherSHA256, "cipher_size": p.CipherSize})
	if res.Error != nil || res.RowsAffected != 1 {
		w.rowsMissing = true
		if res.Error != nil {
			return fmt.Errorf("storage: rewrite part %d of recording %s: part is durable but its row was not updated: %w", n, w.rec, res.Error)
		}
	}
	return nil
}

// Close seals the manifest (the parts written, with complete as given:
// false for a failed recording) and spools it after the parts, so it
// reaches the blob store last. It returns the manifest; store its totals
// with Manifest.Apply. The data key is wiped from memory; the Writer
// cannot be used afterwards. If Close fails (spool full) it may be called
// again; the parts stay durable either way and Recover can finish the
// recording after a crash.
func (w *Writer) Close(ctx context.Context, complete bool) (Manifest, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.manifest, nil
	}
	m := Manifest{
		Version: ManifestVersion, Tenant: w.tenant, RecordingID: w.rec, Complete: complete,
		Parts: append([]PartInfo{}, w.parts...), PlainSize: w.size, CreatedAt: w.s.opts.Clock().UTC(),
	}
	for _, p := range m.Parts {
		m.CipherSize += p.CipherSize
	}
	// This writer's rows are stored (or known lost) before Close returns.
	if err := w.s.rows.flush(ctx); err != nil {
		return Manifest{}, fmt.Errorf("storage: close recording %s: %w", w.rec, err)
	}
	if w.rowsMissing || w.rowsLost.Load() {
		if err := w.s.upsertPartRows(ctx, w.rec, m.Parts); err != nil {
			return Manifest{}, fmt.Errorf("storage: close recording %s: repair part rows: %w", w.rec, err)
		}
		w.rowsMissing = false
		w.rowsLost.Store(false)
	}
	sealed, err := sealManifest(w.key, &m)
	if err != nil {
		return Manifest{}, fmt.Errorf("storage: close recording %s: seal manifest: %w", w.rec, err)
	}
	if err := w.s.spool.Put(ctx, ManifestKey(w.tenant, w.rec), sealed, w.ret); err != nil {
		return Manifest{}, fmt.Errorf("storage: close recording %s: %w", w.rec, err)
	}
	w.closed = true
	w.manifest = m
	clear(w.key)
	return m, nil
}

// upsertPartRows makes the part rows of a recording equal parts: rows are
// inserted or updated, rows beyond the last part deleted.
func (s *Store) upsertPartRows(ctx context.Context, recordingID string, parts []PartInfo) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("recording_id = ? AND n >= ?", recordingID, len(parts)).Delete(&meta.Part{}).Error; err != nil {
			return err
		}
		if len(parts) == 0 {
			return nil
		}
		rows := make([]meta.Part, len(parts))
		for i, p := range parts {
			rows[i] = meta.Part{RecordingID: recordingID, N: p.N, CipherSHA256: p.CipherSHA256, CipherSize: p.CipherSize, PlainSize: p.PlainSize, PlainOffset: p.PlainOffset}
		}
		return tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "recording_id"}, {Name: "n"}},
			DoUpdates: clause.AssignmentColumns([]string{"cipher_sha256", "cipher_size", "plain_size", "plain_offset"}),
		}).CreateInBatches(rows, 200).Error
	})
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
